"""Read-only views of the store, shaped for the CLI's text and JSON output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, selectinload

from desk.inbox.parse import parse_message
from desk.store.models import (
    OPEN_STATUSES,
    Attachment,
    Client,
    Event,
    Message,
    Outbox,
    Quarantine,
    RawMessage,
    Staff,
    Ticket,
)
from desk.store.search import MARK_END, MARK_START, Hit, Term, parse_query, search, snippets
from desk.words import plural


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def ticket_summary(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "ref": t.ref,
        "subject": t.subject,
        "status": t.status,
        "priority": t.priority,
        "tier": t.tier,
        "client": t.client.name if t.client else None,
        "requester": t.requester_email,
        "assignee": t.owner.email if t.owner else None,
        "workers": [w.email for w in t.workers],
        "created_at": _iso(t.created_at),
        "updated_at": _iso(t.updated_at),
        "message_count": t.message_count,
        "eta": t.eta.isoformat() if t.eta else None,
    }


def _attachment(a: Attachment, index: int) -> dict[str, Any]:
    kept = a.content is not None
    return {
        # The N of `desk tickets attachment REF N`: numbered across the whole ticket.
        "index": index, "name": a.filename, "type": a.content_type, "size": a.size,
        "inline": a.inline, "kept": kept, "note": a.note,
        # The names of earlier versions, for scripts written against them.
        "filename": a.filename, "content_type": a.content_type, "stored": kept,
    }


def ticket_detail(t: Ticket) -> dict[str, Any]:
    data = ticket_summary(t)
    data["participants"] = [{"email": p.email, "kind": p.kind} for p in t.participants]
    data["messages"] = []
    index = 0
    for m in t.messages:
        files = []
        for a in sorted(m.attachments, key=lambda a: a.id):
            index += 1
            files.append(_attachment(a, index))
        data["messages"].append({
            "direction": m.direction,
            "from": m.from_addr,
            "to": m.to_addrs,
            "cc": m.cc_addrs,
            "subject": m.subject,
            "date": _iso(m.date or m.created_at),
            "message_id": m.message_id,
            "body_text": m.body_text,
            "internal": m.internal,
            "auto_generated": m.auto_generated,
            "attachments": files,
        })
    data["events"] = [
        {"at": _iso(e.at), "kind": e.kind, "detail": e.detail, "actor": e.actor}
        for e in t.events
    ]
    return data


class BadFilter(ValueError):
    """A filter that names nothing, or too much: the message says which and why."""


@dataclass(frozen=True)
class TicketFilter:
    """What `desk tickets list` and `search` narrow the tickets to; empty: all of them.
    ``client`` and ``owner`` are as the admin typed them (resolved by ``where``)."""

    statuses: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()  # "unknown": tickets from unknown senders (no tier)
    client: str | None = None
    owner: str | None = None
    breached: bool = False
    since: datetime | None = None

    def is_empty(self) -> bool:
        return self == TicketFilter()


NOBODY = ("none", "-")  # --owner none: unassigned; --client none: unknown senders


def _one_of(kind: str, wanted: str, found: list[tuple[int, str]], listing: str) -> int:
    if len(found) == 1:
        return found[0][0]
    if not found:
        raise BadFilter(f"no {kind} {wanted!r} (`{listing}` shows them)")
    names = ", ".join(sorted(label for _, label in found))
    raise BadFilter(f"{wanted!r} could be {plural(len(found), kind)} ({names}): "
                    "give more of the name")


def _client_clause(session: Session, wanted: str) -> ColumnElement[bool]:
    key = wanted.strip().lower()
    clients = [(cid, name) for cid, name in session.execute(select(Client.id, Client.name))]
    exact = [c for c in clients if c[1].lower() == key]
    if not exact and key in NOBODY:
        return Ticket.client_id.is_(None)
    # A unique part of the name will do: "--client retainer" for "Retainer Co".
    cid = _one_of("client", wanted, exact or [c for c in clients if key in c[1].lower()],
                  "desk client list")
    return Ticket.client_id == cid


def _owner_clause(session: Session, wanted: str) -> ColumnElement[bool]:
    key = wanted.strip().lower()
    staff = [(sid, email, name) for sid, email, name in
             session.execute(select(Staff.id, Staff.email, Staff.name))]
    exact = [(sid, email) for sid, email, name in staff if key in (email.lower(), name.lower())]
    if not exact and key in NOBODY:
        return Ticket.owner_id.is_(None)
    # Former staff included: their old tickets are still theirs.
    partial = [(sid, f"{name} <{email}>") for sid, email, name in staff
               if key in email.lower() or key in name.lower()]
    return Ticket.owner_id == _one_of("staff member", wanted, exact or partial,
                                      "desk staff list")


def _breached_clause(now: datetime) -> ColumnElement[bool]:
    # Overdue now (as `desk sla status` says "breached"), or a breach the clock recorded:
    # a ticket resolved late still breached its SLA.
    overdue = or_(*[column <= now for column in (
        Ticket.first_response_due, Ticket.next_update_due, Ticket.resolution_due)])
    recorded = select(Event.ticket_id).where(Event.kind == "sla_breached", Event.at <= now)
    return or_(Ticket.status.in_(OPEN_STATUSES) & overdue, Ticket.id.in_(recorded))


def where(session: Session, f: TicketFilter, now: datetime) -> list[ColumnElement[bool]]:
    """The filter as SQL conditions on ``Ticket``; ``BadFilter`` if a name is unknown or
    ambiguous."""
    clauses: list[ColumnElement[bool]] = []
    if f.statuses:
        clauses.append(Ticket.status.in_(f.statuses))
    if f.priorities:
        clauses.append(Ticket.priority.in_(f.priorities))
    if f.tiers:
        known = [t for t in f.tiers if t != "unknown"]
        tier = Ticket.tier.in_(known)
        clauses.append(or_(tier, Ticket.tier.is_(None)) if "unknown" in f.tiers else tier)
    if f.client is not None:
        clauses.append(_client_clause(session, f.client))
    if f.owner is not None:
        clauses.append(_owner_clause(session, f.owner))
    if f.breached:
        clauses.append(_breached_clause(now))
    if f.since is not None:
        clauses.append(Ticket.created_at >= f.since)
    return clauses


_AGO = re.compile(r"(\d+)\s*(h|hours?|d|days?|w|weeks?)", re.IGNORECASE)
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_since(value: str, now: datetime, timezone: str) -> datetime:
    """``--since``: a date (from its midnight at the desk), a date and time (the desk's
    time zone unless it says), or a duration back from now: 12h, 7d, 2w."""
    text = value.strip()
    if ago := _AGO.fullmatch(text):
        return now - int(ago.group(1)) * _UNIT[ago.group(2)[0].lower()]
    zone = ZoneInfo(timezone)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(datetime.fromisoformat(text).date(), time(),
                                    tzinfo=zone).astimezone(UTC)
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None:
        raise BadFilter(f"--since {value!r}: give a date (2026-11-01), a date and time "
                        "(2026-11-01T09:00) or a time back from now (12h, 7d, 2w)")
    return (at if at.tzinfo else at.replace(tzinfo=zone)).astimezone(UTC)


def _with_people(q: Any) -> Any:
    return q.options(selectinload(Ticket.client), selectinload(Ticket.owner),
                     selectinload(Ticket.workers))


def list_tickets(session: Session, status: str | None = None,
                 filters: TicketFilter | None = None,
                 now: datetime | None = None) -> list[Ticket]:
    """Tickets, oldest first; ``filters`` narrowed (``now`` is when "breached" is judged)."""
    q = _with_people(select(Ticket))
    if status:
        q = q.where(Ticket.status == status)
    if filters is not None:
        q = q.where(*where(session, filters, now or datetime.now(UTC)))
    return list(session.scalars(q.order_by(Ticket.id)))


@dataclass
class Found:
    ticket: Ticket
    hit: Hit
    snippet: str  # matches marked with MARK_START / MARK_END


@dataclass
class SearchResult:
    terms: list[Term]
    total: int  # matching tickets, of which ``found`` are the best ``limit``
    found: list[Found] = field(default_factory=list)


def search_tickets(session: Session, query: str, filters: TicketFilter, now: datetime,
                   limit: int) -> SearchResult:
    """The tickets holding every word of ``query`` (see ``desk.store.search``) that pass
    ``filters``, best match first, with a snippet of where each matched."""
    terms = parse_query(query)
    hits = search(session, terms)
    if hits and not filters.is_empty():
        allowed = set(session.scalars(select(Ticket.id).where(*where(session, filters, now))))
        hits = [h for h in hits if h.ticket_id in allowed]
    shown = hits[:limit]
    tickets = {t.id: t for t in session.scalars(
        _with_people(select(Ticket)).where(Ticket.id.in_([h.ticket_id for h in shown])))}
    shown = [h for h in shown if h.ticket_id in tickets]
    found = [Found(tickets[h.ticket_id], h, passage)
             for h, passage in zip(shown, snippets(session, shown, terms), strict=True)]
    return SearchResult(terms, len(hits), found)


def found_summary(f: Found) -> dict[str, Any]:
    """One search result as JSON: the ticket as `tickets list` gives it, how well it
    matched and where (the matched words between ``**``)."""
    return {**ticket_summary(f.ticket), "score": float(f"{f.hit.score:.4g}"),
            "snippet": f.snippet.replace(MARK_START, "**").replace(MARK_END, "**")}


def quarantine_dict(q: Quarantine, with_raw: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": q.id,
        "source": q.source_key,
        "reason": q.reason,
        "subject": q.subject,
        "sender": q.sender,
        "status": q.status,
        "size": len(q.raw),
        "created_at": _iso(q.created_at),
    }
    if with_raw:
        data["detail"] = q.detail
        data["raw"] = q.raw.decode("utf-8", errors="replace")
    return data


def outbox_dict(o: Outbox) -> dict[str, Any]:
    return {
        "id": o.id,
        "ticket": o.ticket_id,
        "kind": o.kind,
        "to": o.rcpt_to,
        "subject": o.subject,
        "status": o.status,
        "attempts": o.attempts,
        "next_attempt_at": _iso(o.next_attempt_at),
        "last_error": o.last_error,
        "message_id": o.message_id,
        "created_at": _iso(o.created_at),
        "sent_at": _iso(o.sent_at),
    }


class NoAttachment(Exception):
    pass


def ticket_attachment(session: Session, ticket: Ticket, index: int,
                      ) -> tuple[Attachment, bytes]:
    """The ticket's attachment number ``index`` (as `tickets show` numbers them) and its
    bytes: as stored, or, for one kept as metadata only (over the intake cap), read from
    the original mail while that is kept."""
    rows = list(session.scalars(
        select(Attachment).join(Message, Attachment.message_pk == Message.id)
        .where(Message.ticket_id == ticket.id).order_by(Message.id, Attachment.id)))
    if not 1 <= index <= len(rows):
        raise NoAttachment(f"#{ticket.ref} has no attachment {index}"
                           + (f" (it has 1 to {len(rows)})" if rows else " (it has none)"))
    att = rows[index - 1]
    if att.content is not None:
        return att, att.content
    data = _from_original(session, att, [a for a in rows if a.message_pk == att.message_pk])
    if data is None:
        raise NoAttachment(f"attachment {index} ({att.filename}) was kept as metadata only "
                           f"({att.note or 'no content'}), and the original mail is no longer "
                           "kept ([retention] raw_mail_days)")
    return att, data


def _from_original(session: Session, att: Attachment, siblings: list[Attachment],
                   ) -> bytes | None:
    message = session.get(Message, att.message_pk)
    raw = session.get(RawMessage, message.raw_id) if message and message.raw_id else None
    if raw is None:
        return None
    # Parsed again without the cap: the parts come in the same order as when it was read.
    parsed = parse_message(raw.data, max_attachment_bytes=len(raw.data))
    position = siblings.index(att)
    if position >= len(parsed.attachments):
        return None
    found = parsed.attachments[position]
    if found.filename != att.filename or found.size != att.size:
        return None
    return found.content
