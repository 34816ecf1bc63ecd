"""Running and watching the desk: `init`, `check-config`, `run`, `status`, `outbox`."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

import click
from sqlalchemy import select

from desk.cli.common import JSON_HELP, Ctx, emit_json, fail, one_line, parse_now, pass_ctx
from desk.logs import setup_logging
from desk.store.db import upgrade
from desk.store.models import utcnow
from desk.store.tickets import get_ticket
from desk.words import plural


@click.command()
@pass_ctx
def init(c: Ctx) -> None:
    """Create or upgrade the database schema (safe to run again)."""
    try:
        revision = upgrade(c.engine)
    except Exception as exc:
        fail(f"cannot prepare the database {c.database_shown()}: {one_line(exc)}")
    click.echo(f"database ready at revision {revision}: {c.database_shown()}")


@click.command("check-config")
@pass_ctx
def check_config(c: Ctx) -> None:
    """Validate the configuration and exit."""
    s = c.settings
    intake = s.mailbox.source if s.mailbox else "lmtp"
    click.echo(f"configuration OK: {s.desk.address}, {intake} intake, "
               f"{s.smtp.transport} delivery, database {c.database_shown()}")


@click.command(short_help="Run the desk: ingest mail, answer, deliver.")
@click.option("--once", is_flag=True, help="Process everything pending, deliver, then exit.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]),
              show_default=True, help="How much to log (on stderr).")
@click.option("--log-format", default="text", type=click.Choice(["text", "json"]),
              show_default=True, help="One line of text per event, or JSON for log shippers.")
@click.option("--now", "fixed_now", metavar="ISO-TIME",
              help="Pretend it is this time (with --once): rehearse what the clock would do.")
@pass_ctx
def run(c: Ctx, once: bool, log_level: str, log_format: str, fixed_now: str | None) -> None:
    """Run the desk: ingest mail, answer, deliver (until SIGTERM, or --once)."""
    from desk.daemon.supervisor import Daemon, SchemaOutOfDate

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


@click.command("status", short_help="Is the desk running and healthy? (for monitoring)")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_ctx
def status_cmd(c: Ctx, as_json: bool) -> None:
    """Is the desk alive: workers, connection trouble, last ingest, outbox, quarantine,
    tickets at risk. Exits 1 when no daemon has a recent heartbeat and 2 when a running
    daemon has been unable to reach its mail servers for over 5 minutes (for monitoring)."""
    from desk.views.status import desk_status

    with c.session() as s:
        data = desk_status(s, c.settings, c.now())
    if as_json:
        emit_json(data)
    else:
        live = [w for w in data["workers"] if w["alive"]]
        click.echo(f"daemon: {'running' if live else 'NOT RUNNING'}"
                   + (f" ({', '.join(w['id'] for w in live)})" if live else ""))
        for t in data["trouble"]:
            click.echo(f"TROUBLE since {(t['since'] or '?')[:19]} ({t['worker']}): {t['trouble']}")
        click.echo(f"last ingest: {data['last_ingest'] or 'never'}")
        o = data["outbox"]
        click.echo(f"outbox: {o['pending']} pending (oldest {o['oldest_pending'] or '-'}), "
                   f"{o['held']} held for approval, {o['failed']} failed, {o['sent']} sent"
                   + (f", {plural(o['waiting'], 'notice')} waiting for a summary mail"
                      if o["waiting"] else ""))
        click.echo(f"quarantine: {data['quarantine']} held")
        if data["set_aside"]:
            click.echo(f"set aside: {plural(data['set_aside'], 'auto-generated mail')} with no "
                       "owner and no clock (desk tickets list --status auto; "
                       "desk tickets promote REF)")
        click.echo(f"tickets: {data['open_tickets']} open, "
                   f"{len(data['tickets_at_risk'])} at risk, "
                   f"{len(data['tickets_breached'])} breached")
        click.echo(f"raw mail: oldest kept {(data['oldest_raw_mail'] or 'none')[:10]} "
                   f"(pruned {plural(data['raw_mail_days'], 'day')} after its ticket closed)")
    sys.exit(1 if not data["alive"] else 2 if any(t["alert"] for t in data["trouble"]) else 0)


@click.group()
def outbox() -> None:
    """Mail waiting to be delivered, and mail that failed."""


@outbox.command("list")
@click.option("--failed", is_flag=True, help="Only mail that failed for good.")
@click.option("--all", "show_all", is_flag=True, help="Include sent mail.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
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
            q = q.where(Outbox.status.in_(("pending", "held", "failed", "waiting")))
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


COMMANDS: tuple[click.Command, ...] = (init, check_config, run, status_cmd, outbox)
