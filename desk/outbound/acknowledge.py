"""The immediate acknowledgement of a new ticket ("we've seen it"), with rate caps."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desk.config import Settings
from desk.inbox.message import Address, ParsedMessage
from desk.models import Outbox, Ticket
from desk.outbound.compose import build_mail, new_message_id, to_bytes
from desk.outbound.outbox import enqueue
from desk.outbound.render import render_first
from desk.routing.classify import Classification
from desk.routing.subject import base_subject, tagged
from desk.routing.tokens import token_address
from desk.sla.policy import promise_for


def rate_cap_reason(
    session: Session, settings: Settings, recipient: str, subject: str, now: datetime
) -> str | None:
    """Why an acknowledgement to ``recipient`` must be skipped now, or None."""
    caps = settings.acknowledgements
    since = now - timedelta(hours=caps.window_hours)
    recent = select(Outbox.subject).where(
        Outbox.recipient == recipient.lower(), Outbox.kind == "ack", Outbox.created_at >= since
    )
    count = session.scalar(select(func.count()).select_from(recent.subquery())) or 0
    if count >= caps.max_per_sender:
        return (f"{recipient} already got {count} acknowledgements in the last "
                f"{caps.window_hours:g} h (cap {caps.max_per_sender})")
    wanted = base_subject(subject).lower()
    for (sent_subject,) in session.execute(recent):
        if base_subject(sent_subject).lower() == wanted:
            return f"{recipient} was already acknowledged for {wanted!r} within the window"
    return None


def ack_context(
    settings: Settings, ticket: Ticket, classification: Classification, requester: Address
) -> dict[str, object]:
    promise = promise_for(classification.tier)
    owner = ticket.owner
    return {
        "desk_name": settings.desk.name,
        "ref": ticket.ref,
        "subject": base_subject(ticket.subject),
        "requester_name": requester.name.split()[0] if requester.name.strip() else "",
        "client_name": classification.client.name if classification.client else None,
        "tier": classification.tier,
        "priority": ticket.priority,
        "urgent": ticket.priority == "P1",
        "owner_name": owner.name if owner else None,
        "first_response": promise.first_response,
        "covers": promise.covers,
        "status": ticket.status,
    }


def queue_acknowledgement(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    classification: Classification,
    msg: ParsedMessage,
    requester: Address,
    now: datetime,
) -> Outbox | None:
    ctx = ack_context(settings, ticket, classification, requester)
    tier = classification.tier or "unknown"
    _, text = render_first(
        [f"ack_{tier}.txt.j2", "ack.txt.j2"], ctx, settings.template_override_dir
    )
    mail = build_mail(
        from_addr=Address(settings.desk.name, settings.desk.address),
        to=[requester],
        subject=tagged(ticket.subject, ticket.ref),
        text=text,
        message_id=new_message_id(settings.desk.domain, f"desk.{ticket.ref}.ack"),
        date=now,
        reply_to=token_address(settings.desk.address, settings.desk.secret, ticket.ref),
        in_reply_to=msg.message_id,
        references=[*msg.references, msg.message_id],
        loop_value=settings.desk.address,
    )
    return enqueue(
        session,
        ticket=ticket,
        kind="ack",
        event_key=f"ack:ticket:{ticket.id}",
        mail=mail,
        raw=to_bytes(mail),
        mail_from=settings.desk.address,
        recipients=[requester.email],
        now=now,
        body_text=text,
    )
