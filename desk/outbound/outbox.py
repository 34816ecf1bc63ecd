"""The transactional outbox: mail is queued in the same transaction as the ticket change
that caused it, keyed by the event it answers, so one event never yields two mails."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.outbound.compose import Composed
from desk.outbound.mail import OutgoingMail
from desk.store.deferred import insert_later, update_later
from desk.store.models import Message, Outbox, OutboxStatus, Ticket, table

_MESSAGES = table(Message)
_OUTBOX = table(Outbox)
# Two states beside OutboxStatus, for staff notices over the per-staff rate
# (desk/work/notice_summary.py): a row that WAITS is no mail yet (no bytes; the sender
# only ever claims "pending"), it only holds the notice's event key and what to list;
# once its window's summary mail is queued it is SUMMARISED, never to be sent alone.
WAITING = OutboxStatus.waiting
SUMMARISED = OutboxStatus.summarised
# What enqueue sets on every row; the rest start empty.
_GIVEN = ("ticket_id", "kind", "event_key", "message_id", "mail_from", "recipient", "rcpt_to",
          "subject", "raw", "status", "next_attempt_at", "created_at", "author_staff_id",
          "approval_of_id")


def enqueue(
    session: Session,
    mail: OutgoingMail,
    composed: Composed,
    *,
    ticket: Ticket | None,
    now: datetime,
    fresh: bool = False,
    flush: bool = True,
) -> Outbox | None:
    """Queue ``composed`` for delivery. Returns None when ``mail.event_key`` already has
    its mail.

    ``fresh``: the event was created in this very transaction, so no mail can exist for
    it yet (the unique event key still guards it). ``flush=False``: the caller needs
    neither the row's id nor the row itself in the session; it is written beneath the
    ORM with the next statement (desk/deferred.py), and what is returned is a detached
    copy to read. Both save a round of the ORM's unit of work per mail, which adds up
    over a backlog."""
    if not fresh and session.scalar(
            select(Outbox.id).where(Outbox.event_key == mail.event_key)) is not None:
        return None
    status = OutboxStatus.held if mail.held else OutboxStatus.pending
    recipients = [a.email for a in (*mail.to, *mail.cc)]
    mime, mail_from = composed.message, composed.mail_from
    message_id = str(mime["Message-ID"]).strip().strip("<>")
    row = Outbox(
        ticket_id=ticket.id if ticket else None,
        kind=mail.kind,
        event_key=mail.event_key,
        message_id=message_id,
        mail_from=mail_from,
        recipient=recipients[0].lower() if recipients else "",
        rcpt_to=[r.lower() for r in recipients],
        subject=str(mime["Subject"] or ""),
        raw=composed.raw,
        status=status,
        next_attempt_at=now,
        created_at=now,
        author_staff_id=mail.author_id,
        approval_of_id=mail.approval_of_id,
    )
    if flush:
        session.add(row)
    else:
        insert_later(session, _OUTBOX, {
            **{name: getattr(row, name) for name in _GIVEN}, "attempts": 0,
            "last_error": None, "claimed_by": None, "claimed_until": None, "sent_at": None})
    if ticket is not None and not mail.held:
        # Stored as a ticket message too: replies to it thread by In-Reply-To. A held
        # reply joins the conversation only when it is approved and sent.
        # Written beneath the ORM: nothing reads this object back in the transaction,
        # and the unit of work's bookkeeping cost more than the INSERT itself. A message
        # still pending (the one this answers) is written first: ids keep the order of
        # the conversation.
        if any(isinstance(obj, Message) for obj in session.new):
            session.flush()
        insert_later(session, _MESSAGES, {
            "ticket_id": ticket.id,
            "direction": "out",
            "message_id": message_id,
            "in_reply_to": str(mime["In-Reply-To"] or "").strip("<>") or None,
            "references": str(mime["References"] or "") or None,
            "from_addr": mail_from,
            "to_addrs": ", ".join(recipients),
            "subject": row.subject,
            "date": now,
            "body_text": composed.text,
            "internal": mail.internal,
            "auto_generated": mail.kind not in ("relay",),
            "source": "outbox",
            "created_at": now,
        })
        if not mail.internal:  # the count is the conversation the client sees
            # Deferred: a new ticket's count would otherwise cost a flush of its own.
            update_later(session, ticket, message_count=(ticket.message_count or 0) + 1)
    if flush:
        session.flush()  # callers link to the row's id (held replies, estimates)
    return row


def enqueue_waiting(
    session: Session,
    *,
    ticket: Ticket,
    kind: str,
    event_key: str,
    recipient: str,
    subject: str,
    mail_from: str,
    message_id: str,
    now: datetime,
    fresh: bool = False,
) -> bool:
    """Keep ``event_key`` for a summary to come instead of queueing its mail: the key is
    taken as a mail's would be, so the event is never both mailed alone and summarised.
    Nothing is rendered: a flood costs less than the notices it replaces. Returns False
    when the key already has its mail (``fresh``: see ``enqueue``)."""
    if not fresh and session.scalar(
            select(Outbox.id).where(Outbox.event_key == event_key)) is not None:
        return False
    insert_later(session, _OUTBOX, {
        "ticket_id": ticket.id, "kind": kind, "event_key": event_key,
        "message_id": message_id, "mail_from": mail_from, "recipient": recipient.lower(),
        "rcpt_to": [recipient.lower()], "subject": subject, "raw": b"", "status": WAITING,
        # When it began to wait: windows that have ended are found by the index
        # (status, next_attempt_at).
        "next_attempt_at": now, "created_at": now, "author_staff_id": None,
        "approval_of_id": None, "attempts": 0, "last_error": None, "claimed_by": None,
        "claimed_until": None, "sent_at": None})
    return True
