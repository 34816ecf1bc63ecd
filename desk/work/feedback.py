"""Feedback a busy client can give at once: "Was this resolved? (yes/no)" and "How did we
do, 1 to 10?", answered by replying with just the word or number."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.inbox.message import Address, ParsedMessage
from desk.inbox.quotes import reply_text
from desk.names import staff_greeting
from desk.outbound.mail import OutgoingMail
from desk.outbound.messages import client_thread, queue_mail, staff_address
from desk.routing.subject import tagged
from desk.store.models import Feedback, Message, Outbox, Staff, Ticket
from desk.store.tickets import add_event
from desk.work.people import greeting_for

_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10}
_RATING = re.compile(r"(?<![\d.])(10|[1-9])(?:\s*(?:/|out of|von|sur|op)\s*10)?(?![\d.])",
                     re.IGNORECASE)
_YES = re.compile(r"^\s*(?:yes|yep|yeah|ja|oui|sí|si|resolved|solved|all good|fixed)\b",
                  re.IGNORECASE)
_NO = re.compile(r"^\s*(?:no|nope|nein|non|not (?:really|yet|resolved|fixed)|still broken)\b",
                 re.IGNORECASE)


def parse_feedback(text: str) -> tuple[bool | None, int | None, str]:
    """(resolved, rating 1-10, comment) from what the client wrote (quotes removed)."""
    written = reply_text(text).strip()
    first = " ".join(written.split())[:400]
    resolved = True if _YES.match(first) else False if _NO.match(first) else None
    rating = None
    m = _RATING.search(first)
    if m:
        rating = int(m.group(1))
    else:
        word = re.search(r"\b(" + "|".join(_WORDS) + r")\b", first.lower())
        rating = _WORDS[word.group(1)] if word else None
    return resolved, rating, written[:2000]


def request_feedback(session: Session, settings: Settings, ticket: Ticket,
                     now: datetime) -> None:
    if not settings.feedback.enabled or ticket.resolved_at is None:
        return
    row = queue_mail(session, settings, OutgoingMail(
        kind="feedback_request",
        event_key=f"feedback:{ticket.id}:{ticket.resolved_at.isoformat()}",
        to=[_requester(ticket)], subject=f"Was this resolved? {tagged(ticket.subject, ticket.ref)}",
        template="feedback_request", thread=client_thread(session, ticket),
        context={"ref": ticket.ref, "subject": ticket.subject, "desk_name": settings.desk.name,
                 "first_name": greeting_for(session, ticket.requester_email,
                                            ticket.requester_name)},
    ), ticket=ticket, now=now)
    if row is not None:
        add_event(session, ticket, "feedback_requested", f"asked {ticket.requester_email} for "
                  "feedback", at=now)


def _requester(ticket: Ticket) -> Address:

    return Address(ticket.requester_name, ticket.requester_email)


def answers_feedback_request(session: Session, ticket: Ticket, msg: ParsedMessage) -> bool:
    """Is this mail a reply to our feedback request on this ticket?"""
    ids = [*msg.in_reply_to, *msg.references]
    if not ids:
        return False
    return session.scalar(select(Outbox.id).where(
        Outbox.ticket_id == ticket.id, Outbox.kind == "feedback_request",
        Outbox.message_id.in_(ids))) is not None


def record_feedback(session: Session, settings: Settings, ticket: Ticket, msg: ParsedMessage,
                    inbound: Message, now: datetime) -> Feedback:
    resolved, rating, comment = parse_feedback(msg.text_body)
    fb = Feedback(ticket_id=ticket.id, client_id=ticket.client_id, resolved=resolved,
                  rating=rating, comment=comment,
                  from_addr=msg.sender.email if msg.sender else "", message_id=msg.message_id,
                  created_at=now)
    session.add(fb)
    session.flush()
    inbound.internal = False
    add_event(session, ticket, "feedback", f"resolved: {_yn(resolved)}, rating: "
              f"{rating if rating is not None else '-'}" + (f": {comment[:120]!r}" if comment
                                                            else ""), at=now,
              actor=fb.from_addr, data={"rating": rating, "resolved": resolved})
    low = (rating is not None and rating <= settings.feedback.low_score) or resolved is False
    if low:
        _alert_account_manager(session, settings, ticket, fb, now)
    return fb


def _yn(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def _alert_account_manager(session: Session, settings: Settings, ticket: Ticket,
                           fb: Feedback, now: datetime) -> None:
    email = ticket.client.account_manager if ticket.client else settings.desk.triage
    person = session.scalar(select(Staff).where(Staff.email == email)) if email else None
    if person is None:
        return
    queue_mail(session, settings, OutgoingMail(
        kind="feedback_alert", event_key=f"feedback_alert:{fb.id}", to=[staff_address(person)],
        staff_id=person.id,
        subject=f"Unhappy client: {tagged(ticket.subject, ticket.ref)}",
        template="feedback_alert", internal=True,
        context={"staff_name": staff_greeting(person.name, person.email), "ref": ticket.ref,
                 "client": ticket.client.name if ticket.client else ticket.requester_email,
                 "rating": fb.rating, "resolved": _yn(fb.resolved), "comment": fb.comment,
                 "threshold": settings.feedback.low_score, "desk_name": settings.desk.name},
    ), ticket=ticket, now=now)
    add_event(session, ticket, "feedback_alert", f"low feedback: told {person.email}", at=now)
