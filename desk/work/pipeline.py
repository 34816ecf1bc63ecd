"""One message's journey, top to bottom, inside one database transaction (or, in a batch,
one savepoint of it: inbox/ingest.py).

    screen -> classify -> thread -> (new: open + assign + acknowledge | existing: append)

Every stage is a plain function in its own module with no knowledge of IMAP or SMTP;
every decision is written to the ticket's event log with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from desk.config import Settings
from desk.inbox.message import Address, ParsedMessage
from desk.inbox.screening import auto_reply_blockers, is_bounce
from desk.routing.assign import assign
from desk.routing.classify import Classification, classify
from desk.routing.forward import original_sender
from desk.routing.subject import base_subject
from desk.sla.clock import refresh
from desk.store.deferred import insert_later, insert_now
from desk.store.directory import forget_cached, of_client
from desk.store.models import Client, Contact, Message, Ticket, TicketWorker
from desk.store.tickets import add_event, add_participant, record_inbound
from desk.work.acknowledge import queue_acknowledgement, rate_cap_reason
from desk.work.conversation import handle_client_reply, handle_staff_reply, needs_new_ticket
from desk.work.feedback import answers_feedback_request
from desk.work.notices import notify_staff
from desk.work.which_ticket import ThreadMatch, find_thread

_TICKET_WORKERS = TicketWorker.__table__


NO_SENDER = "no usable From address: nobody to answer"


class Unprocessable(Exception):
    """The message can never be processed as it is: quarantine it with this reason."""


@dataclass(slots=True)
class Outcome:
    ticket_id: int
    new_ticket: bool
    acknowledged: bool


@dataclass(slots=True)
class Journey:
    """One message on its way through the stages: what every stage needs to know."""

    session: Session
    msg: ParsedMessage
    settings: Settings
    now: datetime
    source: str
    raw_id: int | None
    blockers: list[str]


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
        raise Unprocessable(NO_SENDER)

    blockers = auto_reply_blockers(
        msg, own_addresses=[settings.desk.address], loop_header_value=settings.desk.address
    )
    phrases = settings.routing.urgent_phrases
    classification = classify(session, msg, urgent_phrases=phrases)
    match = _thread(session, msg, settings)

    if match.ticket is not None and classification.staff is None and not \
            answers_feedback_request(session, match.ticket, msg) and (
            why := needs_new_ticket(match.ticket, settings, now)):
        old = match.ticket
        match = ThreadMatch(None, "new", f"reply to #{old.ref}, but {why}: a new ticket, linked",
                            linked=old)

    journey = Journey(session, msg, settings, now, source, raw_id, blockers)
    if match.ticket is not None:
        return _append(journey, classification, match)
    requester = msg.sender
    if classification.staff is not None and (original := original_sender(msg)):
        # A colleague forwarded a client's mail: the ticket is the client's.
        requester = original
        classification = classify(session, msg, urgent_phrases=phrases,
                                  on_behalf_of=original.email)
        classification.notes.append(f"forwarded by staff {msg.sender.email} on behalf of "
                                    f"{original.email}")
    return _open_ticket(journey, requester, classification, match)


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
    journey: Journey, requester: Address, classification: Classification, match: ThreadMatch
) -> Outcome:
    session, msg, settings, now = journey.session, journey.msg, journey.settings, journey.now
    source, raw_id, blockers, linked = journey.source, journey.raw_id, journey.blockers, \
        match.linked
    client_tz = ZoneInfo(
        (classification.client.timezone if classification.client else None)
        or settings.desk.timezone
    )
    # Asked before the ticket exists: the query then has nothing of this ticket to flush.
    reason = "; ".join(blockers) if blockers else rate_cap_reason(
        session, settings, requester.email, msg.subject, now)
    assignment = assign(session, classification, rules=settings.routing.rules,
                        text=f"{msg.subject}\n{msg.text_body[:4000]}",
                        triage=settings.desk.triage, today=now.astimezone(client_tz).date(),
                        now=now)
    ticket = Ticket(
        subject=base_subject(msg.subject),
        status=assignment.status,
        priority=classification.priority,
        tier=classification.tier,
        client=classification.client,
        requester_email=requester.email,
        requester_name=requester.name,
        owner=assignment.owner,
        workers=assignment.workers,
        created_at=now,
        updated_at=now,
        last_client_message_at=now,
        sla_policy=classification.sla_policy or ("triage" if classification.client is None
                                                 else None),
        linked_ticket_id=linked.id if linked is not None else None,
    )
    # Deadlines depend only on the ticket's own fields: written with the ticket's INSERT
    # instead of in UPDATEs right after it.
    refresh(ticket, settings, now)
    insert_now(session, ticket)  # its id is its reference, needed for the ack below
    for worker in assignment.workers:
        insert_later(session, _TICKET_WORKERS, {"ticket_id": ticket.id, "staff_id": worker.id})
    inbound = record_inbound(session, ticket, msg, now=now, source=source, raw_id=raw_id,
                             auto_generated=bool(blockers))
    if linked is not None:
        add_event(session, linked, "linked", f"a later reply opened #{ticket.ref}", at=now)
    if classification.client is not None:
        _add_ccs(session, ticket, msg, classification.client, settings)
    add_event(session, ticket, "classified",
              "; ".join([classification.reason, classification.reason_policy,
                         *classification.notes]),
              at=now, data={"tier": classification.tier, "priority": classification.priority,
                            "sla_policy": classification.sla_policy})
    add_event(session, ticket, "threaded", match.detail, at=now, data={"how": match.how})
    _record_refusals(session, match, now)
    if match.refused:
        add_event(session, ticket, "thread_refused",
                  "; ".join(why for _, why in match.refused), at=now)
    owner = assignment.owner.email if assignment.owner else "nobody"
    workers = [w.email for w in assignment.workers]
    summary = f"owner {owner}" + (f", worker {', '.join(workers)}" if workers else "")
    assigned = f"{summary}: " + "; ".join(assignment.reasons)
    add_event(session, ticket, "assigned", assigned, at=now,
              data={"owner": owner, "workers": workers, "rule": assignment.rule})
    for defect in msg.defects:
        add_event(session, ticket, "parse_note", defect, at=now)

    acked = False
    if reason:
        add_event(session, ticket, "ack_suppressed", reason, at=now)
    elif queue_acknowledgement(session, settings, ticket, classification, msg, requester, now):
        acked = True
        add_event(session, ticket, "acknowledged", f"acknowledgement queued to {requester.email}",
                  at=now)
    if not blockers:
        notify_staff(session, settings, ticket, inbound, now, kind="new", reason=assigned)
    return Outcome(ticket.id, True, acked)


def _append(journey: Journey, classification: Classification, match: ThreadMatch) -> Outcome:
    session, msg, settings, now = journey.session, journey.msg, journey.settings, journey.now
    source, raw_id, blockers = journey.source, journey.raw_id, journey.blockers
    ticket = match.ticket
    assert ticket is not None and msg.sender is not None
    inbound = record_inbound(session, ticket, msg, now=now, source=source, raw_id=raw_id,
                             auto_generated=bool(blockers))
    session.flush()
    _record_refusals(session, match, now)
    add_event(session, ticket, "threaded", f"{msg.sender.email}: {match.detail}", at=now,
              data={"how": match.how})
    if match.how == "bounce":
        _mark_bouncing(session, ticket, msg, now)
        return Outcome(ticket.id, False, False)
    staff = classification.staff
    if staff is not None and staff.email != ticket.requester_email:
        handle_staff_reply(session, ticket, msg, inbound, staff, settings, now)
        forget_cached(session)  # a command may have closed or reassigned: load changed
    else:
        if ticket.client is not None:
            _add_ccs(session, ticket, msg, ticket.client, settings)
        handle_client_reply(session, ticket, msg, inbound, settings, now, bool(blockers))
    refresh(ticket, settings, now)
    return Outcome(ticket.id, False, False)


def _add_ccs(
    session: Session, ticket: Ticket, msg: ParsedMessage, client: Client, settings: Settings
) -> None:
    """CC'd colleagues of the same client become participants of the conversation."""
    for addr in msg.cc + msg.to:
        if addr.email == settings.desk.address or addr.email.startswith(
            settings.desk.local_part + "+"
        ):
            continue
        if of_client(session, client, addr.email) and add_participant(
                session, ticket, addr.email, "cc"):
            add_event(session, ticket, "participant", f"{addr.email} (CC'd colleague of "
                          f"{client.name}) joins the conversation", at=ticket.updated_at)


def _mark_bouncing(session: Session, ticket: Ticket, msg: ParsedMessage, now: datetime) -> None:
    failed = [r.lower() for r in msg.dsn_failed_recipients]
    if failed:
        session.execute(update(Contact).where(Contact.email.in_(failed)).values(bouncing=True))
    add_event(session, ticket, "bounce",
              f"delivery failed for {', '.join(failed) or 'an unknown recipient'}", at=now,
              data={"failed": failed})
