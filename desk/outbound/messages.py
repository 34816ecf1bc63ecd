"""Every mail the desk writes, rendered and queued in the caller's transaction.

One helper (``queue_mail``) sets the headers that matter everywhere: our own
Message-ID, the signed reply address, threading headers, the loop header and, for
automatic mail, ``Auto-Submitted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config import Settings
from desk.inbox.message import Address
from desk.outbound.compose import build_mail, new_message_id, to_bytes
from desk.outbound.outbox import enqueue
from desk.outbound.render import render, template_exists
from desk.routing.subject import tagged
from desk.routing.tokens import token_address
from desk.store.models import Message, Outbox, OutboxStatus, Participant, Staff, Ticket


@dataclass(slots=True)
class Thread:
    in_reply_to: str | None
    references: list[str]


def client_thread(session: Session, ticket: Ticket) -> Thread:
    """Threading headers that put our mail into the client's own thread: a reply to their
    latest message."""
    last = session.scalar(
        select(Message).where(Message.ticket_id == ticket.id, Message.direction == "in",
                              Message.from_addr == ticket.requester_email)
        .order_by(Message.id.desc()).limit(1))
    if last is None:
        return Thread(None, [])
    refs = [*(last.references or "").split(), last.message_id]
    return Thread(last.message_id, refs)


def queue_mail(
    session: Session,
    settings: Settings,
    *,
    ticket: Ticket | None,
    kind: str,
    event_key: str,
    to: Sequence[Address],
    subject: str,
    template: str,
    context: dict[str, Any],
    now: datetime,
    thread: Thread | None = None,
    cc: Sequence[Address] = (),
    automatic: bool = True,
    from_name: str | None = None,
    status: OutboxStatus = OutboxStatus.pending,
    internal: bool = False,
    author: Staff | None = None,
    approval_of: Outbox | None = None,
    related: Sequence[tuple[str, bytes, str, str]] = (),
    fresh: bool = False,
    flush: bool = True,
) -> Outbox | None:
    """Render ``template`` (``NAME.txt.j2``, plus ``NAME.html.j2`` when it exists) and
    queue it. Returns None when this event already has its mail. ``fresh`` and ``flush``:
    see ``outbox.enqueue``."""
    override = settings.template_override_dir
    text = render(f"{template}.txt.j2", context, override)
    html = (render(f"{template}.html.j2", context, override)
            if template_exists(f"{template}.html.j2", override) else None)
    thread = thread or Thread(None, [])
    mail = build_mail(
        from_addr=Address(from_name or settings.desk.name, settings.desk.address),
        to=to,
        cc=cc,
        subject=subject,
        text=text,
        html=html,
        message_id=new_message_id(settings.desk.domain,
                                  f"desk.{ticket.ref if ticket else 'all'}.{kind}"),
        date=now,
        # Mail about no single ticket (reports, digests): replies open a new conversation.
        reply_to=(token_address(settings.desk.address, settings.desk.secret, ticket.ref)
                  if ticket else settings.desk.address),
        in_reply_to=thread.in_reply_to,
        references=thread.references,
        auto_submitted="auto-generated" if automatic and kind != "ack" else (
            "auto-replied" if automatic else None),
        loop_value=settings.desk.address,
        related=related,
    )
    row = enqueue(
        session, ticket=ticket, kind=kind, event_key=event_key, mail=mail, raw=to_bytes(mail),
        mail_from=settings.desk.address, recipients=[a.email for a in (*to, *cc)], now=now,
        body_text=text, internal=internal, status=status,
        author_staff_id=author.id if author else None,
        approval_of_id=approval_of.id if approval_of else None, fresh=fresh, flush=flush,
    )
    return row


def client_recipients(session: Session, ticket: Ticket) -> tuple[list[Address], list[Address]]:
    """The requester, and CC'd participants of the same client (never anyone else)."""
    to = [Address(ticket.requester_name, ticket.requester_email)]
    cc = [Address("", p.email) for p in session.scalars(
        select(Participant).where(Participant.ticket_id == ticket.id, Participant.kind == "cc")
        .order_by(Participant.id))]
    return to, cc


def staff_address(person: Staff) -> Address:
    return Address(person.name, person.email)


def reply_subject(ticket: Ticket) -> str:
    return f"Re: {tagged(ticket.subject, ticket.ref)}"
