"""The decision log per client: every estimate, approval, decline, scope change, costing
sign-off, priority change and (re)assignment, with who, when and why, from the tickets'
event logs (the single record; nothing is kept twice)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.store.models import Client, Event, Ticket

DECISION_KINDS = ("estimate", "scope_change", "estimate_approved", "estimate_declined",
                  "costing_signed_off", "priority", "assigned", "eta", "decision_refused",
                  "decision_unconfirmed", "decision_confirmed")


def decisions(session: Session, client: Client, since: datetime | None = None
              ) -> list[dict[str, Any]]:
    q = (select(Event, Ticket.id, Ticket.subject).join(Ticket, Ticket.id == Event.ticket_id)
         .where(Ticket.client_id == client.id, Event.kind.in_(DECISION_KINDS))
         .order_by(Event.at, Event.id))
    if since is not None:
        q = q.where(Event.at >= since)
    rows = []
    for event, ticket_id, subject in session.execute(q):
        data = event.data or {}
        rows.append({
            "at": event.at.isoformat(), "ticket": str(ticket_id), "subject": subject,
            "kind": event.kind, "who": event.actor, "detail": event.detail,
            "words": data.get("words"), "message_id": data.get("message_id"),
            "minutes": data.get("minutes"), "cost": data.get("cost"),
        })
    return rows


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    fields = ["at", "ticket", "subject", "kind", "who", "detail", "words", "message_id",
              "minutes", "cost"]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
