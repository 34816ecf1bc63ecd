"""The ``desk`` command line: thin commands over the library."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn

import click
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from desk.config import ConfigError, Settings, load_settings
from desk.store.db import make_engine, session_factory, transaction, upgrade
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
from desk.store.models import Client, Quarantine, Role, Staff, Status, Ticket, Tier, utcnow
from desk.store.tickets import get_ticket
from desk.views.tickets import list_tickets, quarantine_dict, ticket_detail, ticket_summary

log = logging.getLogger("desk")


def parse_now(value: str) -> datetime:
    try:
        pinned = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--now {value!r} is not an ISO date-time", code=2)
    return pinned if pinned.tzinfo else pinned.replace(tzinfo=UTC)


class Ctx:
    def __init__(self, config: str | None, fixed_now: str | None = None) -> None:
        self.config_path = config
        self.fixed_now = parse_now(fixed_now) if fixed_now else None
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path)
            except ConfigError as exc:
                fail(str(exc), code=2)
        return self._settings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url,
                                       busy_timeout=self.settings.desk.busy_timeout_seconds)
        return self._engine

    def now(self) -> datetime:
        return self.fixed_now or utcnow()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with transaction(session_factory(self.engine)) as session:
            yield session


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"desk: {message}", err=True)
    sys.exit(code)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        from desk.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Schema checks at start are routine, not news.
    logging.getLogger("alembic").setLevel(logging.WARNING)


pass_ctx = click.make_pass_decorator(Ctx)


@click.group()
@click.option("--config", "config", envvar="DESK_CONFIG", metavar="PATH",
              help="Configuration file (default: $DESK_CONFIG, else config/desk.toml).")
@click.option("--now", "fixed_now", metavar="ISO-TIME",
              help="Act as if it were this time (rehearsals, back-dated reports, tests).")
@click.pass_context
def main(ctx: click.Context, config: str | None, fixed_now: str | None) -> None:
    """desk: an email-driven support desk."""
    ctx.obj = Ctx(config, fixed_now)
    ctx.call_on_close(ctx.obj.close)


# -- setup and running -----------------------------------------------------------------

@main.command()
@pass_ctx
def init(c: Ctx) -> None:
    """Create or upgrade the database schema (safe to run again)."""
    try:
        revision = upgrade(c.engine)
    except Exception as exc:
        fail(f"cannot prepare the database {c.settings.database_url}: {exc}")
    click.echo(f"database ready at revision {revision}: {c.engine.url.render_as_string()}")


@main.command("check-config")
@pass_ctx
def check_config(c: Ctx) -> None:
    """Validate the configuration and exit."""
    s = c.settings
    intake = s.mailbox.source if s.mailbox else "lmtp"
    click.echo(f"configuration OK: {s.desk.address}, {intake} intake, "
               f"{s.smtp.transport} delivery, database {s.database_url}")


@main.command()
@click.option("--once", is_flag=True, help="Process everything pending, deliver, then exit.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]))
@click.option("--log-format", default="text", type=click.Choice(["text", "json"]))
@click.option("--now", "fixed_now", metavar="ISO-TIME",
              help="Pretend it is this time (with --once): rehearse what the clock would do.")
@pass_ctx
def run(c: Ctx, once: bool, log_level: str, log_format: str, fixed_now: str | None) -> None:
    """Run the desk: ingest mail, answer, deliver (until SIGTERM, or --once)."""
    from desk.daemon import Daemon, SchemaOutOfDate

    setup_logging(log_level, log_format)
    settings = c.settings
    clock = utcnow
    pinned = parse_now(fixed_now) if fixed_now else c.fixed_now
    if pinned is not None:
        if not once:
            fail("--now only makes sense with --once", code=2)

        def clock() -> datetime:
            return pinned
    try:
        daemon = Daemon(settings, engine=c.engine, clock=clock)
    except SchemaOutOfDate as exc:
        fail(str(exc), code=2)
    if once:
        summary = asyncio.run(daemon.run_once())
        click.echo(summary.line())
        for note in summary.notes:
            click.echo(f"note: {note}", err=True)
        for err in summary.errors:
            click.echo(f"warning: {err}", err=True)
        sys.exit(1 if summary.errors else 0)
    asyncio.run(daemon.run_forever())


# -- directory ---------------------------------------------------------------------

@main.group()
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


@main.group()
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


# -- tickets -----------------------------------------------------------------------

@main.group()
def tickets() -> None:
    """Look at tickets."""


@tickets.command("list")
@click.option("--status", type=click.Choice([s.value for s in Status]))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def tickets_list(c: Ctx, status: str | None, as_json: bool) -> None:
    """List tickets (oldest first)."""
    with c.session() as s:
        rows = [ticket_summary(t) for t in list_tickets(s, status)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no tickets")
    for r in rows:
        tier, owner = r["tier"] or "unknown", r["assignee"] or "-"
        click.echo(f"#{r['ref']:<5} {r['status']:<17} {r['priority']} {tier:<12} "
                   f"{(r['client'] or '-')[:20]:<20} {owner:<26} {r['subject'][:60]}")


@tickets.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def tickets_show(c: Ctx, ref: str, as_json: bool) -> None:
    """Show a ticket: its messages and the reasons behind every decision."""
    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        data = ticket_detail(t)
    if as_json:
        emit_json(data)
        return
    click.echo(f"#{data['ref']} {data['subject']}")
    click.echo(f"  status {data['status']}, priority {data['priority']}, tier "
               f"{data['tier'] or 'unknown sender'}, client {data['client'] or '-'}")
    click.echo(f"  requester {data['requester']}, owner {data['assignee'] or '-'}, "
               f"created {data['created_at']}")
    if data["participants"]:
        click.echo("  participants: " + ", ".join(p["email"] for p in data["participants"]))
    click.echo("\nMessages:")
    for m in data["messages"]:
        arrow = "<-" if m["direction"] == "in" else "->"
        flags = " (internal)" if m["internal"] else ""
        click.echo(f"  {arrow} {m['date']} {m['from']} to {m['to']}{flags}: {m['subject']}")
        for line in (m["body_text"] or "").strip().splitlines()[:12]:
            click.echo(f"       | {line}")
        for a in m["attachments"]:
            click.echo(f"       [attachment] {a['filename'] or '(unnamed)'} {a['content_type']} "
                       f"{a['size']} bytes{' - ' + a['note'] if a['note'] else ''}")
    click.echo("\nEvents (why):")
    for e in data["events"]:
        click.echo(f"  {e['at']} {e['kind']:<16} {e['detail']}")


@main.command()
@click.option("--from", "sender", required=True, metavar="EMAIL")
@click.option("--subject", required=True)
@click.option("--body", default="")
@click.option("--cc", "cc", multiple=True, metavar="EMAIL")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def route(c: Ctx, sender: str, subject: str, body: str, cc: tuple[str, ...],
          as_json: bool) -> None:
    """Explain where a message would go, without creating anything."""
    from desk.views.explain import explain_route

    data = explain_route(session_factory(c.engine), c.settings, sender, subject, body, list(cc))
    if as_json:
        emit_json(data)
        return
    click.echo(f"A message from {sender} with subject {subject!r}:")
    click.echo(f"  client {data['client'] or '(unknown sender)'}, tier {data['tier'] or '-'}, "
               f"priority {data['priority']}, SLA policy {data['sla_policy'] or '-'}")
    where = "opens a new ticket" if data["new_ticket"] else f"joins ticket #{data['ticket']}"
    click.echo(f"  {where}, owner {data['owner'] or '-'}"
               + (f", workers {', '.join(data['workers'])}" if data["workers"] else "")
               + f", status {data['status']}")
    click.echo(f"  acknowledgement: {'yes' if data['acknowledged'] else 'no'}")
    click.echo("Why:")
    for e in data["events"]:
        click.echo(f"  {e['kind']:<16} {e['detail']}")


@tickets.command("set")
@click.argument("ref")
@click.option("--status", type=click.Choice(["open", "waiting", "resolved", "closed"]))
@click.option("--priority", type=click.Choice(["P1", "P2", "P3", "P4"]))
@click.option("--owner", metavar="EMAIL", help="New owner (a junior joins as a worker).")
@click.option("--eta", metavar="YYYY-MM-DD")
@pass_ctx
def tickets_set(c: Ctx, ref: str, status: str | None, priority: str | None,
                owner: str | None, eta: str | None) -> None:
    """Change a ticket as an admin (recorded on the ticket like an email command)."""
    from desk.sla.clock import refresh
    from desk.work.actions import Actor, Refused, assign_to, set_eta, set_priority, set_status
    from desk.work.conversation import after_changes, notify_new_people

    now = c.now()
    actor = Actor(None, "admin (CLI)")
    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        before = {p.id for p in (t.owner, *t.workers) if p is not None}
        status_before = t.status
        try:
            for value, action in ((status, set_status), (priority, set_priority),
                                  (owner, assign_to), (eta, set_eta)):
                if value:
                    click.echo(action(s, t, actor, value, now))
        except Refused as exc:
            fail(str(exc), code=2)
        refresh(t, c.settings, now)
        s.flush()
        notify_new_people(s, c.settings, t, before, None, now)
        after_changes(s, c.settings, t, status_before, False, now)


@main.command()
@click.argument("held_id", type=int)
@click.option("--by", "approver", metavar="EMAIL", help="Record who approved (staff address).")
@pass_ctx
def approve(c: Ctx, held_id: int, approver: str | None) -> None:
    """Send a junior engineer's held reply to the client, unchanged."""
    from desk.sla.clock import refresh
    from desk.store.models import Outbox
    from desk.work.actions import Actor, Refused
    from desk.work.conversation import approve_held

    now = c.now()
    with c.session() as s:
        held = s.get(Outbox, held_id)
        if held is None:
            fail(f"no held reply {held_id}")
        person = s.scalar(select(Staff).where(Staff.email == approver.lower())) if approver \
            else None
        if approver and person is None:
            fail(f"{approver} is not on the staff list", code=2)
        actor = Actor(person, person.email if person else "admin (CLI)")
        try:
            click.echo(approve_held(s, c.settings, held, actor, now))
        except Refused as exc:
            fail(str(exc), code=2)
        ticket = get_ticket(s, str(held.ticket_id))
        if ticket is not None:
            refresh(ticket, c.settings, now)
    click.echo("it goes out with the next delivery round (`desk run` sends it at once)")


