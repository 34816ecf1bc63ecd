"""Which ticket does this mail join? The one place that answers it: ``which_ticket``.

In order (DESIGN.md invariant 4):

1. a delivery report joins the ticket of the mail that bounced;
2. our signed reply-token address;
3. In-Reply-To / References against every stored Message-ID, ours and theirs;
4. a ``[#REF]`` subject tag, honoured only from a participant of that ticket;
5. else a new ticket.

Then, for a client's mail that joined a ticket: an answer to our feedback request stays
on its ticket whatever its state; a reply to a closed ticket (or one resolved too long
ago) opens a new ticket linked to it; a reply that decides a pending estimate is marked
as such. Guessing a number never lets a stranger write into someone else's ticket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.inbox.message import ParsedMessage
from desk.inbox.screening import is_bounce
from desk.routing.subject import subject_refs
from desk.routing.tokens import Token, parse_token
from desk.store.models import Contact, Message, Participant, Staff, Status, Ticket
from desk.work.estimates import decision_in, pending_estimate
from desk.work.feedback import answers_feedback_request

# How a mail found its ticket (recorded in the "threaded" event).
How = Literal["bounce", "token", "references", "subject", "new"]
# What a client's mail on a ticket answers, when it answers something we asked.
Answers = Literal["feedback", "estimate_decision"]


@dataclass(slots=True)
class ThreadMatch:
    ticket: Ticket | None
    how: How
    detail: str
    # Refused attempts to write into a ticket: (ticket, why), recorded as events.
    refused: list[tuple[Ticket, str]] = field(default_factory=list)
    # A reply to a closed (or long-resolved) ticket opens a new one linked to it.
    linked: Ticket | None = None
    answers: Answers | None = None
    token: Token | None = None  # the reply address it came by, when ``how`` is "token"


def which_ticket(session: Session, msg: ParsedMessage, settings: Settings, now: datetime, *,
                 from_staff: bool) -> ThreadMatch:
    """The ticket ``msg`` joins (``ticket`` None: a new one), how it was found, and what
    the mail answers."""
    match = by_bounce(session, msg) or find_thread(
        session, msg, support_address=settings.desk.address, secret=settings.desk.secrets)
    if match.ticket is None:
        return match
    if answers_feedback_request(session, match.ticket, msg):
        # Feedback never reopens a ticket nor opens a new one.
        match.answers = "feedback"
        return match
    # Staff write into closed tickets on purpose (a late note, a #status).
    if not from_staff and (why := needs_new_ticket(match.ticket, settings, now)):
        old = match.ticket
        return ThreadMatch(None, "new", f"reply to #{old.ref}, but {why}: a new ticket, "
                           "linked", linked=old)
    if answers_estimate(session, match.ticket, msg):
        match.answers = "estimate_decision"
    return match


def by_bounce(session: Session, msg: ParsedMessage) -> ThreadMatch | None:
    """A delivery report joins the ticket of the mail that bounced."""
    if not (is_bounce(msg) and msg.dsn_original_message_id):
        return None
    ticket_id = session.scalar(
        select(Message.ticket_id).where(Message.message_id == msg.dsn_original_message_id))
    ticket = session.get(Ticket, ticket_id) if ticket_id is not None else None
    if ticket is None:
        return None
    return ThreadMatch(ticket, "bounce", f"delivery report for <{msg.dsn_original_message_id}>")


def needs_new_ticket(ticket: Ticket, settings: Settings, now: datetime) -> str | None:
    """Why a client's reply must open a new, linked ticket instead of joining this one."""
    if ticket.status == Status.closed:
        return f"#{ticket.ref} is closed"
    if ticket.status == Status.resolved and ticket.resolved_at and (
            now - ticket.resolved_at > timedelta(days=settings.conversation.reopen_days)):
        return (f"#{ticket.ref} was resolved more than {settings.conversation.reopen_days} "
                "days ago")
    return None


def answers_estimate(session: Session, ticket: Ticket, msg: ParsedMessage) -> bool:
    """Does this reply approve or decline the ticket's pending estimate? (Whether the
    sender may decide is the estimate's business: ``estimates.handle_decision``.)"""
    if msg.sender is None or pending_estimate(session, ticket) is None:
        return False
    verdict, _ = decision_in(msg.text_body)
    return verdict is not None


def _by_ref(session: Session, ref: str) -> Ticket | None:
    return session.get(Ticket, int(ref)) if ref.isdigit() else None


def is_participant(session: Session, ticket: Ticket, email: str) -> tuple[bool, str]:
    email = email.lower()
    if email == ticket.requester_email:
        return True, "the requester"
    if session.scalar(
        select(Participant.id).where(Participant.ticket_id == ticket.id, Participant.email == email)
    ):
        return True, "a participant"
    if session.scalar(select(Staff.id).where(Staff.email == email, Staff.active.is_(True))):
        return True, "staff"
    if ticket.client_id is not None and session.scalar(
        select(Contact.id).where(Contact.email == email, Contact.client_id == ticket.client_id)
    ):
        return True, "a contact of the same client"
    return False, "not a participant"


def find_thread(
    session: Session, msg: ParsedMessage, *, support_address: str,
    secret: str | Sequence[str],
) -> ThreadMatch:
    """Steps 2-5: reply token, then references, then a subject tag, else new."""
    refused: list[tuple[Ticket, str]] = []
    sender = msg.sender.email if msg.sender else ""

    # (a) signed token in any recipient header (Delivered-To covers Bcc delivery).
    secrets = (secret,) if isinstance(secret, str) else tuple(secret)
    forged: list[str] = []
    for addr in msg.recipients():
        token = parse_token(addr, support_address)
        if token is None:
            continue
        ticket = _by_ref(session, token.ref)
        if token.valid(secrets, recipient=sender):
            if ticket is not None:
                return ThreadMatch(ticket, "token", f"signed reply address {addr}", refused,
                                   token=token)
            continue  # a staff member's forwarding address: no ticket of its own

        if token.kind == "estimate":
            if ticket is not None:  # a colleague answering an estimate sent to someone else
                refused.append((ticket, f"{sender} wrote to the reply address of estimate "
                                f"{token.holder}, which was signed for another recipient"))
            continue
        forged.append(addr)
        if ticket is not None:
            refused.append((ticket, f"{sender} wrote to a forged reply address {addr}"))

    # (b) In-Reply-To first (the direct parent), then References newest first.
    ids = [*msg.in_reply_to, *reversed(msg.references)]
    ids = list(dict.fromkeys(i for i in ids if i))
    if ids:
        rows = session.execute(
            select(Message.message_id, Message.ticket_id).where(Message.message_id.in_(ids))
        ).all()
        found = {mid: tid for mid, tid in rows}
        for mid in ids:
            if mid in found:
                ticket = session.get(Ticket, found[mid])
                if ticket is not None:
                    return ThreadMatch(ticket, "references", f"replies to <{mid}>", refused)

    # (c) subject tag, only from someone already in the conversation.
    for ref in subject_refs(msg.subject):
        ticket = _by_ref(session, ref)
        if ticket is None:
            continue
        ok, who = is_participant(session, ticket, sender)
        if ok:
            return ThreadMatch(ticket, "subject", f"[#{ref}] in the subject from {who}", refused)
        refused.append(
            (ticket, f"{sender or 'an unknown sender'} quoted [#{ref}] but is not a participant")
        )

    detail = "no reply address, known Message-ID or usable [#ref]: new conversation"
    if forged:
        detail += f" (forged reply address {', '.join(forged)} ignored)"
    return ThreadMatch(None, "new", detail, refused)
