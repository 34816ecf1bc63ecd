"""Every mail the desk writes, rendered and queued in the caller's transaction.

One helper (``queue_mail``) sets the headers that matter everywhere: our own
Message-ID, the signed reply address, threading headers, the loop header and, for
automatic mail, ``Auto-Submitted``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.inbox.message import Address
from desk.outbound.compose import Stamp, compose, new_message_id
from desk.outbound.mail import NO_THREAD, OutgoingMail, Thread
from desk.outbound.outbox import enqueue
from desk.outbound.render import render, template_exists
from desk.routing.subject import tagged
from desk.routing.tokens import estimate_token_address, staff_token_address, token_address
from desk.store.models import Message, Outbox, Participant, Staff, Ticket


def client_thread(session: Session, ticket: Ticket) -> Thread:
    """Threading headers that put our mail into the client's own thread: a reply to their
    latest message."""
    last = session.scalar(
        select(Message).where(Message.ticket_id == ticket.id, Message.direction == "in",
                              Message.from_addr == ticket.requester_email)
        .order_by(Message.id.desc()).limit(1))
    if last is None:
        return NO_THREAD
    refs = [*(last.references or "").split(), last.message_id]
    return Thread(last.message_id, refs)


def queue_mail(
    session: Session,
    settings: Settings,
    mail: OutgoingMail,
    *,
    ticket: Ticket | None,
    now: datetime,
    fresh: bool = False,
    flush: bool = True,
) -> Outbox | None:
    """Render ``mail`` and queue it about ``ticket`` (None: about no single ticket).
    Returns None when its event already has its mail. ``fresh`` and ``flush``: see
    ``outbox.enqueue``."""
    override = settings.template_override_dir
    text = render(f"{mail.template}.txt.j2", mail.context, override)
    html = (render(f"{mail.template}.html.j2", mail.context, override)
            if mail.html and template_exists(f"{mail.template}.html.j2", override) else None)
    stamp = Stamp(
        from_addr=Address(mail.from_name or settings.desk.name, settings.desk.address),
        message_id=new_message_id(settings.desk.domain,
                                  f"desk.{ticket.ref if ticket else 'all'}.{mail.kind}"),
        date=now,
        reply_to=reply_address(settings, mail, ticket),
        # RFC 3834: an acknowledgement answers a message; the rest are caused by events.
        auto_submitted=(None if not mail.automatic
                        else "auto-replied" if mail.kind == "ack" else "auto-generated"),
        loop_value=settings.desk.address,
    )
    return enqueue(session, mail, compose(mail, stamp, text, html), ticket=ticket, now=now,
                   fresh=fresh, flush=flush)


def reply_address(settings: Settings, mail: OutgoingMail, ticket: Ticket | None) -> str:
    """The Reply-To: bound to the staff member or the estimate recipient the mail is for,
    else the ticket's own address. Mail about no single ticket (reports, digests): the
    support address, so replies open a new conversation."""
    desk = settings.desk
    if ticket is None:
        return desk.address
    if mail.staff_id is not None:
        return staff_token_address(desk.address, desk.secret, ticket.ref, mail.staff_id)
    if mail.estimate_id is not None and mail.to:
        return estimate_token_address(desk.address, desk.secret, ticket.ref, mail.estimate_id,
                                      mail.to[0].email)
    return token_address(desk.address, desk.secret, ticket.ref)


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
