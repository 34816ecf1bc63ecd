"""Which conversation a message belongs to.

Order (DESIGN.md invariant 4): (a) our signed reply-token address, (b) In-Reply-To /
References against every stored Message-ID, ours and theirs, (c) a ``[#REF]`` subject
tag, honoured only from a participant of that ticket, (d) else a new ticket. Guessing a
number never lets a stranger write into someone else's ticket.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.inbox.message import ParsedMessage
from desk.routing.subject import subject_refs
from desk.routing.tokens import ref_from_address
from desk.store.models import Contact, Message, Participant, Staff, Ticket


@dataclass(slots=True)
class ThreadMatch:
    ticket: Ticket | None
    how: str  # token | references | subject | new
    detail: str
    # Refused attempts to write into a ticket: (ticket, why), recorded as events.
    refused: list[tuple[Ticket, str]] = field(default_factory=list)
    # A reply to a closed (or long-resolved) ticket opens a new one linked to it.
    linked: Ticket | None = None


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
    session: Session, msg: ParsedMessage, *, support_address: str, secret: str
) -> ThreadMatch:
    refused: list[tuple[Ticket, str]] = []
    sender = msg.sender.email if msg.sender else ""

    # (a) signed token in any recipient header (Delivered-To covers Bcc delivery).
    recipients = [a.email for a in (*msg.to, *msg.cc)]
    recipients += [v.strip().strip("<>").lower() for v in msg.headers.get("delivered-to", [])]
    forged: list[str] = []
    for addr in recipients:
        ref, valid = ref_from_address(addr, support_address, secret)
        if ref is None:
            continue
        ticket = _by_ref(session, ref)
        if valid and ticket is not None:
            return ThreadMatch(ticket, "token", f"signed reply address {addr}", refused)
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
