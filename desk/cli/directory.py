"""The client and staff directory: `client` and `staff`."""

from __future__ import annotations

import sys
from datetime import date
from typing import Any

import click
from sqlalchemy import select

from desk.cli.common import Ctx, emit_json, fail, pass_ctx
from desk.store.db import session_factory
from desk.store.directory import (
    ClientSpec,
    DirectoryError,
    ImportReport,
    add_staff,
    client_dict,
    import_clients,
    import_staff,
    set_away,
    staff_dict,
    upsert_client,
)
from desk.store.models import Client, Role, Staff, Tier


@click.group()
def client() -> None:
    """Manage clients (tier, domains, contacts, managers)."""


@client.command("add")
@click.argument("name")
@click.option("--tier", required=True, type=click.Choice([t.value for t in Tier]))
@click.option("--domain", "domains", multiple=True, help="Email domain of the client (repeat).")
@click.option("--contact", "contacts", multiple=True, help="Contact address (repeat).")
@click.option("--account-manager", metavar="EMAIL")
@click.option("--project-manager", metavar="EMAIL")
@click.option("--backup", metavar="EMAIL", help="Backup manager when the owner is away.")
@click.option("--hours-per-month", type=float)
@click.option("--timezone", metavar="TZ", help="IANA zone, e.g. Europe/London.")
@click.option("--sla-policy", metavar="NAME",
              help="Use this SLA policy instead of the tier's default.")
@click.option("--calendar", metavar="NAME",
              help="Business calendar from [sla.calendars.NAME] (default: the agency's).")
@click.option("--report", "report_period", type=click.Choice(["week", "fortnight", "none"]),
              help="How often the client gets its report (default: [reports] period).")
@pass_ctx
def client_add(c: Ctx, name: str, tier: str, domains: tuple[str, ...], contacts: tuple[str, ...],
               account_manager: str | None, project_manager: str | None, backup: str | None,
               hours_per_month: float | None, timezone: str | None,
               sla_policy: str | None, calendar: str | None,
               report_period: str | None) -> None:
    """Add a client, or update it if NAME exists."""
    if calendar and calendar not in c.settings.sla.calendars:
        fail(f"unknown calendar {calendar!r}: define [sla.calendars.{calendar}] first", code=2)
    if sla_policy and not c.settings.sla.known_policy(sla_policy):
        fail(f"unknown SLA policy {sla_policy!r}: define [sla.policies.{sla_policy}] first",
             code=2)
    spec = ClientSpec(name, tier, domains, contacts, account_manager, project_manager, backup,
                      hours_per_month, timezone, sla_policy, calendar, report_period)
    try:
        with c.session() as s:
            cl, changes = upsert_client(s, spec, c.now())
            click.echo(f"client {cl.name}: " + ("; ".join(changes) or "no change"))
    except DirectoryError as exc:
        fail(str(exc), code=2)


def _print_import(report: ImportReport, applied: bool) -> None:
    for line, name, changes in report.changes:
        click.echo(f"line {line}: {name}: {'; '.join(changes) or 'no change'}")
    for line, message in report.errors:
        click.echo(f"line {line}: error: {message}", err=True)
    click.echo("applied" if applied else "nothing applied")


@client.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--partial", is_flag=True, help="Apply the good rows even if some rows are bad.")
@pass_ctx
def client_import(c: Ctx, path: str, dry_run: bool, partial: bool) -> None:
    """Import the client overview spreadsheet (CSV), creating or updating clients.

    Columns: name, tier, domains, contacts, account_manager, project_manager, backup,
    hours_per_month, timezone. Several domains or contacts in a cell: separate with ';'.
    """
    with open(path, encoding="utf-8-sig") as fh:
        text = fh.read()
    factory = session_factory(c.engine)
    with factory() as s:
        s.begin()
        report = import_clients(s, text, c.now())
        apply = not dry_run and (partial or not report.errors)
        (s.commit if apply else s.rollback)()
    _print_import(report, apply)
    if report.errors and not (partial and not dry_run):
        sys.exit(1)


