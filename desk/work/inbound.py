"""An inbound message recorded on its ticket: the message row, its attachments, the
ticket's message count."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from desk.inbox.message import ParsedMessage
from desk.store.deferred import insert_now, update_later
from desk.store.models import Attachment, Message, Ticket
from desk.store.tickets import add_event
from desk.work.attachments import shown_inline


def record_inbound(
    session: Session,
    ticket: Ticket,
    msg: ParsedMessage,
    *,
    now: datetime,
    source: str,
    raw_id: int | None,
    auto_generated: bool,
    internal: bool = False,
) -> Message:
    row = Message(
        ticket_id=ticket.id,
        direction="in",
        dedupe_key=msg.message_id,
        message_id=msg.message_id,
        in_reply_to=" ".join(msg.in_reply_to) or None,
        references=" ".join(msg.references) or None,
        from_addr=msg.sender.email if msg.sender else "",
        from_name=msg.sender.name if msg.sender else "",
        to_addrs=", ".join(a.email for a in msg.to),
        cc_addrs=", ".join(a.email for a in msg.cc),
        subject=msg.subject,
        date=msg.date,
        body_text=msg.text_body,
        body_html=msg.html_body,
        internal=internal,
        auto_generated=auto_generated,
        source=source,
        raw_id=raw_id,
        created_at=now,
    )
    # Its id is needed at once (attachments, notices keyed by it): one INSERT, no flush.
    insert_now(session, row, ordered_by="ticket_id")  # after our mail copies in the ticket
    files = [Attachment(message_pk=row.id, filename=att.filename,
                        content_type=att.content_type, size=att.size, content=att.content,
                        note=att.note, content_id=att.content_id or None,
                        inline=shown_inline(att.content_type, att.content_id, msg.html_body))
             for att in msg.attachments]
    # Known as they are: the notices read them without a query (none at all for a mail
    # without files, the backlog's commonest case).
    set_committed_value(row, "attachments", files)
    for att in msg.attachments:
        if att.content is None and att.note:
            add_event(session, ticket, "attachment_not_stored",
                      f"{att.filename or 'an attachment'} ({att.size:,} bytes): {att.note}",
                      at=now)
    session.add_all(files)
    update_later(session, ticket, message_count=(ticket.message_count or 0) + 1,
                 updated_at=now)
    return row
