"""`desk route`: run the real pipeline (the same list of stages, work/pipeline.py) on a
made-up message and roll everything back, so the explanation is exactly what would
happen, and nothing is created."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import make_msgid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.inbox.message import Address, ParsedMessage
from desk.store.models import Event, Outbox, Ticket
from desk.work.pipeline import process


def explain_route(
    factory: sessionmaker[Session], settings: Settings, sender: str, subject: str, body: str,
    cc: list[str],
) -> dict[str, Any]:
    msg = ParsedMessage(
        message_id=make_msgid(domain="desk-route.invalid")[1:-1],
        sender=Address("", sender.strip().lower()),
        to=[Address("", settings.desk.address)],
        cc=[Address("", a.strip().lower()) for a in cc],
        subject=subject,
        text_body=body,
    )
    now = datetime.now(UTC)
    with factory() as session:
        session.begin()
        try:
            outcome = process(session, msg, settings, now=now, source="route")
            ticket = session.get(Ticket, outcome.ticket_id)
            assert ticket is not None
            events = session.scalars(
                select(Event).where(Event.ticket_id == ticket.id, Event.at == now)
                .order_by(Event.id)).all()
            acked = session.scalar(select(Outbox.id).where(
                Outbox.ticket_id == ticket.id, Outbox.kind == "ack")) is not None
            return {
                "new_ticket": outcome.new_ticket,
                "ticket": None if outcome.new_ticket else ticket.ref,
                "client": ticket.client.name if ticket.client else None,
                "tier": ticket.tier,
                "priority": ticket.priority,
                "sla_policy": next(((e.data or {}).get("sla_policy") for e in events
                                    if e.kind == "classified"), None),
                "owner": ticket.owner.email if ticket.owner else None,
                "workers": [w.email for w in ticket.workers],
                "status": ticket.status,
                "acknowledged": bool(outcome.new_ticket and acked),
                "events": [{"kind": e.kind, "detail": e.detail} for e in events],
                "stages": outcome.stages,
            }
        finally:
            session.rollback()