@client.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def client_list(c: Ctx, as_json: bool) -> None:
    """List clients."""
    with c.session() as s:
        rows = [client_dict(x) for x in s.scalars(select(Client).order_by(Client.name))]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<28} {r['tier']:<13} domains={','.join(r['domains']) or '-'} "
                   f"contacts={len(r['contacts'])} am={r['account_manager'] or '-'} "
                   f"pm={r['project_manager'] or '-'}")


@click.group()
def staff() -> None:
    """Manage staff (roles, capacity, absences)."""


@staff.command("add")
@click.argument("email")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--capacity", type=click.IntRange(min=0), help="Most open tickets to own.")
@pass_ctx
def staff_add(c: Ctx, email: str, name: str, role: str, capacity: int | None) -> None:
    """Add a staff member, or update them if EMAIL exists."""
    try:
        with c.session() as s:
            person, created = add_staff(s, email, name, role, capacity, c.now())
            click.echo(f"{'added' if created else 'updated'} {person.email} ({person.role})")
    except DirectoryError as exc:
        fail(str(exc), code=2)


@staff.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def staff_import(c: Ctx, path: str) -> None:
    """Import staff from CSV (email, name, role, capacity); bad rows are reported."""
    with open(path, encoding="utf-8-sig") as fh:
        text = fh.read()
    with c.session() as s:
        report = import_staff(s, text, c.now())
    _print_import(report, True)
    if report.errors:
        sys.exit(1)


@staff.command("remove")
@click.argument("email")
@pass_ctx
def staff_remove(c: Ctx, email: str) -> None:
    """Mark a staff member inactive (left the agency): never assigned again."""
    with c.session() as s:
        person = s.scalar(select(Staff).where(Staff.email == email.strip().lower()))
        if person is None:
            fail(f"no staff member {email}")
        person.active = False
    click.echo(f"{email}: inactive (kept on existing tickets' history)")


@staff.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def staff_list(c: Ctx, as_json: bool) -> None:
    """List staff."""
    with c.session() as s:
        rows = [staff_dict(x) for x in s.scalars(select(Staff).order_by(Staff.email))]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        away = f" away {r['away_from'] or '…'}..{r['away_until'] or '…'}" if (
            r["away_from"] or r["away_until"]) else ""
        click.echo(f"{r['email']:<32} {r['name']:<24} {r['role']}{away}")


@staff.command("away")
@click.argument("email")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="First day away.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day away.")
@click.option("--clear", is_flag=True, help="Back in the office.")
@pass_ctx
def staff_away(c: Ctx, email: str, start: Any, until: Any, clear: bool) -> None:
    """Mark a staff member away: their tickets go to the client's backup manager."""
    d_start: date | None = None if clear or start is None else start.date()
    d_until: date | None = None if clear or until is None else until.date()
    if not clear and d_start is None and d_until is None:
        fail("give --from and/or --until, or --clear", code=2)
    try:
        with c.session() as s:
            person = set_away(s, email, d_start, d_until)
            click.echo(f"{person.email}: away {d_start or '…'}..{d_until or '…'}" if not clear
                       else f"{person.email}: back")
    except DirectoryError as exc:
        fail(str(exc), code=2)


@staff.command("forward-address")
@click.argument("email")
@pass_ctx
def staff_forward_address(c: Ctx, email: str) -> None:
    """Print a staff member's own address for forwarding a client's mail to the desk.

    A forward sent there opens the ticket in the client's name; one sent to the plain
    support address needs the agency's mail server to vouch for the sender (README,
    Security model). Keep it like a password: it proves who forwarded."""
    from desk.work.identity import forwarding_address

    with c.session() as s:
        person = s.scalar(select(Staff).where(Staff.email == email.strip().lower(),
                                              Staff.active.is_(True)))
        if person is None:
            fail(f"no active staff member {email}")
        click.echo(forwarding_address(c.settings, person.id))


COMMANDS: tuple[click.Command, ...] = (client, staff)