@main.group()
def templates() -> None:
    """Mail templates (override any in config/templates/)."""


@templates.command("preview")
@click.argument("name")
@click.option("--ticket", "ref", metavar="REF", help="Use this ticket's real data.")
@click.option("--html", is_flag=True, help="Render the HTML version.")
@pass_ctx
def templates_preview(c: Ctx, name: str, ref: str | None, html: bool) -> None:
    """Render a template, e.g. `desk templates preview ack_support_sla`."""
    from desk.views.preview import PreviewError, preview

    try:
        click.echo(preview(session_factory(c.engine), c.settings, name, ref,
                           "html" if html else "txt"), nl=False)
    except PreviewError as exc:
        fail(str(exc))
    except Exception as exc:  # TemplateNotFound and friends: one clear line
        fail(f"cannot render {name}: {type(exc).__name__}: {exc}")


@templates.command("list")
@pass_ctx
def templates_list(c: Ctx) -> None:
    """List the templates and where each comes from."""
    from importlib.resources import files

    override = c.settings.template_override_dir
    for entry in sorted(p.name for p in files("desk").joinpath("templates").iterdir()):
        mine = override / entry
        click.echo(f"{entry:<28} {'overridden by ' + str(mine) if mine.exists() else 'built in'}")


@main.command("report")
@click.argument("client_name", metavar="CLIENT")
@click.option("--period", type=click.Choice(["week", "fortnight"]), default="week")
@click.option("--format", "fmt", type=click.Choice(["text", "html", "json"]), default="text")
@click.option("--send", is_flag=True, help="Queue it to the client's contacts now.")
@pass_ctx
def report_cmd(c: Ctx, client_name: str, period: str, fmt: str, send: bool) -> None:
    """A client's report for the period that ends now."""
    from desk.outbound.render import render
    from desk.reports.client_report import Period, build_report, chart_png
    from desk.reports.scheduler import queue_report

    now = c.now()
    span = Period(period, now - (timedelta(days=14) if period == "fortnight"
                                 else timedelta(days=7)), now)
    with c.session() as s:
        client_row = s.scalar(select(Client).where(Client.name == client_name))
        if client_row is None:
            fail(f"no client {client_name!r} (see `desk client list`)")
        data = build_report(s, c.settings, client_row, span)
        if send:
            row = queue_report(s, c.settings, client_row, span, now,
                               key=f"report:{client_row.id}:manual:{now.isoformat()}")
            if row is None:
                fail(f"{client_name} has no contacts to send the report to", code=1)
            click.echo(f"report queued to {', '.join(row.rcpt_to)} (sent on the next "
                       "delivery round)", err=True)
    if fmt == "json":
        emit_json(data)
    else:
        context = {"r": data, "desk_name": c.settings.desk.name,
                   "chart": chart_png(data) is not None}
        click.echo(render(f"report.{'html' if fmt == 'html' else 'txt'}.j2", context,
                          c.settings.template_override_dir), nl=False)


