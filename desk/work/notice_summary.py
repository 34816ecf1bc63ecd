"""Notice floods: a backlog read after downtime, or a client's mail loop, would send an
engineer one notice per ticket. Each staff member gets at most ``[notices]
max_per_staff`` notices (new ticket, client reply, assignment) in each window of
``window_minutes``; the rest wait and go together in one summary mail when the window
ends, each ticket listed with the reply address bound to that person (the one its notice
would have carried), so answering from the summary proves who wrote as a notice does.

Windows are fixed (whole multiples of the length since the epoch, in UTC). Exactly once,
whatever crashes: a waiting notice takes the notice's own event key in the transaction
that would have queued the notice (desk/outbound/outbox.py ``enqueue_waiting``), so it is
never both mailed and summarised; one transaction queues the summary, keyed by its
window and the first notice it lists, and marks what it lists as summarised, so no
notice is in two summaries. P1 notices never wait: a page that says the site is
down is not held back for a quarter of an hour.

The daemon's clock loop sends what is due once a window has ended; ``desk run --once``
sends everything waiting at the end of its run, as no loop of its own will be there
when the window ends (under cron that is at most one summary per run).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.inbox.message import Address
from desk.inbox.quotes import reply_text
from desk.names import staff_greeting
from desk.outbound.compose import new_message_id
from desk.outbound.mail import OutgoingMail
from desk.outbound.messages import queue_mail
from desk.outbound.outbox import SUMMARISED, WAITING, enqueue_waiting
from desk.routing.subject import tagged
from desk.routing.tokens import staff_token_address
from desk.store.db import is_postgres, transaction
from desk.store.deferred import pending, query
from desk.store.models import Client, Message, Outbox, Staff, Ticket, table
from desk.store.tickets import add_event
from desk.words import plural
from desk.work.people import is_stranger

NOTICE_KINDS = ("notice_new", "notice_reply", "notice_assigned")
_OUTBOX = table(Outbox)
# At most as many rows as the cap: all a decision needs.
_RECENT_NOTICES = select(Outbox.id).where(
    Outbox.recipient == bindparam("recipient"), Outbox.kind.in_(NOTICE_KINDS),
    Outbox.created_at >= bindparam("since")).limit(bindparam("cap"))
_CHUNK = 500  # ids per IN (...): far below any database's limit on parameters
_COUNTS = "desk.notice_counts"  # session.info: {(recipient, window): notices counted}


def notice_key(kind: str, inbound_id: int, staff_id: int, now: datetime) -> str:
    """The event a notice answers, whether mailed alone or summarised. An assignment can
    happen again later (reassigned back): keyed by time too."""
    return (f"notice:{kind}:{inbound_id}:{staff_id}"
            + (f":{now.isoformat()}" if kind == "assigned" else ""))


def _inbound_of(key: str) -> int | None:
    parts = key.split(":")
    return int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None


def window_start(when: datetime, minutes: int) -> datetime:
    span = minutes * 60
    return datetime.fromtimestamp(int(when.timestamp()) // span * span, UTC)


def must_wait(session: Session, settings: Settings, ticket: Ticket, recipient: str,
              now: datetime) -> bool:
    """Must this notice to ``recipient`` wait for the summary? The caller queues it either
    way (alone or waiting), and it counts towards the cap either way; P1 notices never
    wait, but count. The count comes from one indexed query (recipient, kind,
    created_at) of at most the cap's rows, with this transaction's unwritten rows counted
    from memory; then it is kept in the session for the transaction, so a backlog asks
    once per person and batch, not once per notice."""
    caps = settings.notices
    since = window_start(now, caps.window_minutes)
    recipient = recipient.lower()
    counts: dict[tuple[str, datetime], int] = session.info.setdefault(_COUNTS, {})
    had = counts.get((recipient, since))
    if had is None:
        had = len(query(session, _RECENT_NOTICES, {"recipient": recipient, "since": since,
                                                   "cap": caps.max_per_staff},
                        sees_deferred=False).all())
        if had < caps.max_per_staff:
            had += sum(1 for row in pending(session, _OUTBOX)
                       if row["recipient"] == recipient and row["kind"] in NOTICE_KINDS
                       and row["created_at"] >= since)
    counts[(recipient, since)] = had + 1
    return had >= caps.max_per_staff and ticket.priority != "P1"


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_counts(session: Session, *_: Any) -> None:
    # Committed: other desks may write too, ask again. Rolled back (a savepoint too):
    # what was counted may be gone.
    session.info.pop(_COUNTS, None)


def wait_for_summary(session: Session, settings: Settings, ticket: Ticket, person: Staff,
                     kind: str, key: str, subject: str, now: datetime, *,
                     fresh: bool) -> bool:
    """Keep this notice for the window's summary. Returns False when its event already
    had its mail."""
    return enqueue_waiting(
        session, ticket=ticket, kind=f"notice_{kind}", event_key=key,
        recipient=person.email, subject=subject, mail_from=settings.desk.address,
        message_id=new_message_id(settings.desk.domain, f"desk.{ticket.ref}.waiting"),
        now=now, fresh=fresh)


# -- the summary -------------------------------------------------------------------
@dataclass(slots=True)
class _Entry:
    """One ticket in a summary, however many of its notices waited."""

    ticket: Ticket
    kinds: list[str] = field(default_factory=list)
    latest: Message | None = None
    stranger: bool = False  # the latest reply came from none of the client's people


def send_due_summaries(factory: sessionmaker[Session], settings: Settings, now: datetime,
                       *, everything: bool = False) -> int:
    """Queue the summary of every window that has ended (``everything``: of every window,
    the current one too) in one transaction; returns how many were queued."""
    with transaction(factory) as session:
        return queue_due_summaries(session, settings, now, everything=everything)


def queue_due_summaries(session: Session, settings: Settings, now: datetime, *,
                        everything: bool = False) -> int:
    minutes = settings.notices.window_minutes
    q = select(Outbox).where(Outbox.status == WAITING).order_by(Outbox.id)
    if not everything:  # windows that have ended; by the index (status, next_attempt_at)
        q = q.where(Outbox.next_attempt_at < window_start(now, minutes))
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        # Another desk flushing at the same moment takes the rows this one has not.
        q = q.with_for_update(skip_locked=True)
    groups: dict[tuple[str, datetime], list[Outbox]] = {}
    for row in session.scalars(q):
        groups.setdefault((row.recipient, window_start(row.created_at, minutes)),
                          []).append(row)
    if not groups:
        return 0
    rows = [row for group in groups.values() for row in group]
    tickets = {t.id: t for t in _load(session, Ticket, {r.ticket_id for r in rows
                                                        if r.ticket_id is not None})}
    _load(session, Client, {t.client_id for t in tickets.values() if t.client_id})
    inbound_ids = [i for r in rows if (i := _inbound_of(r.event_key)) is not None]
    inbound = {m.id: m for m in _load(session, Message, set(inbound_ids))}
    staff = {s.email.lower(): s for s in session.scalars(
        select(Staff).where(Staff.email.in_({email for email, _ in groups})))}
    for (email, start), group in groups.items():
        entries: dict[int, _Entry] = {}
        for row in group:
            ticket = tickets.get(row.ticket_id) if row.ticket_id is not None else None
            if ticket is None:
                continue  # erased since: nothing left to tell
            entry = entries.setdefault(ticket.id, _Entry(ticket))
            entry.kinds.append(row.kind)
            message = inbound.get(_inbound_of(row.event_key) or 0)
            if message is not None and row.kind != "notice_assigned":
                entry.latest = message
        if entries:
            person = staff.get(email)
            for entry in entries.values():  # as its notice would have said
                entry.stranger = (entry.latest is not None and "notice_reply" in entry.kinds
                                  and is_stranger(session, entry.ticket,
                                                  entry.latest.from_addr))
            span = _queue_summary(session, settings, email, person, list(entries.values()),
                                  start, _summary_key(person.id if person else email, start,
                                                      group[0]), now)
            for entry in entries.values():  # `desk tickets show` tells where the notice went
                add_event(session, entry.ticket, "notice_summarised",
                          f"{plural(len(entry.kinds), 'notice')} to {email} over the "
                          f"[notices] cap went in the {span} summary mail", at=now,
                          data={"recipient": email, "kinds": entry.kinds})
        for chunk in _chunks([row.id for row in group]):
            session.execute(update(Outbox).where(Outbox.id.in_(chunk))
                            .values(status=SUMMARISED))
    return len(groups)


def _load(session: Session, model: Any, ids: Iterable[int]) -> list[Any]:
    found: list[Any] = []
    for chunk in _chunks(sorted(ids)):
        found += session.scalars(select(model).where(model.id.in_(chunk)))
    return found


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    return (ids[i:i + _CHUNK] for i in range(0, len(ids), _CHUNK))


def _summary_key(staff_id: int | str, start: datetime, first: Outbox) -> str:
    """``notice_summary:<staff>:<window>:<first waiting row>``: the same key for the same
    notices whenever it is written (after a crash, by another desk), and a second summary
    of one window (``desk run --once`` sent one before the window ended; another desk took
    notices this one had not seen) never collides with the first."""
    return f"notice_summary:{staff_id}:{start.strftime('%Y%m%dT%H%MZ')}:{first.id}"


def _queue_summary(session: Session, settings: Settings, email: str, person: Staff | None,
                   entries: list[_Entry], start: datetime, key: str, now: datetime) -> str:
    """Queue one summary mail; returns its window in words ("10:00-10:15 on Mon 23 Nov")."""
    zone = ZoneInfo(settings.desk.timezone)
    minutes = settings.notices.window_minutes
    begin, end = start.astimezone(zone), (start + timedelta(minutes=minutes)).astimezone(zone)
    day = f" on {begin:%a %d %b}"
    span = f"{begin:%H:%M}-{end:%H:%M}{day}"
    items = [_item(settings, entry, person) for entry in entries]
    queue_mail(session, settings, OutgoingMail(
        kind="notice_summary", event_key=key,
        to=[Address(person.name if person else "", email)],
        staff_id=person.id if person else None,
        subject=f"{plural(len(items), 'more ticket')} for you, {span}"
                f" ({', '.join(i['short'] for i in items[:3])}"
                f"{', ...' if len(items) > 3 else ''})",
        template="notice_summary", internal=True,
        context={"staff_name": staff_greeting(person.name, email) if person else email,
                 "items": items, "begin": f"{begin:%H:%M}", "end": f"{end:%H:%M}{day}",
                 "cap": settings.notices.max_per_staff,
                 "window_minutes": minutes, "desk_name": settings.desk.name},
    ), ticket=None, now=now)
    return span


def _item(settings: Settings, entry: _Entry, person: Staff | None) -> dict[str, Any]:
    ticket, desk = entry.ticket, settings.desk
    # Bound to this person, as the notice's Reply-To would have been: a reply written
    # there proves it was them (desk/work/identity.py).
    address = (staff_token_address(desk.address, desk.secret, ticket.ref, person.id)
               if person is not None else None)
    subject = f"Re: {tagged(ticket.subject, ticket.ref)}"
    replies = entry.kinds.count("notice_reply")
    what = [("new ticket" if kind == "notice_new" else "assigned to you")
            for kind in dict.fromkeys(entry.kinds) if kind != "notice_reply"]
    if replies:
        what.append(plural(replies, "reply"))
    latest = entry.latest
    excerpt = ""
    if latest is not None:
        text = reply_text(latest.body_text) if latest.direction == "in" else ""
        excerpt = " ".join(text.split())
        excerpt = excerpt[:200] + ("..." if len(excerpt) > 200 else "")
    client = ticket.client.name if ticket.client else None
    return {
        "ref": ticket.ref, "subject": ticket.subject, "priority": ticket.priority,
        "status": ticket.status, "client": client, "what": ", ".join(what),
        "from": latest.from_addr if latest else ticket.requester_email,
        "from_name": latest.from_name if latest else ticket.requester_name,
        "excerpt": excerpt, "reply_address": address, "stranger": entry.stranger,
        "mailto": (f"mailto:{quote(address, safe='@')}?subject={quote(subject)}"
                   if address else None),
        "short": f"#{ticket.ref}",
    }
