"""`desk templates preview`: render a template with a real ticket's context, or with a
sample ticket made inside a transaction that is rolled back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.inbox.message import Address
from desk.names import staff_greeting
from desk.outbound.render import render
from desk.sla.clock import refresh
from desk.store.models import Client, Message, Staff, Ticket
from desk.store.tickets import get_ticket
from desk.work.acknowledge import ack_context
from desk.work.notices import COMMANDS, assignment_reason, ticket_facts


class PreviewError(Exception):
    pass


def _sample_ticket(session: Session, settings: Settings, tier: str | None,
                   now: datetime) -> Ticket:
    client = None
    if tier:
        client = session.scalar(select(Client).where(Client.tier == tier).limit(1)) or Client(
            name=f"Sample {tier} client", tier=tier, timezone=settings.desk.timezone,
            hours_per_month=10 if tier in ("retainer", "support_sla") else None)
    owner = session.scalar(select(Staff).where(Staff.active.is_(True)).limit(1)) or Staff(
        email="owner@agency.example", name="Olivia Owner", role="project_manager")
    ticket = Ticket(subject="The contact form does not send anything", status="new",
                    priority="P2", tier=tier, client=client, requester_email="client@example.com",
                    requester_name="Carol Client", owner=owner, created_at=now, updated_at=now,
                    sla_policy=tier or "triage")
    session.add(ticket)
    session.flush()
    refresh(ticket, settings, now)
    return ticket


def _context(name: str, session: Session, settings: Settings, ticket: Ticket,
             now: datetime) -> dict[str, Any]:
    requester = Address(ticket.requester_name, ticket.requester_email)
    if name.startswith("ack"):
        return ack_context(session, settings, ticket, requester, None, now)
    first = session.scalar(select(Message).where(Message.ticket_id == ticket.id,
                                                 Message.direction == "in").limit(1))
    body = first.body_text if first else "Hello, the contact form on our site sends nothing."
    staff_name = staff_greeting(ticket.owner.name, ticket.owner.email) if ticket.owner \
        else "Olivia"
    common = {"ref": ticket.ref, "subject": ticket.subject, "staff_name": staff_name,
              "desk_name": settings.desk.name, "commands": COMMANDS}
    if name == "notice":
        return {**common, "kind": "new", "from": ticket.requester_email,
                "from_name": ticket.requester_name, "message": body, "role": "owner",
                "facts": ticket_facts(session, settings, ticket, now),
                "reason": assignment_reason(session, ticket) or "(sample) rule 'project and "
                          "retainer -> project manager'"}
    if name == "relay":
        return {**common, "body": "We have fixed the form: messages reach you again.",
                "author_name": ticket.owner.name if ticket.owner else "Olivia Owner"}
    if name == "approval_request":
        return {**common, "junior": "Jo Junior", "junior_email": "jo@agency.example",
                "body": "Hi, the form is fixed now.", "held_id": 1, "to": ticket.requester_email,
                "client": ticket.client.name if ticket.client else ticket.requester_email}
    if name == "refused":
        return {**common, "reasons": ["#assign jo@agency.example: #assign is for account "
                                      "managers, project managers; you are a senior engineer"]}
    if name == "attachments":
        return {**common, "part": 1, "parts": 1, "cap": "10 MiB",
                "files": [{"index": 1, "name": "checkout.png", "type": "image/png",
                           "size": "184 KB"}],
                "left": [{"index": 2, "name": "site-backup.zip", "type": "application/zip",
                          "size": "48 MB", "why": "over the 10 MiB a mail may carry",
                          "command": f"desk tickets attachment {ticket.ref} 2 --out FILE"}]}
    if name == "rejected":
        return {**common, "rejected_by": "paul@agency.example",
                "reason": "Please explain the cause, not only the fix."}
    return {**common, "ticket": ticket_facts(session, settings, ticket, now)}


def preview(factory: sessionmaker[Session], settings: Settings, name: str, ref: str | None,
            fmt: str = "txt") -> str:
    name = name.removesuffix(".j2").removesuffix(".txt").removesuffix(".html")
    now = datetime.now(UTC)
    with factory() as session:
        session.begin()
        try:
            if ref:
                ticket = get_ticket(session, ref)
                if ticket is None:
                    raise PreviewError(f"no ticket {ref}")
            else:
                tier = name.removeprefix("ack_") if name.startswith("ack_") else "retainer"
                ticket = _sample_ticket(session, settings,
                                        None if tier in ("unknown", "base") else tier, now)
            context = _context(name, session, settings, ticket, now)
            try:
                return render(f"{name}.{fmt}.j2", context, settings.template_override_dir)
            except Exception as exc:  # a broken override: say which and why
                raise PreviewError(f"{name}.{fmt}.j2: {type(exc).__name__}: {exc}") from exc
        finally:
            session.rollback()
