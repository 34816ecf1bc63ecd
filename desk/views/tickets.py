"""Read-only views of the store, shaped for the CLI's text and JSON output."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from desk.store.models import Outbox, Quarantine, Ticket


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


def ticket_detail(t: Ticket) -> dict[str, Any]:
    data = ticket_summary(t)
    data["participants"] = [{"email": p.email, "kind": p.kind} for p in t.participants]
    data["messages"] = [
        {
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
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size,
                 "stored": a.content is not None, "note": a.note}
                for a in m.attachments
            ],
        }
        for m in t.messages
    ]
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