@main.command("digest")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--send", is_flag=True, help="Queue it to every account and project manager.")
@pass_ctx
def digest_cmd(c: Ctx, fmt: str, send: bool) -> None:
    """The managers' weekly digest."""
    from desk.outbound.render import render
    from desk.reports.digest import build_digest
    from desk.reports.scheduler import queue_digest

    now = c.now()
    with c.session() as s:
        data = build_digest(s, now, c.settings.desk.timezone)
        if send:
            click.echo(f"digest queued to {queue_digest(s, c.settings, now)} managers", err=True)
    if fmt == "json":
        emit_json(data)
    else:
        click.echo(render("digest.txt.j2", {"d": data, "staff_name": "team",
                                            "desk_name": c.settings.desk.name},
                          c.settings.template_override_dir), nl=False)


@main.group()
def feedback() -> None:
    """What clients said when their tickets were resolved."""


@feedback.command("list")
@click.option("--client", "client_name", metavar="CLIENT")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def feedback_list(c: Ctx, client_name: str | None, as_json: bool) -> None:
    """List feedback, newest last, with the average rating."""
    from desk.store.models import Feedback

    with c.session() as s:
        q = select(Feedback, Ticket.subject, Client.name).join(
            Ticket, Ticket.id == Feedback.ticket_id).outerjoin(
            Client, Client.id == Feedback.client_id).order_by(Feedback.id)
        if client_name:
            q = q.where(Client.name == client_name)
        rows = [{"ticket": str(f.ticket_id), "subject": subj, "client": cname,
                 "resolved": f.resolved, "rating": f.rating, "comment": f.comment,
                 "from": f.from_addr, "at": f.created_at.isoformat()}
                for f, subj, cname in s.execute(q)]
    ratings = [r["rating"] for r in rows if r["rating"] is not None]
    average = round(sum(ratings) / len(ratings), 1) if ratings else None
    if as_json:
        emit_json({"average": average, "count": len(rows), "feedback": rows})
        return
    for r in rows:
        resolved = {True: "yes", False: "no", None: "-"}[r["resolved"]]
        click.echo(f"{r['at'][:10]} #{r['ticket']:<5} {(r['client'] or '-')[:20]:<20} "
                   f"resolved {resolved:<3} rating {r['rating'] or '-':<3} "
                   f"{r['comment'][:50]}")
    click.echo(f"average rating: {average if average is not None else '-'} "
               f"({len(ratings)} ratings)")


