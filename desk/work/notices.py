"""Mail between the desk and its staff, and replies relayed to clients.

Staff notices carry the ticket's token address as Reply-To, so answering one is all an
engineer needs to do; clients only ever see mail from the support address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.inbox.message import ParsedMessage
from desk.inbox.quotes import reply_text
from desk.names import staff_greeting
from desk.outbound.mail import OutgoingMail, Thread
from desk.outbound.messages import (
    client_recipients,
    client_thread,
    queue_mail,
    reply_subject,
    staff_address,
)
from desk.routing.subject import tagged
from desk.store.models import Event, Message, Outbox, Role, Staff, Status, Ticket
from desk.store.tickets import add_event
from desk.work.attachments import ReplyContent, notice_body
from desk.work.notice_summary import must_wait, notice_key, wait_for_summary
from desk.work.people import is_stranger

COMMANDS = [
    ("#note", "keep this reply internal: nothing goes to the client"),
    ("#take", "you own the ticket (not for junior engineers)"),
    ("#assign EMAIL", "give it to someone (project and account managers)"),
    ("#status open|waiting|resolved|closed", "waiting pauses the SLA clocks"),
    ("#priority P1..P4", "change the priority"),
    ("#time 1h30m", "log time spent"),
    ("#eta YYYY-MM-DD", "promise a date"),
    ("#cc EMAIL", "copy a colleague of the client"),
    ("#estimate 3h [£270] what", "send the client an estimate to approve"),
    ("#approve / #reject REASON", "decide on a held reply or a costing"),
    ("#confirm", "apply a client's unconfirmed decision on an estimate"),
    ("#attachments [N ...]", "mail yourself the ticket's files (or those numbered)"),
]


def _local(settings: Settings, when: datetime | None, tz: str | None = None) -> str | None:
    if when is None:
        return None
    zone = ZoneInfo(tz or settings.desk.timezone)
    return when.astimezone(zone).strftime("%a %d %b %H:%M %Z")


def ticket_facts(session: Session, settings: Settings, ticket: Ticket,
                 now: datetime) -> dict[str, Any]:
    from desk.reports.hours import month_usage

    client = ticket.client
    facts: dict[str, Any] = {
        "ref": ticket.ref,
        "subject": ticket.subject,
        "client": client.name if client else None,
        "tier": ticket.tier,
        "priority": ticket.priority,
        "status": ticket.status,
        "owner": ticket.owner.name if ticket.owner else None,
        "owner_email": ticket.owner.email if ticket.owner else None,
        "workers": [w.name for w in ticket.workers],
        "requester": ticket.requester_email,
        "first_response_due": _local(settings, ticket.first_response_due),
        "next_update_due": _local(settings, ticket.next_update_due),
        "resolution_due": _local(settings, ticket.resolution_due),
        "eta": ticket.eta.isoformat() if ticket.eta else None,
        "hours": None,
    }
    if client is not None and client.hours_per_month:
        # Time is logged by staff replies, each flushed before the next message is read:
        # nothing pending here can change the sum, so the query need not flush first.
        with session.no_autoflush:
            usage = month_usage(session, client, now, zone=settings.desk.timezone)
        facts["hours"] = {"used": usage.used_hours, "allowance": usage.allowance_hours,
                          "left": usage.left_hours}
    return facts


def assignment_reason(session: Session, ticket: Ticket) -> str:
    event = session.scalar(select(Event).where(Event.ticket_id == ticket.id,
                                               Event.kind == "assigned")
                           .order_by(Event.id.desc()).limit(1))
    return event.detail if event else ""


def notify_staff(session: Session, settings: Settings, ticket: Ticket, inbound: Message,
                 now: datetime, *, kind: str, only: list[Staff] | None = None,
                 reason: str | None = None, parsed: ParsedMessage | None = None) -> int:
    """Tell the owner and workers about a new ticket, a client's reply, or (``only`` the
    people newly given it) an assignment. ``reason``: why they have it, when the caller
    has just decided (else the latest assignment event says). ``parsed``: the mail as
    received, where its HTML's quoted history can still be found (a reply's)."""
    people = [p for p in dict.fromkeys(
        only if only is not None else (ticket.owner, *ticket.workers))
        # never notify someone of their own mail
        if p is not None and p.active and p.email != inbound.from_addr]
    if not people:
        return 0
    if inbound.id is None:
        session.flush()  # the notice is keyed by the inbound message's id
    # A reply from none of the client's people (a stranger who quoted the thread): the
    # notice says so first, before anyone answers it as if the client had asked.
    stranger = kind == "reply" and is_stranger(session, ticket, inbound.from_addr)
    what = {"new": "New ticket", "reply": "Not the client" if stranger else "Client replied",
            "assigned": "Assigned to you"}[kind]
    client = ticket.client.name if ticket.client else None
    subject = (f"{what}: {tagged(ticket.subject, ticket.ref)} ({ticket.priority}"
               f"{', ' + client if client else ''})")
    fresh = kind == "new"  # "new": the inbound message is this one
    told = []
    for person in people:
        # Over the per-staff rate (a backlog, a mail loop): the notice waits for the
        # window's summary, and nothing of it is rendered (work/notice_summary.py).
        if must_wait(session, settings, ticket, person.email, now):
            wait_for_summary(session, settings, ticket, person, kind,
                             notice_key(kind, inbound.id, person.id, now), subject, now,
                             fresh=fresh)
        else:
            told.append(person)
    if not told:
        return 0
    sent = 0
    facts = ticket_facts(session, settings, ticket, now)
    if reason is None:
        reason = assignment_reason(session, ticket)
    # The same for everyone told: built once (None: a plain-text mail without files).
    rich = notice_body(session, inbound, kind, ticket.ref,
                       settings.notices.max_attachment_bytes,
                       settings.intake.max_attachment_bytes, parsed)
    for person in told:
        context = {
            "kind": kind,
            "stranger": stranger,
            "staff_name": staff_greeting(person.name, person.email),
            "from": inbound.from_addr,
            "from_name": inbound.from_name,
            "message": rich.text if rich else
                       reply_text(inbound.body_text) if kind == "reply" else inbound.body_text,
            "message_html": rich.html if rich else None,
            "files": rich.packed.listed if rich else [],
            "facts": facts,
            "role": "owner" if person is ticket.owner else "worker",
            "reason": reason,
            "commands": COMMANDS,
            "desk_name": settings.desk.name,
        }
        mail = OutgoingMail(
            kind=f"notice_{kind}", event_key=notice_key(kind, inbound.id, person.id, now),
            to=[staff_address(person)], staff_id=person.id, subject=subject,
            template="notice", context=context, internal=True,
            html=rich is not None and rich.html is not None,
            related=rich.packed.related if rich else (),
            attachments=rich.packed.files if rich else (),
        )
        row = queue_mail(session, settings, mail, ticket=ticket, now=now, fresh=fresh,
                         flush=False)
        sent += row is not None
    return sent


def queue_refusal(session: Session, settings: Settings, ticket: Ticket, staff: Staff,
                  inbound: Message, now: datetime, reasons: list[str]) -> None:
    queue_mail(session, settings, OutgoingMail(
        kind="refusal", event_key=f"refusal:{inbound.id}", to=[staff_address(staff)],
        staff_id=staff.id,
        subject=f"Not done: {tagged(ticket.subject, ticket.ref)}", template="refused",
        context={"staff_name": staff_greeting(staff.name, staff.email), "reasons": reasons,
                 "ref": ticket.ref, "commands": COMMANDS},
        thread=Thread(inbound.message_id, [inbound.message_id]), internal=True,
    ), ticket=ticket, now=now)


def queue_impersonation_notice(session: Session, settings: Settings, ticket: Ticket,
                               staff: Staff, inbound: Message, why: str, now: datetime) -> None:
    """"Someone wrote as you": to the real staff member, at most once per ticket and hour
    (the event key carries the hour), so a forger cannot flood them through desk."""
    hour = int(now.timestamp() // 3600)
    queue_mail(session, settings, OutgoingMail(
        kind="impersonation", event_key=f"impersonation:{ticket.id}:{staff.id}:{hour}",
        to=[staff_address(staff)], staff_id=staff.id,
        subject=f"Someone wrote as you: {tagged(ticket.subject, ticket.ref)}",
        template="impersonation",
        context={"staff_name": staff_greeting(staff.name, staff.email), "ref": ticket.ref,
                 "subject": ticket.subject, "sender": inbound.from_addr, "why": why},
        internal=True,
    ), ticket=ticket, now=now)


def _relay_context(settings: Settings, ticket: Ticket, author: Staff, body: str,
                   content: ReplyContent) -> dict[str, Any]:
    return {
        "body": body.strip(),
        "body_html": content.html,
        "files": content.names,
        "author_name": author.name,
        "desk_name": settings.desk.name,
        "ref": ticket.ref,
        "subject": ticket.subject,
    }


def _queue_client_reply(session: Session, settings: Settings, ticket: Ticket, author: Staff,
                        inbound: Message, body: str, now: datetime, *, held: bool,
                        content: ReplyContent) -> Outbox | None:
    """The whole mail, files and HTML included, is built now: a held reply is stored as
    its exact bytes and sent unchanged when approved."""
    to, cc = client_recipients(session, ticket)
    return queue_mail(session, settings, OutgoingMail(
        kind="relay", event_key=f"relay:{inbound.id}", to=to, cc=cc,
        subject=reply_subject(ticket), template="relay",
        context=_relay_context(settings, ticket, author, body, content),
        thread=client_thread(session, ticket), automatic=False,
        from_name=f"{author.name} ({settings.desk.name})", held=held, author_id=author.id,
        html=content.html is not None, related=content.related, attachments=content.files,
    ), ticket=ticket, now=now)


def _first_response(session: Session, ticket: Ticket, now: datetime, who: str) -> None:
    ticket.last_public_reply_at = now
    if ticket.first_response_at is None:
        ticket.first_response_at = now
        add_event(session, ticket, "first_response", f"first human reply by {who}", at=now)
    if ticket.status == Status.new:
        ticket.status = Status.open


def queue_relay(session: Session, settings: Settings, ticket: Ticket, author: Staff,
                inbound: Message, body: str, now: datetime,
                content: ReplyContent | None = None) -> None:
    row = _queue_client_reply(session, settings, ticket, author, inbound, body, now,
                              held=False, content=content or ReplyContent())
    if row is None:
        return
    _first_response(session, ticket, now, author.email)
    add_event(session, ticket, "replied", f"{author.email} replied to the client ("
              f"{', '.join(row.rcpt_to)})", at=now, actor=author.email,
              data={"outbox_id": row.id})


def record_relay_message(session: Session, ticket: Ticket, held: Outbox, now: datetime) -> None:
    """A held reply goes out: it becomes part of the conversation only now."""
    from email import message_from_bytes
    from email.policy import default

    mail = message_from_bytes(held.raw, policy=default)
    body = mail.get_body(("plain",))
    session.add(Message(
        ticket_id=ticket.id, direction="out", message_id=held.message_id,
        in_reply_to=str(mail["In-Reply-To"] or "").strip("<>") or None,
        references=str(mail["References"] or "") or None, from_addr=held.mail_from,
        to_addrs=", ".join(held.rcpt_to), subject=held.subject, date=now,
        body_text=body.get_content() if body is not None else "",
        source="outbox", created_at=now))
    ticket.message_count = (ticket.message_count or 0) + 1
    author = session.get(Staff, held.author_staff_id) if held.author_staff_id else None
    _first_response(session, ticket, now, author.email if author else "staff")


def _approver(session: Session, ticket: Ticket, junior: Staff) -> Staff | None:
    if ticket.owner is not None and ticket.owner.role != Role.junior_engineer \
            and ticket.owner.active:
        return ticket.owner
    if ticket.client is not None and ticket.client.project_manager:
        pm = session.scalar(select(Staff).where(Staff.email == ticket.client.project_manager,
                                                Staff.active.is_(True)))
        if pm is not None:
            return pm
    return session.scalar(select(Staff).where(
        Staff.role.in_((Role.senior_engineer, Role.project_manager)), Staff.active.is_(True))
        .order_by(Staff.id).limit(1))


def hold_for_approval(session: Session, settings: Settings, ticket: Ticket, junior: Staff,
                      inbound: Message, body: str, now: datetime,
                      content: ReplyContent | None = None) -> None:
    content = content or ReplyContent()
    held = _queue_client_reply(session, settings, ticket, junior, inbound, body, now,
                               held=True, content=content)
    if held is not None:
        request_approval(session, settings, ticket, junior, held, body, now,
                         files=content.names)


def request_approval(session: Session, settings: Settings, ticket: Ticket, junior: Staff,
                     held: Outbox, body: str, now: datetime, files: list[str] | None = None,
                     ) -> None:
    """A junior's mail to a client waits: ask the owner (or a PM or senior) to review it."""
    approver = _approver(session, ticket, junior)
    add_event(session, ticket, "held", f"reply {held.id} by junior {junior.email} held for "
              f"approval by {approver.email if approver else 'a senior, PM or AM'}", at=now,
              actor=junior.email, data={"outbox_id": held.id})
    if approver is None:
        return
    queue_mail(session, settings, OutgoingMail(
        kind="approval_request", event_key=f"approval:{held.id}",
        to=[staff_address(approver)], staff_id=approver.id,
        subject=f"Approve a reply to the client? {tagged(ticket.subject, ticket.ref)}",
        template="approval_request",
        context={"staff_name": staff_greeting(approver.name, approver.email), "junior": junior.name,
                 "junior_email": junior.email, "body": body.strip(), "held_id": held.id,
                 "ref": ticket.ref, "to": ", ".join(held.rcpt_to), "files": files or [],
                 "client": ticket.client.name if ticket.client else ticket.requester_email},
        internal=True, approval_of_id=held.id,
    ), ticket=ticket, now=now)


def queue_rejection(session: Session, settings: Settings, ticket: Ticket, author: Staff,
                    held: Outbox, rejected_by: str, reason: str, now: datetime) -> None:
    queue_mail(session, settings, OutgoingMail(
        kind="rejection", event_key=f"rejection:{held.id}", to=[staff_address(author)],
        staff_id=author.id,
        subject=f"Your reply was not sent: {tagged(ticket.subject, ticket.ref)}",
        template="rejected",
        context={"staff_name": staff_greeting(author.name, author.email),
                 "rejected_by": rejected_by, "reason": reason, "ref": ticket.ref},
        internal=True,
    ), ticket=ticket, now=now)
