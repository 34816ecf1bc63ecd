"""Read-only views of the store, shaped for the CLI's text and JSON output."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from desk.inbox.parse import parse_message
from desk.store.models import Attachment, Message, Outbox, Quarantine, RawMessage, Ticket


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


def list_tickets(session: Session, status: str | None = None) -> list[Ticket]:
    q = select(Ticket).options(selectinload(Ticket.client), selectinload(Ticket.owner),
                               selectinload(Ticket.workers))
    if status:
        q = q.where(Ticket.status == status)
    return list(session.scalars(q.order_by(Ticket.id)))


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
