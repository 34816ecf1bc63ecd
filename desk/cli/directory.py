"""The client and staff directory: `client` and `staff`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from typing import Any, NoReturn

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.cli.common import JSON_HELP, Ctx, emit_json, fail, pass_ctx
from desk.store.db import session_factory
from desk.store.directory import (
    ClientSpec,
    DirectoryError,
    Problem,
    add_staff,
    client_dict,
    set_away,
    staff_dict,
    upsert_client,
)
from desk.store.models import Client, Role, Staff, Tier
from desk.store.spreadsheets import ImportReport, import_clients, import_staff


def _fail_with(problems: list[Problem], options: dict[str, str]) -> NoReturn:
    """Every problem on a line of its own, naming the option it came from."""
    for problem in problems[:-1]:
        click.echo(f"desk: {problem.shown(options.get(problem.key, ''))}", err=True)
    last = problems[-1]
    fail(last.shown(options.get(last.key, "")), code=2)


@click.group()
def client() -> None:
    """Manage clients (tier, domains, contacts, managers)."""


@client.command("add")
@click.argument("name")
@click.option("--tier", required=True, type=click.Choice([t.value for t in Tier]),
              help="The client's account tier: what they bought.")
@click.option("--domain", "domains", multiple=True, metavar="DOMAIN",
              help="Email domain of the client (repeat for several).")
@click.option("--contact", "contacts", multiple=True, metavar="CONTACT",
              help="A contact: an address, or a name and an address as in "
                   "'Rosa Elm <rosa@example.com>' (repeat for several).")
@click.option("--account-manager", metavar="EMAIL",
              help="The client's account manager: an active staff member with the role "
                   "account_manager.")
@click.option("--project-manager", metavar="EMAIL",
              help="The client's project manager: an active project manager (or account "
                   "manager).")
@click.option("--backup", metavar="EMAIL",
              help="Backup manager when the owner is away: an active account manager, "
                   "project manager or senior engineer.")
@click.option("--hours-per-month", type=click.FloatRange(min=0), metavar="HOURS",
              help="Monthly allowance of hours (retainer, support SLA); alerts at 80% and "
                   "100%.")
@click.option("--timezone", metavar="TZ",
              help="IANA zone, such as Europe/London (default: the agency's).")
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
    spec = ClientSpec(name, tier, domains, contacts, account_manager, project_manager, backup,
                      hours_per_month, timezone, sla_policy, calendar, report_period)
    options = {"name": "NAME", "tier": "--tier", "domains": "--domain",
               "contacts": "--contact", "account_manager": "--account-manager",
               "project_manager": "--project-manager", "backup": "--backup",
               "hours_per_month": "--hours-per-month", "timezone": "--timezone",
               "sla_policy": "--sla-policy", "calendar": "--calendar"}
    try:
        with c.session() as s:
            cl, changes = upsert_client(s, spec, c.now(), policies=known_policies(c),
                                        calendars=set(c.settings.sla.calendars))
            click.echo(f"client {cl.name}: " + ("; ".join(changes) or "no change"))
    except DirectoryError as exc:
        _fail_with(exc.problems, options)


def known_policies(c: Ctx) -> set[str]:
    from desk.config.sla import DEFAULT_POLICIES

    return {*c.settings.sla.policies, *DEFAULT_POLICIES}


def _run_import(c: Ctx, path: str, dry_run: bool, partial: bool,
                importer: Callable[[Session, str], ImportReport]) -> None:
    """Both imports alike: all or nothing unless --partial, --dry-run changes nothing, and
    the exit code is 0 only when every row was (or, dry, would be) applied."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        fail(f"{path} is not UTF-8 text (byte {exc.start}): save the spreadsheet as "
             "CSV UTF-8", code=2)
    with session_factory(c.engine)() as s:
        s.begin()
        report = importer(s, text)
        apply = not dry_run and not report.file_unusable and (partial or not report.errors)
        (s.commit if apply else s.rollback)()
    # Changes that were rolled back are not shown as if made; a dry run shows what would be.
    if apply or dry_run:
        for line, who, changes in report.changes:
            click.echo(f"line {line}: {who}: {'; '.join(changes) or 'no change'}")
    for error in report.errors:
        click.echo(error.shown(), err=True)
    click.echo(report.summary(apply, dry_run))
    if report.errors:
        sys.exit(1)


IMPORT_OPTIONS = (
    click.argument("path", type=click.Path(exists=True, dir_okay=False)),
    click.option("--dry-run", is_flag=True,
                 help="Check every row and show what would change; change nothing."),
    click.option("--partial", is_flag=True,
                 help="Apply the good rows even if some rows are bad (exit code 1 all the "
                      "same)."),
)


def _import_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(IMPORT_OPTIONS):
        command = option(command)
    return command


@client.command("import", short_help="Import the client overview spreadsheet (CSV).")
@_import_options
@pass_ctx
def client_import(c: Ctx, path: str, dry_run: bool, partial: bool) -> None:
    """Import the client overview spreadsheet (CSV), creating or updating clients.

    \b
    Columns (the first row names them; name and tier are required):
      name, tier, domains, contacts, account_manager, project_manager,
      backup, hours_per_month, timezone, sla_policy
    Several domains or contacts in a cell: separate them with ';'. A contact
    is an address or a name and an address: Rosa Elm <rosa@example.com>.

    Managers must be active staff: the account manager an account manager,
    the project manager a project manager (or account manager), the backup
    an account manager, project manager or senior engineer. Every problem of
    every row is reported with its line and column. Nothing is applied while
    any row is bad, unless --partial; the exit code is 0 only when every row
    was applied.
    """
    _run_import(c, path, dry_run, partial,
                lambda s, text: import_clients(s, text, c.now(), policies=known_policies(c)))


@client.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
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
@click.option("--name", required=True,
              help="The person's name, as clients and colleagues see it.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]),
              help="What they do: who may own, take and approve (README, Working tickets "
                   "by email).")
@click.option("--capacity", type=click.IntRange(min=0), metavar="N",
              help="Most open tickets to own or work at once (default: no limit).")
@pass_ctx
def staff_add(c: Ctx, email: str, name: str, role: str, capacity: int | None) -> None:
    """Add a staff member, or update them if EMAIL exists."""
    try:
        with c.session() as s:
            person, created = add_staff(s, email, name, role, capacity, c.now())
            click.echo(f"{'added' if created else 'updated'} {person.email} ({person.role})")
    except DirectoryError as exc:
        _fail_with(exc.problems, {"email": "EMAIL", "name": "--name", "role": "--role",
                                  "capacity": "--capacity"})


@staff.command("import", short_help="Import staff from a CSV file.")
@_import_options
@pass_ctx
def staff_import(c: Ctx, path: str, dry_run: bool, partial: bool) -> None:
    """Import staff from CSV, adding or updating each person.

    \b
    Columns (the first row names them; email, name and role are required):
      email, name, role, capacity
    Roles: account_manager, project_manager, senior_engineer, junior_engineer.
    Capacity: the most open tickets the person owns (empty: no limit).

    Every problem of every row is reported with its line and column. Nothing
    is applied while any row is bad, unless --partial; the exit code is 0
    only when every row was applied.
    """
    _run_import(c, path, dry_run, partial, lambda s, text: import_staff(s, text, c.now()))


@staff.command("remove", short_help="Mark someone inactive: they left the agency.")
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
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
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


@staff.command("away", short_help="Mark someone away: the backup takes their tickets.")
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


@staff.command("forward-address", short_help="Print someone's address for forwarding mail.")
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
