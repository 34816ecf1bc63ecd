"""One message's journey, top to bottom, inside one database transaction.

    screen -> classify -> thread -> (new: open + assign + acknowledge | existing: append)

Every stage is a plain function in its own module with no knowledge of IMAP or SMTP;
every decision is written to the ticket's event log with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from desk.config import Settings
from desk.inbox.message import ParsedMessage
from desk.inbox.screening import auto_reply_blockers, is_bounce
from desk.models import Contact, Message, Status, Ticket
from desk.outbound.acknowledge import queue_acknowledgement, rate_cap_reason
from desk.routing.assign import assign
from desk.routing.classify import Classification, classify
from desk.routing.subject import base_subject
from desk.routing.thread import ThreadMatch, find_thread
from desk.tickets import add_event, add_participant, record_inbound


class Unprocessable(Exception):
    """The message can never be processed as it is: quarantine it with this reason."""


@dataclass(slots=True)
class Outcome:
    ticket_id: int
    new_ticket: bool
    acknowledged: bool
    notes: list[str] = field(default_factory=list)


def process(
    session: Session,
    msg: ParsedMessage,
    settings: Settings,
    *,
    now: datetime,
    source: str,
    raw_id: int | None = None,
) -> Outcome:
    if msg.sender is None:
        raise Unprocessable("no usable From address: nobody to answer")

    blockers = auto_reply_blockers(
        msg, own_addresses=[settings.desk.address], loop_header_value=settings.desk.address
    )
    classification = classify(session, msg)
    match = _thread(session, msg, settings)

    if match.ticket is None:
        return _open_ticket(session, msg, settings, classification, match, blockers, now,
                            source, raw_id)
    return _append(session, msg, classification, match, blockers, now, source, raw_id)


def _thread(session: Session, msg: ParsedMessage, settings: Settings) -> ThreadMatch:
    if is_bounce(msg) and msg.dsn_original_message_id:
        ticket_id = session.scalar(
            select(Message.ticket_id).where(Message.message_id == msg.dsn_original_message_id)
        )
        if ticket_id is not None:
            ticket = session.get(Ticket, ticket_id)
            return ThreadMatch(ticket, "bounce",
                               f"delivery report for <{msg.dsn_original_message_id}>")
    return find_thread(session, msg, support_address=settings.desk.address,
                       secret=settings.desk.secret)


def _record_refusals(session: Session, match: ThreadMatch, now: datetime) -> None:
    for target, why in match.refused:
        add_event(session, target, "thread_refused", why, at=now)


def _open_ticket(
    session: Session,
    msg: ParsedMessage,
    settings: Settings,
    classification: Classification,
    match: ThreadMatch,
    blockers: list[str],
    now: datetime,
    source: str,
    raw_id: int | None,
) -> Outcome:
    assert msg.sender is not None
    client_tz = ZoneInfo(
        (classification.client.timezone if classification.client else None)
        or settings.desk.timezone
    )
    assignment = assign(session, classification, triage=settings.desk.triage,
                        today=now.astimezone(client_tz).date())
    ticket = Ticket(
        subject=base_subject(msg.subject),
        status=assignment.status,
        priority=classification.priority,
        tier=classification.tier,
        client=classification.client,
        requester_email=msg.sender.email,
        requester_name=msg.sender.name,
        owner=assignment.owner,
        created_at=now,
        updated_at=now,
        last_client_message_at=now,
    )
    session.add(ticket)
    session.flush()  # the ticket's id is its reference, needed for the ack below
    record_inbound(session, ticket, msg, now=now, source=source, raw_id=raw_id,
                   auto_generated=bool(blockers))
    _add_ccs(session, ticket, msg, classification, settings)
    add_event(session, ticket, "classified", classification.reason, at=now,
              data={"tier": classification.tier, "priority": classification.priority})
    add_event(session, ticket, "threaded", match.detail, at=now, data={"how": match.how})
    _record_refusals(session, match, now)
    if match.refused:
        add_event(session, ticket, "thread_refused",
                  "; ".join(why for _, why in match.refused), at=now)
    owner = assignment.owner.email if assignment.owner else "nobody"
    add_event(session, ticket, "assigned", f"owner {owner}: " + "; ".join(assignment.reasons),
              at=now, data={"owner": owner})
    for defect in msg.defects:
        add_event(session, ticket, "parse_note", defect, at=now)

    acked = False
    reason = "; ".join(blockers) if blockers else rate_cap_reason(
        session, settings, msg.sender.email, msg.subject, now)
    if reason:
        add_event(session, ticket, "ack_suppressed", reason, at=now)
    elif queue_acknowledgement(session, settings, ticket, classification, msg, now):
        acked = True
        add_event(session, ticket, "acknowledged", f"acknowledgement queued to {msg.sender.email}",
                  at=now)
    return Outcome(ticket.id, True, acked)


def _append(
    session: Session,
    msg: ParsedMessage,
    classification: Classification,
    match: ThreadMatch,
    blockers: list[str],
    now: datetime,
    source: str,
    raw_id: int | None,
) -> Outcome:
    ticket = match.ticket
    assert ticket is not None and msg.sender is not None
    record_inbound(session, ticket, msg, now=now, source=source, raw_id=raw_id,
                   auto_generated=bool(blockers))
    _record_refusals(session, match, now)
    add_event(session, ticket, "threaded", f"{msg.sender.email}: {match.detail}", at=now,
              data={"how": match.how})
    if match.how == "bounce":
        _mark_bouncing(session, ticket, msg, now)
    elif not blockers and msg.sender.email == ticket.requester_email:
        ticket.last_client_message_at = now
        if ticket.status == Status.waiting:
            ticket.status = Status.open
            add_event(session, ticket, "status", "waiting -> open: the client replied", at=now)
    return Outcome(ticket.id, False, False)


def _add_ccs(
    session: Session,
    ticket: Ticket,
    msg: ParsedMessage,
    classification: Classification,
    settings: Settings,
) -> None:
    """CC'd colleagues of the same client become participants of the conversation."""
    if classification.client is None:
        return
    for addr in msg.cc + msg.to:
        if addr.email == settings.desk.address or addr.email.startswith(
            settings.desk.local_part + "+"
        ):
            continue
        contact = session.scalar(select(Contact).where(Contact.email == addr.email))
        same_domain = any(addr.domain == d.domain for d in classification.client.domains)
        if (contact and contact.client_id == classification.client.id) or same_domain:
            add_participant(session, ticket, addr.email, "cc")


def _mark_bouncing(session: Session, ticket: Ticket, msg: ParsedMessage, now: datetime) -> None:
    failed = [r.lower() for r in msg.dsn_failed_recipients]
    if failed:
        session.execute(update(Contact).where(Contact.email.in_(failed)).values(bouncing=True))
    add_event(session, ticket, "bounce",
              f"delivery failed for {', '.join(failed) or 'an unknown recipient'}", at=now,
              data={"failed": failed})