@main.group("time")
def time_group() -> None:
    """Time spent on tickets."""


@time_group.command("add")
@click.argument("ref")
@click.argument("duration")
@click.option("--staff", "staff_email", required=True, metavar="EMAIL")
@click.option("--note", default="")
@pass_ctx
def time_add(c: Ctx, ref: str, duration: str, staff_email: str, note: str) -> None:
    """Log time on a ticket, e.g. `desk time add 12 1h30m --staff sam@agency.example`."""
    from desk.work.actions import Actor, Refused, log_time
    from desk.work.allowance import check_allowance

    now = c.now()
    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        person = s.scalar(select(Staff).where(Staff.email == staff_email.strip().lower()))
        if person is None:
            fail(f"{staff_email} is not on the staff list", code=2)
        try:
            click.echo(log_time(s, t, Actor(person, person.email),
                                f"{duration} {note}".strip(), now))
        except Refused as exc:
            fail(str(exc), code=2)
        s.flush()
        check_allowance(s, c.settings, t, now)


@main.command("decisions")
@click.argument("client_name", metavar="CLIENT")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="From this date on.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text")
@pass_ctx
def decisions_cmd(c: Ctx, client_name: str, since: Any, fmt: str) -> None:
    """A client's decision log: estimates, approvals, declines, scope, priority, owners."""
    from desk.reports.decisions import as_csv, decisions

    with c.session() as s:
        client_row = s.scalar(select(Client).where(Client.name == client_name))
        if client_row is None:
            fail(f"no client {client_name!r} (see `desk client list`)")
        rows = decisions(s, client_row, since.replace(tzinfo=UTC) if since else None)
    if fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        click.echo(as_csv(rows), nl=False)
    else:
        if not rows:
            click.echo("no decisions recorded")
        for r in rows:
            click.echo(f"{r['at'][:16]} #{r['ticket']:<5} {r['kind']:<19} {r['who']:<26} "
                       f"{r['detail']}")


