"""Ticket store operations shared by the pipeline stages and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.store.deferred import insert_later
from desk.store.models import Event, EventKind, Participant, Ticket, table

_EVENTS = table(Event)  # the table itself, beneath the ORM


def add_event(
    session: Session,
    ticket: Ticket,
    kind: EventKind,
    detail: str,
    *,
    at: datetime,
    actor: str = "desk",
    data: dict[str, Any] | None = None,
) -> None:
    if ticket.id is None:  # not written yet: the event goes with the ticket's own flush
        session.add(Event(ticket=ticket, at=at, kind=kind, detail=detail, actor=actor,
                          data=data))
        return
    # Written once, never read back before the next query: deferred into one multi-row
    # INSERT with the message's other events, skipping the unit of work's bookkeeping.
    insert_later(session, _EVENTS, {
        "ticket_id": ticket.id, "at": at, "kind": kind, "detail": detail, "actor": actor,
        "data": data})


def add_participant(session: Session, ticket: Ticket, email: str, kind: str) -> bool:
    email = email.lower()
    if not email or email == ticket.requester_email:
        return False
    exists = session.scalar(
        select(Participant.id).where(Participant.ticket_id == ticket.id, Participant.email == email)
    )
    if exists is None and not any(p.email == email for p in ticket.participants):
        ticket.participants.append(Participant(email=email, kind=kind))
        return True
    return False


def get_ticket(session: Session, ref: str) -> Ticket | None:
    ref = ref.strip().lstrip("#")
    return session.get(Ticket, int(ref)) if ref.isdigit() else None
