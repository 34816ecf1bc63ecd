"""Looking at and changing tickets: `tickets` (list, show, attachment, set, confirm, promote) and
`approve`."""

from __future__ import annotations

import os
import sys

import click
from sqlalchemy import select

from desk.cli.common import Ctx, emit_json, fail, pass_ctx
from desk.store.models import Staff, Status
from desk.store.tickets import get_ticket
from desk.views.tickets import list_tickets, ticket_detail, ticket_summary


@click.group()
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
            how = " inline" if a["inline"] else ""
            kept = "" if a["kept"] else f" - not kept: {a['note'] or 'metadata only'}"
            click.echo(f"       [attachment {a['index']}{how}] {a['name'] or '(unnamed)'} "
                       f"{a['type']} {a['size']} bytes{kept}")
    click.echo("\nEvents (why):")
    for e in data["events"]:
        click.echo(f"  {e['at']} {e['kind']:<16} {e['detail']}")


@tickets.command("attachment")
@click.argument("ref")
@click.argument("number", type=int)
@click.option("--out", "out", required=True, metavar="FILE",
              help="Where to write it (`-`: standard output).")
@pass_ctx
def tickets_attachment(c: Ctx, ref: str, number: int, out: str) -> None:
    """Write attachment NUMBER of a ticket (as `tickets show` numbers them) to a file."""
    from desk.views.tickets import NoAttachment, ticket_attachment

    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        try:
            att, data = ticket_attachment(s, t, number)
        except NoAttachment as exc:
            fail(str(exc))
        name = att.filename
    if out == "-":
        sys.stdout.buffer.write(data)
        return
    # Clients' files are personal data: readable by their owner only, like privacy exports.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    click.echo(f"wrote {name or 'attachment ' + str(number)} ({len(data)} bytes) to {out}")


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


@tickets.command("confirm")
@click.argument("ref")
@click.option("--by", "confirmer", metavar="EMAIL",
              help="Record who checked it with the client (staff address).")
@pass_ctx
def tickets_confirm(c: Ctx, ref: str, confirmer: str | None) -> None:
    """Apply a client's unconfirmed estimate decision, after checking it with them."""
    from desk.sla.clock import refresh
    from desk.work.actions import Actor, Refused
    from desk.work.estimates import confirm_decision

    now = c.now()
    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        person = s.scalar(select(Staff).where(Staff.email == confirmer.lower())) \
            if confirmer else None
        if confirmer and person is None:
            fail(f"{confirmer} is not on the staff list", code=2)
        actor = Actor(person, person.email if person else "admin (CLI)")
        try:
            click.echo(confirm_decision(s, c.settings, t, actor, now))
        except Refused as exc:
            fail(str(exc), code=2)
        refresh(t, c.settings, now)
    click.echo("the owner hears of it with the next delivery round (`desk run` sends it at once)")


@tickets.command("promote", short_help="Make set-aside auto mail a real ticket.")
@click.argument("ref")
@click.option("--acknowledge", is_flag=True,
              help="Also send the requester the acknowledgement a new request gets.")
@click.option("--by", "promoter", metavar="EMAIL",
              help="Record who promoted it (default: admin (CLI)).")
@pass_ctx
def tickets_promote(c: Ctx, ref: str, acknowledge: bool, promoter: str | None) -> None:
    """Make auto-generated mail that was set aside (status auto: no owner, no clock) a
    ticket like any other: classified and assigned by today's rules, its owner told, its
    SLA clocks starting now."""
    from desk.work.auto_mail import NotSetAside, promote

    now = c.now()
    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        try:
            a = promote(s, c.settings, t, now, by=promoter or "admin (CLI)",
                        acknowledge=acknowledge)
        except NotSetAside as exc:
            fail(str(exc))
        owner = a.owner.email if a.owner else "nobody (no rule or triage owner)"
        click.echo(f"#{t.ref} is {t.status}, owner {owner}; "
                   + ("the acknowledgement and " if acknowledge else "")
                   + "the owner's notice go with the next delivery round")


@click.command()
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


COMMANDS: tuple[click.Command, ...] = (tickets, approve)