@main.group()
def sla() -> None:
    """Where every promise stands."""


@sla.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def sla_status_cmd(c: Ctx, as_json: bool) -> None:
    """Open tickets with time left, at risk and breached, per client."""
    from desk.sla.report import sla_status

    with c.session() as s:
        data = sla_status(s, c.settings, c.now())
    if as_json:
        emit_json(data)
        return
    marks = {"breached": "BREACHED", "at_risk": "at risk", "ok": "ok"}
    for r in data["tickets"]:
        left = (f"{r['minutes_left']} min left" if r["minutes_left"] is not None
                and r["minutes_left"] >= 0 else
                f"{-r['minutes_left']} min late" if r["minutes_left"] is not None else "")
        click.echo(f"#{r['ref']:<5} {marks.get(r['state'], r['state']):<9} {r['priority']} "
                   f"{(r['client'] or '-')[:18]:<18} {(r['deadline'] or '').replace('_', ' '):<15}"
                   f" {left:<16} {r['subject'][:40]}")
    click.echo("\nPer client:")
    for name, s in sorted(data["clients"].items()):
        click.echo(f"  {name:<28} open {s['open']}, ok {s['ok']}, at risk {s['at_risk']}, "
                   f"breached {s['breached']}")


@sla.command("explain")
@click.argument("ref")
@pass_ctx
def sla_explain_cmd(c: Ctx, ref: str) -> None:
    """The calendar, pauses and arithmetic behind each deadline of a ticket."""
    from desk.sla.report import sla_explain

    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        for line in sla_explain(t, c.settings, c.now()):
            click.echo(line)


@main.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status_cmd(c: Ctx, as_json: bool) -> None:
    """Is the desk alive: workers, last ingest, outbox, quarantine, tickets at risk.
    Exits 1 when no daemon has a recent heartbeat (for monitoring)."""
    from desk.views.status import desk_status

    with c.session() as s:
        data = desk_status(s, c.settings, c.now())
    if as_json:
        emit_json(data)
    else:
        live = [w for w in data["workers"] if w["alive"]]
        click.echo(f"daemon: {'running' if live else 'NOT RUNNING'}"
                   + (f" ({', '.join(w['id'] for w in live)})" if live else ""))
        click.echo(f"last ingest: {data['last_ingest'] or 'never'}")
        o = data["outbox"]
        click.echo(f"outbox: {o['pending']} pending (oldest {o['oldest_pending'] or '-'}), "
                   f"{o['held']} held for approval, {o['failed']} failed, {o['sent']} sent")
        click.echo(f"quarantine: {data['quarantine']} held")
        click.echo(f"tickets: {data['open_tickets']} open, "
                   f"{len(data['tickets_at_risk'])} at risk, "
                   f"{len(data['tickets_breached'])} breached")
    sys.exit(0 if data["alive"] else 1)


@main.group()
def outbox() -> None:
    """Mail waiting to be delivered, and mail that failed."""


