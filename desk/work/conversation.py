"""Working a ticket by email.

Staff reply to a notice: commands at the top are carried out; the rest is relayed to the
client from the support address (held for approval when a junior wrote it); ``#note``
keeps everything internal. Anything refused changes nothing and reaches no client; the
staff member is told why. Clients replying wake the owner, reopen a resolved ticket, or
open a linked new one when it is too late to reopen.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.inbox.message import ParsedMessage
from desk.inbox.quotes import reply_text
from desk.routing.commands import ParsedReply, parse_commands
from desk.store.deferred import begin_savepoint
from desk.store.models import (
    EstimateStatus,
    Message,
    Outbox,
    OutboxStatus,
    Role,
    Staff,
    Status,
    Ticket,
)
from desk.store.tickets import add_event
from desk.work import notices
from desk.work.actions import CLIENT_FACING, Actor, Refused, run_command
from desk.work.allowance import check_allowance
from desk.work.attachments import ReplyContent, mail_attachments, staff_reply_content
from desk.work.estimates import (
    confirm_decision,
    create_estimate,
    handle_decision,
    pending_estimate,
    release_held_estimate,
)
from desk.work.feedback import record_feedback, request_feedback
from desk.work.identity import Proof, staff_proof
from desk.work.which_ticket import Answers


def handle_staff_reply(
    session: Session, ticket: Ticket, msg: ParsedMessage, inbound: Message, staff: Staff,
    settings: Settings, now: datetime,
) -> None:
    inbound.internal = True  # what staff send the desk is never shown to a client as is
    proof = staff_proof(msg, staff.id, staff.email, ticket.ref, settings)
    if not proof.ok:
        refuse_unproven(session, settings, ticket, staff, inbound, proof, now)
        return

    actor = Actor(staff, staff.email)
    parsed = parse_commands(reply_text(msg.text_body))
    if parsed.unknown:
        notices.queue_refusal(session, settings, ticket, staff, inbound, now, [
            f"{line}: unknown command (known: #note #take #assign #status #priority #time "
            "#eta #cc #estimate #approve #reject #confirm #attachments)"
            for line in parsed.unknown])
        add_event(session, ticket, "command_refused", "; ".join(parsed.unknown), at=now,
                  actor=staff.email)
        return

    names = [c.name for c in parsed.commands]
    content = _relay_content(msg, parsed, names, settings)
    if content.refused:
        # Checked before any command runs: a reply that cannot go as written does nothing.
        notices.queue_refusal(session, settings, ticket, staff, inbound, now, content.refused)
        add_event(session, ticket, "command_refused", "; ".join(content.refused), at=now,
                  actor=staff.email)
        return
    people_before = {p.id for p in (ticket.owner, *ticket.workers) if p is not None}
    status_before = ticket.status
    refusals: list[str] = []
    savepoint = begin_savepoint(session)
    body_used = False
    for cmd in parsed.commands:
        try:
            if cmd.name == "note":
                continue
            if cmd.name == "estimate":
                # The reply's text explains the estimate: it is not relayed separately.
                create_estimate(session, settings, ticket, actor, inbound, cmd.arg, parsed.body,
                                now)
                body_used = True
            elif cmd.name in ("approve", "reject"):
                _decide(session, ticket, actor, msg, cmd.name, cmd.arg, settings, now)
            elif cmd.name == "confirm":
                confirm_decision(session, settings, ticket, actor, now)
            elif cmd.name == "attachments":
                mail_attachments(session, settings, ticket, staff, inbound, cmd.arg, now)
            else:
                run_command(session, ticket, actor, cmd, now)
        except Refused as exc:
            refusals.append(f"{cmd.line}: {exc}")
    if refusals:
        savepoint.rollback()
        notices.queue_refusal(session, settings, ticket, staff, inbound, now, refusals)
        add_event(session, ticket, "command_refused", "; ".join(refusals), at=now,
                  actor=staff.email)
        return
    savepoint.commit()
    notify_new_people(session, settings, ticket, people_before, staff, now)
    _answer(session, settings, ticket, staff, inbound, parsed, content, now,
            relay=not body_used)
    # Only now: a reply that resolves the ticket is queued before the client's "was this
    # resolved?", and the sender never lets that request overtake it (outbound/sender.py).
    after_changes(session, settings, ticket, status_before, "time" in names, now)


def _answer(session: Session, settings: Settings, ticket: Ticket, staff: Staff,
            inbound: Message, parsed: ParsedReply, content: ReplyContent, now: datetime, *,
            relay: bool) -> None:
    """The reply's text: a note, or the client's (held when a junior wrote it)."""
    if any(c.name == "note" for c in parsed.commands):
        text = parsed.body or next((c.arg for c in parsed.commands if c.name == "note"), "")
        add_event(session, ticket, "note", text or "(empty note)", at=now, actor=staff.email)
        return
    if not relay or not _relays(parsed, content):
        return
    if staff.role == Role.junior_engineer:
        notices.hold_for_approval(session, settings, ticket, staff, inbound, parsed.body, now,
                                  content)
        return
    notices.queue_relay(session, settings, ticket, staff, inbound, parsed.body, now, content)


def _relay_content(msg: ParsedMessage, parsed: ParsedReply, names: list[str],
                   settings: Settings) -> ReplyContent:
    """The formatting and files that go to the client with the reply's text; nothing to
    work out for a plain-text reply without files, or one that reaches no client."""
    if "note" in names or "estimate" in names or not (msg.html_source or msg.attachments):
        return ReplyContent()
    content = staff_reply_content(msg, [c.line for c in parsed.commands],
                                  settings.notices.max_attachment_bytes,
                                  settings.intake.max_attachment_bytes)
    if not _relays(parsed, content):
        content.refused = []  # nothing would be relayed: nothing to refuse
    return content


def _relays(parsed: ParsedReply, content: ReplyContent) -> bool:
    """Text goes to the client; files alone only when the reply is nothing but files (a
    reply of commands only never reached a client, and a file beside them stays put)."""
    return bool(parsed.body or (content.files and not parsed.commands))


def refuse_unproven(session: Session, settings: Settings, ticket: Ticket, staff: Staff,
                    inbound: Message, proof: Proof, now: datetime) -> None:
    """Mail from a staff address without proof: it changes nothing and reaches no
    client. The real staff member hears of it at their own address."""
    add_event(session, ticket, "spoofed_staff",
              f"mail claiming to be from {staff.email} ignored: {proof.how}; nothing changed "
              "and nothing was sent", at=now, actor=staff.email,
              data={"message_id": inbound.message_id})
    notices.queue_impersonation_notice(session, settings, ticket, staff, inbound, proof.how,
                                       now)


def after_changes(session: Session, settings: Settings, ticket: Ticket, status_before: str,
                  time_logged: bool, now: datetime) -> None:
    """Consequences of staff changes that reach beyond the ticket: the feedback request on
    resolution, allowance alerts when time was logged."""
    if time_logged:
        check_allowance(session, settings, ticket, now)
    if ticket.status == Status.resolved and status_before != Status.resolved:
        request_feedback(session, settings, ticket, now)


def notify_new_people(session: Session, settings: Settings, ticket: Ticket,
                      before: set[int], by: Staff | None, now: datetime) -> None:
    """Whoever was just given the ticket hears about it (not the person who took it)."""
    new = [p for p in (ticket.owner, *ticket.workers)
           if p is not None and p.id not in before and p is not by]
    if not new:
        return
    first = session.scalar(select(Message).where(Message.ticket_id == ticket.id,
                                                 Message.direction == "in")
                           .order_by(Message.id).limit(1))
    if first is not None:
        notices.notify_staff(session, settings, ticket, first, now, kind="assigned", only=new)


def _decide(session: Session, ticket: Ticket, actor: Actor, msg: ParsedMessage, what: str,
            reason: str, settings: Settings, now: datetime) -> str:
    held = _held_reply_for(session, ticket, msg)
    if held is not None:
        if what == "approve":
            return approve_held(session, settings, held, actor, now)
        return reject_held(session, settings, held, actor, reason, now)
    if what == "approve" and ticket.status == Status.awaiting_approval:
        actor.require((Role.account_manager,), "signing off a costing (#approve)")
        ticket.status = Status.open
        estimate = pending_estimate(session, ticket)
        detail = f"{actor.label} signed off the costing: engineering work may start"
        if estimate is not None:
            # Agreed outside email (a call, a meeting): record it, with the AM's words.
            estimate.status, estimate.decided_at = EstimateStatus.approved, now
            estimate.decided_by = actor.label
            estimate.decision_words = reason or "approved by the account manager"
            detail += f" (estimate {estimate.id}, on the client's behalf: {reason or '-'})"
        add_event(session, ticket, "costing_signed_off", detail, at=now, actor=actor.label)
        return f"#{ticket.ref} signed off and open"
    raise Refused(f"there is nothing waiting for approval on #{ticket.ref}")


def _held_reply_for(session: Session, ticket: Ticket, msg: ParsedMessage) -> Outbox | None:
    """The held reply this mail answers: the approval request it replies to, else the
    oldest held reply on the ticket."""
    if msg.in_reply_to:
        request = session.scalar(select(Outbox).where(
            Outbox.message_id.in_(msg.in_reply_to), Outbox.approval_of_id.is_not(None)))
        if request is not None:
            held = session.get(Outbox, request.approval_of_id)
            if held is not None and held.status == OutboxStatus.held:
                return held
    return session.scalar(select(Outbox).where(
        Outbox.ticket_id == ticket.id, Outbox.status == OutboxStatus.held)
        .order_by(Outbox.id).limit(1))


def approve_held(session: Session, settings: Settings, held: Outbox, actor: Actor,
                 now: datetime) -> str:
    actor.require(CLIENT_FACING, "approving a junior's reply")
    if held.status != OutboxStatus.held:
        raise Refused(f"reply {held.id} is not waiting for approval ({held.status})")
    ticket = session.get(Ticket, held.ticket_id)
    assert ticket is not None
    held.status = OutboxStatus.pending  # sent unchanged: the bytes were fixed when written
    held.next_attempt_at = now
    notices.record_relay_message(session, ticket, held, now)
    if held.kind == "estimate":
        release_held_estimate(session, ticket, held.id, now, actor.label)
    add_event(session, ticket, "approved", f"{actor.label} approved reply {held.id} by "
              f"{_author(session, held)}; sent to the client unchanged", at=now,
              actor=actor.label)
    return f"reply {held.id} approved and sent"


def reject_held(session: Session, settings: Settings, held: Outbox, actor: Actor, reason: str,
                now: datetime) -> str:
    actor.require(CLIENT_FACING, "rejecting a junior's reply")
    if not reason.strip():
        raise Refused("#reject needs a reason for the author: #reject REASON")
    ticket = session.get(Ticket, held.ticket_id)
    assert ticket is not None
    held.status = OutboxStatus.failed
    held.last_error = f"rejected by {actor.label}: {reason}"
    author = session.get(Staff, held.author_staff_id) if held.author_staff_id else None
    if author is not None:
        notices.queue_rejection(session, settings, ticket, author, held, actor.label, reason, now)
    add_event(session, ticket, "rejected", f"{actor.label} returned reply {held.id} to "
              f"{author.email if author else 'its author'}: {reason}", at=now, actor=actor.label)
    return f"reply {held.id} returned to its author"


def _author(session: Session, held: Outbox) -> str:
    author = session.get(Staff, held.author_staff_id) if held.author_staff_id else None
    return author.email if author else "unknown"


def handle_client_reply(
    session: Session, ticket: Ticket, msg: ParsedMessage, inbound: Message, settings: Settings,
    now: datetime, answers: Answers | None,
) -> Ticket:
    """A person (not staff) wrote into an existing ticket (``answers``: what of ours the
    mail answers, as ``which_ticket`` found). Auto-generated mail never gets here: the
    pipeline records it as an ``auto_reply`` event and changes nothing."""
    if answers == "feedback":
        # Feedback never reopens a ticket; a "no, not resolved" alerts the account manager.
        record_feedback(session, settings, ticket, msg, inbound, now)
        return ticket
    if ticket.status == Status.resolved and ticket.resolved_at and (
            now - ticket.resolved_at <= timedelta(days=settings.conversation.reopen_days)):
        ticket.status = Status.open
        ticket.resolved_at = None
        add_event(session, ticket, "reopened", f"{msg.sender.email if msg.sender else 'client'}"
                  " replied to a resolved ticket", at=now)
    if msg.sender and msg.sender.email == ticket.requester_email:
        ticket.last_client_message_at = now
        if ticket.status == Status.waiting:
            ticket.status = Status.open
            add_event(session, ticket, "status", "waiting -> open: the client replied", at=now)
    if answers == "estimate_decision" and handle_decision(session, settings, ticket, msg,
                                                          inbound, now):
        return ticket  # the owner gets the decision itself, not a generic notice
    notices.notify_staff(session, settings, ticket, inbound, now, kind="reply", parsed=msg)
    return ticket
