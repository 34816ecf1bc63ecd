"""Looking at and changing tickets: `tickets` (list, search, show, attachment, set,
confirm) and `approve`."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from desk.cli.common import Ctx, emit_json, fail, pass_ctx
from desk.store.models import Staff, Status, Tier
from desk.store.search import TooManyTerms
from desk.store.tickets import get_ticket
from desk.views.ticket_table import emphasis, ticket_table
from desk.views.tickets import (
    BadFilter,
    TicketFilter,
    found_summary,
    list_tickets,
    parse_since,
    search_tickets,
    ticket_detail,
    ticket_summary,
)
from desk.words import plural

PRIORITIES = ("P1", "P2", "P3", "P4")


if TYPE_CHECKING:
    from desk.work.actions import Actor


@click.group()
def tickets() -> None:
    """Look at, search and change tickets."""


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The filters `list` and `search` share."""
    options = [
        click.option("--status", "statuses", multiple=True,
                     type=click.Choice([s.value for s in Status]),
                     help="Only tickets in this status (repeat for several)."),
        click.option("--priority", "priorities", multiple=True, type=click.Choice(PRIORITIES),
                     help="Only this priority (repeat for several: --priority P1 "
                          "--priority P2)."),
        click.option("--tier", "tiers", multiple=True,
                     type=click.Choice([t.value for t in Tier] + ["unknown"]),
                     help="Only clients of this tier; `unknown`: unknown senders."),
        click.option("--client", metavar="NAME",
                     help="Only this client's tickets (its name or a unique part of it; "
                          "`none`: unknown senders)."),
        click.option("--owner", metavar="EMAIL|NAME",
                     help="Only tickets this staff member owns (address, name or a unique "
                          "part of either; `none`: nobody)."),
        click.option("--breached", is_flag=True,
                     help="Only tickets past an SLA deadline: open ones overdue now, and "
                          "any whose breach was recorded."),
        click.option("--since", metavar="WHEN",
                     help="Only tickets opened since then: a date (2026-11-01), a date and "
                          "time, or a time back from now (12h, 7d, 2w)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(c: Ctx, statuses: tuple[str, ...], priorities: tuple[str, ...],
             tiers: tuple[str, ...], client: str | None, owner: str | None, breached: bool,
             since: str | None) -> TicketFilter:
    try:
        when = parse_since(since, c.now(), c.settings.desk.timezone) if since else None
    except BadFilter as exc:
        fail(str(exc), code=2)
    return TicketFilter(statuses=statuses, priorities=priorities, tiers=tiers, client=client,
                        owner=owner, breached=breached, since=when)


def _width() -> int | None:
    """The terminal's width; piped output keeps whole subjects (COLUMNS still counts)."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


@tickets.command("list", short_help="List tickets, with filters (client, owner, SLA).")
@_filter_options
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (every ticket's fields) instead of a table.")
@pass_ctx
def tickets_list(c: Ctx, /, as_json: bool, **options: Any) -> None:
    """List tickets, oldest first, as a table cut to the terminal's width. The filters
    combine: every one given must hold."""
    filters = _filters(c, **options)
    with c.session() as s:
        try:
            found = list_tickets(s, filters=filters, now=c.now())
        except BadFilter as exc:
            fail(str(exc), code=2)
        if as_json:
            emit_json([ticket_summary(t) for t in found])
            return
        if not found:
            click.echo("no tickets" if filters.is_empty() else "no tickets match")
            return
        for line in ticket_table(found, _width()):
            click.echo(line)
    click.echo(plural(len(found), "ticket"))


@tickets.command("search", short_help="Find tickets by words in their subject and mail.")
@click.argument("words", nargs=-1, required=True)
@_filter_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Show at most this many tickets, the best matches.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: the total and each ticket's fields with score and snippet.")
@pass_ctx
def tickets_search(c: Ctx, /, words: tuple[str, ...], limit: int, as_json: bool,
                   **options: Any) -> None:
    """Find tickets whose subject or mail holds every one of WORDS (each in any mail of
    the ticket), best match first, with the passage that matched.

    Word forms count alike (printer, printers; print, printed, printing); "a phrase" in
    double quotes (quoted for the shell: '"floor 3"') must appear as written; word* finds
    words starting with it; nothing else is syntax. A word starting with "-" goes after
    "--". The desk's own acknowledgements and notices are not searched."""
    query = " ".join(words)
    filters = _filters(c, **options)
    with c.session() as s:
        try:
            result = search_tickets(s, query, filters, c.now(), limit)
        except (BadFilter, TooManyTerms) as exc:
            fail(str(exc), code=2)
        except OperationalError as exc:
            if "no such table" in str(exc):
                fail("the database has no search index yet: run `desk init` to upgrade it",
                     code=2)
            raise
        if not result.terms:
            fail(f"nothing to search for in {query!r}: give words with letters or digits",
                 code=2)
        if as_json:
            emit_json({"query": query, "terms": [str(t) for t in result.terms],
                       "total": result.total,
                       "tickets": [found_summary(f) for f in result.found]})
            return
        if not result.found:
            click.echo(f"no tickets match {query!r}")
            return
        lines = ticket_table([f.ticket for f in result.found], _width(),
                             notes=[f.snippet for f in result.found])
        for line in lines:
            # Bold where the words matched; click drops the codes when not a terminal.
            click.echo(emphasis(line, "\x1b[1m", "\x1b[22m"))
    shown = len(result.found)
    click.echo(plural(result.total, "ticket") + " match" + ("es" if result.total == 1 else "")
               + (f"; the best {shown} shown (--limit {result.total} for all)"
                  if shown < result.total else ""))


@tickets.command("show", short_help="Show a ticket's mail and why it went as it did.")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: the ticket with its messages and events.")
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


@tickets.command("attachment", short_help="Write a ticket's attachment to a file.")
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


@tickets.command("set", short_help="Change a ticket's status, priority, owner or ETA.")
@click.argument("ref")
@click.option("--status", type=click.Choice(["open", "waiting", "resolved", "closed"]),
              help="New status (waiting pauses the SLA clocks).")
@click.option("--priority", type=click.Choice(PRIORITIES), help="New priority.")
@click.option("--owner", metavar="EMAIL", help="New owner (a junior joins as a worker).")
@click.option("--eta", metavar="YYYY-MM-DD", help="The date the client is told to expect.")
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


@tickets.command("confirm", short_help="Apply a client's unconfirmed estimate decision.")
@click.argument("ref")
@click.option("--by", "confirmer", metavar="EMAIL",
              help="Record who checked it with the client (staff address).")
@pass_ctx
def tickets_confirm(c: Ctx, ref: str, confirmer: str | None) -> None:
    """Apply a client's unconfirmed estimate decision, after checking it with them."""
    from desk.sla.clock import refresh
    from desk.work.actions import Refused
    from desk.work.estimates import confirm_decision

    now = c.now()
    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        actor = _cli_actor(s, confirmer)
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


@click.command(short_help="Send a junior's held reply, unchanged.")
@click.argument("held_id", type=int)
@click.option("--by", "approver", metavar="EMAIL", help="Record who approved (staff address).")
@pass_ctx
def approve(c: Ctx, held_id: int, approver: str | None) -> None:
    """Send a junior engineer's held reply to the client, unchanged."""
    from desk.sla.clock import refresh
    from desk.store.models import Outbox
    from desk.work.actions import Refused
    from desk.work.conversation import approve_held

    now = c.now()
    with c.session() as s:
        held = s.get(Outbox, held_id)
        if held is None:
            fail(f"no held reply {held_id}")
        actor = _cli_actor(s, approver)
        try:
            click.echo(approve_held(s, c.settings, held, actor, now))
        except Refused as exc:
            fail(str(exc), code=2)
        ticket = get_ticket(s, str(held.ticket_id))
        if ticket is not None:
            refresh(ticket, c.settings, now)
    click.echo("it goes out with the next delivery round (`desk run` sends it at once)")


def _cli_actor(session: Session, email: str | None) -> Actor:
    """Who an admin's command acts as: the staff member named with --by (refused with
    exit 2 when not on the staff list), else the admin at the command line."""
    from desk.work.actions import Actor

    person = session.scalar(select(Staff).where(Staff.email == email.lower())) \
        if email else None
    if email and person is None:
        fail(f"{email} is not on the staff list", code=2)
    return Actor(person, person.email if person else "admin (CLI)")


COMMANDS: tuple[click.Command, ...] = (tickets, approve)