@outbox.command("list")
@click.option("--failed", is_flag=True, help="Only mail that failed for good.")
@click.option("--all", "show_all", is_flag=True, help="Include sent mail.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def outbox_list(c: Ctx, failed: bool, show_all: bool, as_json: bool) -> None:
    """List the outbox (pending, held and failed by default)."""
    from desk.store.models import Outbox
    from desk.views.tickets import outbox_dict

    with c.session() as s:
        q = select(Outbox).order_by(Outbox.id)
        if failed:
            q = q.where(Outbox.status == "failed")
        elif not show_all:
            q = q.where(Outbox.status.in_(("pending", "held", "failed")))
        rows = [outbox_dict(o) for o in s.scalars(q)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("outbox is empty")
    for r in rows:
        click.echo(f"{r['id']:<6} {r['status']:<8} #{r['ticket'] or '-':<5} {r['kind']:<16} "
                   f"{', '.join(r['to'])[:40]:<40} tries {r['attempts']}"
                   + (f"  {r['last_error'][:60]}" if r["last_error"] else ""))


@outbox.command("retry")
@click.argument("outbox_id", type=int)
@pass_ctx
def outbox_retry(c: Ctx, outbox_id: int) -> None:
    """Send a failed mail again (the same bytes, the same Message-ID)."""
    from desk.store.models import Outbox
    from desk.store.tickets import add_event

    with c.session() as s:
        row = s.get(Outbox, outbox_id)
        if row is None:
            fail(f"no outbox row {outbox_id}")
        if row.status != "failed":
            fail(f"outbox {outbox_id} is {row.status}, not failed")
        row.status, row.next_attempt_at, row.claimed_until = "pending", c.now(), None
        if row.ticket_id is not None:
            ticket = get_ticket(s, str(row.ticket_id))
            if ticket is not None:
                add_event(s, ticket, "delivery_retry", f"admin retries {row.kind} mail to "
                          f"{', '.join(row.rcpt_to)}", at=c.now(), actor="admin (CLI)")
    click.echo(f"outbox {outbox_id} queued again (sent on the next delivery round)")


# -- quarantine --------------------------------------------------------------------

@main.group()
def quarantine() -> None:
    """Messages that could not be processed, kept with the reason."""


@quarantine.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include retried and dropped entries.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def quarantine_list(c: Ctx, show_all: bool, as_json: bool) -> None:
    """List quarantined messages."""
    with c.session() as s:
        q = select(Quarantine).order_by(Quarantine.id)
        if not show_all:
            q = q.where(Quarantine.status == "held")
        rows = [quarantine_dict(x) for x in s.scalars(q)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("quarantine is empty")
    for r in rows:
        click.echo(f"{r['id']:<5} {r['created_at'][:19]} {r['status']:<8} {r['sender'][:30]:<30} "
                   f"{r['subject'][:40]:<40} {r['reason']}")


@quarantine.command("show")
@click.argument("qid", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.option("--raw", is_flag=True, help="Print the raw message only.")
@pass_ctx
def quarantine_show(c: Ctx, qid: int, as_json: bool, raw: bool) -> None:
    """Show one quarantined message with its reason."""
    with c.session() as s:
        row = s.get(Quarantine, qid)
        if row is None:
            fail(f"no quarantine entry {qid}")
        data = quarantine_dict(row, with_raw=True)
        raw_bytes = row.raw
    if raw:
        sys.stdout.buffer.write(raw_bytes)
        return
    if as_json:
        emit_json(data)
        return
    for key in ("id", "status", "source", "sender", "subject", "size", "created_at", "reason"):
        click.echo(f"{key:>10}: {data[key]}")
    if data["detail"]:
        click.echo("\n" + data["detail"])


@quarantine.command("retry")
@click.argument("qid", type=int)
@pass_ctx
def quarantine_retry(c: Ctx, qid: int) -> None:
    """Run the pipeline again on a quarantined message."""
    from desk.work.ingest import Ingestor
    from desk.work.pipeline import Unprocessable

    ingestor = Ingestor(session_factory(c.engine), c.settings, c.now)
    try:
        result = ingestor.retry_quarantined(qid)
    except LookupError as exc:
        fail(str(exc))
    except Unprocessable as exc:
        fail(f"still cannot process {qid}: {exc}")
    except Exception as exc:
        fail(f"still cannot process {qid}: {type(exc).__name__}: {exc}")
    where = f"ticket #{result.ticket_id}" if result.ticket_id else result.outcome
    click.echo(f"quarantine {qid} processed: {where} (run `desk run --once` to send replies)")


@quarantine.command("drop")
@click.argument("qid", type=int)
@pass_ctx
def quarantine_drop(c: Ctx, qid: int) -> None:
    """Mark a quarantined message as dropped (kept for audit, no longer listed)."""
    with c.session() as s:
        row = s.get(Quarantine, qid)
        if row is None:
            fail(f"no quarantine entry {qid}")
        row.status = "dropped"
        row.resolved_at = c.now()
    click.echo(f"quarantine {qid} dropped")


if __name__ == "__main__":  # pragma: no cover
    main()
