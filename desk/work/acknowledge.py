"""The immediate acknowledgement of a new ticket, in the Recommend/Reassure/Explain voice:
the reference, who is on it, when the client will hear from a person (a real time in
their zone, from their SLA and business hours), what their plan covers, and one tip."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from desk.config.settings import Recommendation, Settings
from desk.inbox.message import Address, ParsedMessage
from desk.outbound.mail import OutgoingMail, Thread
from desk.outbound.messages import queue_mail
from desk.routing.classify import Classification
from desk.routing.subject import base_subject, tagged
from desk.sla.deadlines import targets_for
from desk.store.deferred import pending, query
from desk.store.models import Contact, Outbox, Ticket, table
from desk.work.people import LOOK_IT_UP, LookItUp, greeting_for

# Said about each tier when no tip from the phrase table fits.
TIER_TIPS = {
    "hosting": "A maintenance plan covers small changes like this without a separate "
               "sign-off each time; your account manager can tell you what it would cost.",
    "post_project": "A support package gives you agreed response times and keeps the site "
                    "up to date; your account manager can suggest one that fits.",
}


# At most as many rows as the cap, which is all the rows below it.
_RECENT_ACKS = select(Outbox.subject, Outbox.created_at).where(
    Outbox.recipient == bindparam("recipient"), Outbox.kind == "ack",
    Outbox.created_at >= bindparam("since")).limit(bindparam("cap"))
_OUTBOX = table(Outbox)  # pending acks of this transaction are counted from memory


def rate_cap_reason(
    session: Session, settings: Settings, recipient: str, subject: str, now: datetime, *,
    verified: bool = True,
) -> str | None:
    """Why an acknowledgement to ``recipient`` must be skipped now, or None. An address
    desk has not verified (no contact, no staff member: anyone can put it in From) gets
    fewer, so desk cannot be used to reflect mail at a third party."""
    caps = settings.acknowledgements
    since = now - timedelta(hours=caps.window_hours)
    recipient = recipient.lower()
    # Acknowledgements queued in this transaction are still deferred: counted from memory,
    # so a backlog's rows are not written message by message for this question.
    recent: list[tuple[str, datetime]] = [*((row.subject, row.created_at) for row in query(
        session, _RECENT_ACKS, {"recipient": recipient, "since": since,
                                "cap": caps.max_per_sender}, sees_deferred=False)),
        *((row["subject"], row["created_at"]) for row in pending(session, _OUTBOX)
          if row["kind"] == "ack" and row["recipient"] == recipient
          and row["created_at"] >= since)]
    subjects = [s for s, _ in recent]
    if len(subjects) >= caps.max_per_sender:
        return (f"{recipient} already got {len(subjects)} acknowledgements in the last "
                f"{caps.window_hours:g} h (cap {caps.max_per_sender})")
    per_hour = settings.security.unverified_mail_per_hour
    if not verified and sum(at >= now - timedelta(hours=1) for _, at in recent) >= per_hour:
        return (f"{recipient} is not a known contact and already got {per_hour} "
                "acknowledgements in the last hour ([security] unverified_mail_per_hour)")
    wanted = base_subject(subject).lower()
    for sent_subject in subjects:
        if base_subject(sent_subject).lower() == wanted:
            return f"{recipient} was already acknowledged for {wanted!r} within the window"
    return None


def when_text(due: datetime, tz: str, now: datetime) -> str:
    """'by 11:30 today', 'by 09:30 tomorrow', 'by 11:30 on Tuesday 1 December'."""
    zone = ZoneInfo(tz)
    local, today = due.astimezone(zone), now.astimezone(zone).date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return f"by {clock} today"
    if local.date() == today + timedelta(days=1):
        return f"by {clock} tomorrow"
    return f"by {clock} on {local.strftime('%A')} {local.day} {local.strftime('%B')}"


def recommendation(recommendations: list[Recommendation], tier: str | None,
                   text: str) -> dict[str, str | None] | None:
    lowered = text.lower()
    for rec in recommendations:
        if any(p.lower() in lowered for p in rec.phrases):
            return {"tip": rec.tip, "link": rec.link}
    if tier in TIER_TIPS:
        return {"tip": TIER_TIPS[tier], "link": None}
    return None


def ack_context(session: Session, settings: Settings, ticket: Ticket, requester: Address,
                msg: ParsedMessage | None, now: datetime,
                contact: Contact | LookItUp | None = LOOK_IT_UP) -> dict[str, Any]:
    client = ticket.client
    tz = (client.timezone if client else None) or settings.desk.timezone
    targets = targets_for(settings, ticket)
    policy = settings.sla.policy(ticket.sla_policy)
    first = targets.first_response if targets else None
    if ticket.first_response_due is not None:
        when = when_text(ticket.first_response_due, tz, now) + ", your time"
    else:
        when = (policy.courtesy if policy and policy.courtesy else "as soon as we can")
    owner = ticket.owner
    text = f"{msg.subject}\n{msg.text_body[:4000]}" if msg else ticket.subject
    return {
        "desk_name": settings.desk.name,
        "ref": ticket.ref,
        "subject": base_subject(ticket.subject),
        "first_name": greeting_for(session, requester.email, requester.name, contact),
        "client_name": client.name if client else None,
        "tier": ticket.tier,
        "priority": ticket.priority,
        "urgent": ticket.priority == "P1",
        "owner_name": owner.name if owner else None,
        "workers": [w.name for w in ticket.workers],
        "when": when,
        "target": first,
        "status": ticket.status,
        "hours_per_month": client.hours_per_month if client else None,
        "recommendation": recommendation(settings.recommendations, ticket.tier, text),
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
    # The classification looked up the requester's contact record already (or found none).
    context = ack_context(session, settings, ticket, requester, msg, now,
                          contact=classification.contact)
    mail = OutgoingMail(
        kind="ack", event_key=f"ack:ticket:{ticket.id}", to=[requester],
        subject=tagged(ticket.subject, ticket.ref), template=f"ack_{ticket.tier or 'unknown'}",
        context=context, thread=Thread(msg.message_id, [*msg.references, msg.message_id]))
    return queue_mail(session, settings, mail, ticket=ticket, now=now,
                      fresh=True, flush=False)  # a ticket opened in this transaction
