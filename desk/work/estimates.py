"""Change requests: an estimate the client approves or declines by email.

``#estimate 3h £270 new team page`` sends the client a clear estimate; the ticket waits
in ``awaiting_approval`` (SLA clocks paused). The client's reply is read from the text
they actually wrote (quoted history removed): "approve" opens the ticket and books the
hours as planned against their allowance; "decline" is recorded and the owner told.
Only the client's own people can decide; anyone else is noted and changes nothing.

A decision has money attached, and anyone can write a client's From: header, so it
counts only with proof (``identity.client_proof``): sent to the reply address signed for
that estimate and that recipient, or vouched for by our receiving server. Without it the
decision is recorded as unconfirmed and the owner asked to check with the client; their
``#confirm`` (or ``desk tickets confirm``) applies it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.inbox.message import ParsedMessage
from desk.inbox.quotes import reply_text
from desk.names import staff_greeting
from desk.outbound.mail import OutgoingMail
from desk.outbound.messages import (
    client_recipients,
    client_thread,
    queue_mail,
    staff_address,
)
from desk.reports.hours import month_usage
from desk.routing.subject import tagged
from desk.sla.calendar import parse_duration
from desk.store.directory import of_client
from desk.store.models import (
    Estimate,
    EstimateStatus,
    Event,
    Message,
    Role,
    Staff,
    Status,
    Ticket,
    Tier,
    TimeEntry,
)
from desk.store.tickets import add_event
from desk.work.actions import Actor, Refused
from desk.work.identity import client_proof
from desk.work.people import greeting_for

# A cost carries its currency ("£270", "450EUR"): a bare number is part of the text
# ("4h 2 new pages").
_COST = re.compile(r"^(?:[£$€]\s?\d[\d,]*(?:\.\d{1,2})?|\d[\d,]*(?:\.\d{1,2})?\s?(?:€|£|\$|"
                   r"EUR|GBP|USD|CHF))$", re.IGNORECASE)

# Words in several languages; negations flip an approval into a decline.
_APPROVE = re.compile(
    r"\b(?:approve[sd]?|approving|go ahead|accepted|accept|agreed|agree|yes please|"
    r"genehmigt|genehmige|freigegeben|einverstanden|approuvé|approuve|accepte|d'accord|"
    r"akkoord|goedgekeurd|aprobado|apruebo|acepto)\b", re.IGNORECASE)
_DECLINE = re.compile(
    r"\b(?:decline[sd]?|declining|reject(?:ed)?|no thanks|not now|too expensive|cancel|"
    r"abgelehnt|ablehnen|lehne|refuse|refusé|afgewezen|rechazo|rechazado)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|don't|do not|cannot|can't|won't|nicht|pas|niet|no)\s+"
                       r"(?:\w+\s+){0,2}$", re.IGNORECASE)


def parse_estimate(arg: str) -> tuple[int, str | None, str]:
    """``3h £270 the new team page`` -> (180 minutes, "£270", "the new team page")."""
    words = arg.split()
    if not words:
        raise Refused("#estimate needs a duration: #estimate 3h [£270] what will be done")
    try:
        duration = parse_duration(words[0])
    except ValueError as exc:
        raise Refused(f"#estimate {words[0]}: {exc}") from None
    if duration.working_days:
        raise Refused("#estimate takes hours and minutes, e.g. #estimate 6h30m")
    cost = None
    rest = words[1:]
    if rest and _COST.match(rest[0]) and any(c.isdigit() for c in rest[0]):
        cost, rest = rest[0], rest[1:]
    return duration.minutes, cost, " ".join(rest)


def decision_in(text: str) -> tuple[str | None, str]:
    """("approve" | "decline" | None, the words that decided) from what the client wrote."""
    written = reply_text(text)
    first = "\n".join(line for line in written.splitlines()[:15] if line.strip())
    approve = _APPROVE.search(first)
    decline = _DECLINE.search(first)
    if approve and _NEGATION.search(first[: approve.start()]):
        decline, approve = approve, None
    if approve and not decline:
        return "approve", first.strip()[:500]
    if decline and not approve:
        return "decline", first.strip()[:500]
    return None, first.strip()[:500]


def _hours(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}" if m else f"{h}h"


def pending_estimate(session: Session, ticket: Ticket) -> Estimate | None:
    return session.scalar(select(Estimate).where(
        Estimate.ticket_id == ticket.id, Estimate.status == EstimateStatus.pending)
        .order_by(Estimate.id.desc()).limit(1))


def create_estimate(session: Session, settings: Settings, ticket: Ticket, actor: Actor,
                    inbound: Message, arg: str, body: str, now: datetime) -> str:
    staff = actor.staff
    assert staff is not None
    if ticket.tier == Tier.hosting and staff.role != Role.account_manager:
        raise Refused("hosting-only clients get their costing from the account manager")
    if staff.role not in (Role.account_manager, Role.project_manager, Role.senior_engineer,
                          Role.junior_engineer):
        raise Refused("#estimate is for account managers, project managers and seniors")
    minutes, cost, text = parse_estimate(arg)
    description = "\n\n".join(part for part in (text, body.strip()) if part)
    if not description:
        raise Refused("say what the estimate covers: #estimate 3h £270 new team page")
    superseded = cast("CursorResult[Any]", session.execute(
        update(Estimate).where(Estimate.ticket_id == ticket.id,
                               Estimate.status.in_((EstimateStatus.pending, EstimateStatus.held)))
        .values(status=EstimateStatus.superseded))).rowcount
    held = staff.role == Role.junior_engineer
    estimate = Estimate(ticket_id=ticket.id, client_id=ticket.client_id, minutes=minutes,
                        cost=cost, text=description, author_staff_id=staff.id,
                        status=EstimateStatus.held if held else EstimateStatus.pending,
                        created_at=now)
    session.add(estimate)
    session.flush()
    to, cc = client_recipients(session, ticket)
    row = queue_mail(session, settings, OutgoingMail(
        kind="estimate", event_key=f"estimate:{estimate.id}", to=to, cc=cc,
        subject=f"Estimate for your approval: {tagged(ticket.subject, ticket.ref)}",
        template="estimate", context=estimate_context(session, settings, ticket, estimate, now),
        thread=client_thread(session, ticket), automatic=False,
        from_name=f"{staff.name} ({settings.desk.name})", held=held, author_id=staff.id,
        # The client's answer proves itself by coming back to this address (signed for this
        # estimate and the requester): see handle_decision.
        estimate_id=estimate.id,
    ), ticket=ticket, now=now)
    assert row is not None
    estimate.message_id, estimate.outbox_id = row.message_id, row.id
    what = f"{_hours(minutes)}{' / ' + cost if cost else ''}"
    scope = " (replaces the earlier estimate: scope changed)" if superseded else ""
    add_event(session, ticket, "scope_change" if superseded else "estimate",
              f"estimate {estimate.id} by {staff.email}: {what}: {description[:200]}{scope}",
              at=now, actor=staff.email,
              data={"estimate_id": estimate.id, "minutes": minutes, "cost": cost})
    if held:
        from desk.work.notices import request_approval

        request_approval(session, settings, ticket, staff, row, description, now)
        return f"estimate {estimate.id} held for review before it goes to the client"
    _await(session, ticket, now, staff.email)
    return f"estimate {estimate.id} ({what}) sent to the client"


def _await(session: Session, ticket: Ticket, now: datetime, who: str) -> None:
    if ticket.status != Status.awaiting_approval:
        before = ticket.status
        ticket.status = Status.awaiting_approval
        add_event(session, ticket, "status", f"{before} -> awaiting_approval: waiting for the "
                  "client's answer to the estimate (SLA clocks paused)", at=now, actor=who)


def release_held_estimate(session: Session, ticket: Ticket, outbox_id: int, now: datetime,
                          approver: str) -> None:
    estimate = session.scalar(select(Estimate).where(Estimate.outbox_id == outbox_id))
    if estimate is not None and estimate.status == EstimateStatus.held:
        estimate.status = EstimateStatus.pending
        _await(session, ticket, now, approver)


def estimate_context(session: Session, settings: Settings, ticket: Ticket, estimate: Estimate,
                     now: datetime) -> dict[str, Any]:
    client = ticket.client
    allowance = None
    if client is not None and client.hours_per_month:
        used = month_usage(session, client, now, zone=settings.desk.timezone)
        planned = month_usage(session, client, now, kind="planned",
                              zone=settings.desk.timezone)
        total = used.used_minutes + planned.used_minutes + estimate.minutes
        allowance = {"allowance": _hours(int(client.hours_per_month * 60)),
                     "used": _hours(used.used_minutes), "planned": _hours(planned.used_minutes),
                     "after": _hours(total), "over": total > client.hours_per_month * 60}
    author = session.get(Staff, estimate.author_staff_id) if estimate.author_staff_id else None
    return {
        "ref": ticket.ref, "subject": ticket.subject, "desk_name": settings.desk.name,
        "first_name": greeting_for(session, ticket.requester_email, ticket.requester_name),
        "text": estimate.text, "hours": _hours(estimate.minutes), "cost": estimate.cost,
        "tier": ticket.tier, "allowance": allowance,
        "author": author.name if author else settings.desk.name,
    }


def may_decide(session: Session, ticket: Ticket, email: str) -> bool:
    """Only the client's own people: the requester, a contact, an address at its domains."""
    if email.lower() == ticket.requester_email:
        return True
    return ticket.client is not None and of_client(session, ticket.client, email)


@dataclass(frozen=True, slots=True)
class Decision:
    """A client's answer to an estimate, as they gave it (kept until it is applied)."""

    verdict: str  # "approve" | "decline"
    sender: str
    words: str
    message_id: str | None
    at: datetime


def handle_decision(session: Session, settings: Settings, ticket: Ticket, msg: ParsedMessage,
                    inbound: Message, now: datetime) -> bool:
    """A reply on a ticket with a pending estimate: approve, decline, or neither.
    Returns True when the reply was a decision (applied, or held as unconfirmed)."""
    estimate = pending_estimate(session, ticket)
    if estimate is None or msg.sender is None:
        return False
    verdict, words = decision_in(msg.text_body)
    if verdict is None:
        return False
    sender = msg.sender.email
    if not may_decide(session, ticket, sender):
        add_event(session, ticket, "decision_refused", f"{sender} answered {verdict!r} to "
                  f"estimate {estimate.id} but is not one of "
                  f"{ticket.client.name if ticket.client else 'the client'}'s people: "
                  "nothing changed", at=now, actor=sender)
        return False

    domains = [d.domain for d in ticket.client.domains] if ticket.client else []
    proof = client_proof(msg, ticket.ref, estimate.id, domains, settings)
    decision = Decision(verdict, sender, words, msg.message_id, now)
    if not proof.ok:
        _hold_unconfirmed(session, settings, ticket, estimate, decision, proof.how, now)
        return True
    _apply(session, settings, ticket, estimate, decision, proof.how, now)
    return True


def _apply(session: Session, settings: Settings, ticket: Ticket, estimate: Estimate,
           decision: Decision, how: str, now: datetime, confirmed_by: str | None = None
           ) -> None:
    """The client's decision takes effect (``how``: what proved it was theirs)."""
    verdict, sender, words = decision.verdict, decision.sender, decision.words
    estimate.status = (EstimateStatus.approved if verdict == "approve"
                       else EstimateStatus.declined)
    # The client's moment and words, also when staff confirmed them later: the estimate
    # records what the client decided; the event log records who confirmed it.
    estimate.decided_at, estimate.decided_by = decision.at, sender
    estimate.decision_words, estimate.decision_message_id = words, decision.message_id
    data = {"estimate_id": estimate.id, "words": words, "message_id": decision.message_id,
            "minutes": estimate.minutes, "cost": estimate.cost, "proof": how,
            "confirmed_by": confirmed_by}
    if verdict == "approve":
        ticket.status = Status.open
        session.add(TimeEntry(ticket_id=ticket.id, client_id=ticket.client_id,
                              minutes=estimate.minutes, kind="planned", at=now,
                              note=f"estimate {estimate.id} approved", source="estimate"))
        add_event(session, ticket, "estimate_approved",
                  f"{sender} approved estimate {estimate.id} ({_hours(estimate.minutes)}"
                  f"{' / ' + estimate.cost if estimate.cost else ''}): \"{words[:200]}\" "
                  f"({how})", at=now, actor=sender, data=data)
    else:
        ticket.status = Status.open
        add_event(session, ticket, "estimate_declined",
                  f"{sender} declined estimate {estimate.id}: \"{words[:200]}\" ({how})",
                  at=now, actor=sender, data=data)
    _tell_owner(session, settings, ticket, estimate, verdict, sender, words, now)


def _hold_unconfirmed(session: Session, settings: Settings, ticket: Ticket,
                      estimate: Estimate, decision: Decision, why: str, now: datetime) -> None:
    """An unproven decision changes nothing; the event keeps it for ``confirm_decision``
    and the owner is asked to check it with the client."""
    verdict, sender = decision.verdict, decision.sender
    add_event(session, ticket, "decision_unconfirmed",
              f"{sender} answered {verdict!r} to estimate {estimate.id}, unproven ({why}): "
              f"nothing changed until staff confirm it (#confirm): \"{decision.words[:200]}\"",
              at=now, actor=sender,
              data={"estimate_id": estimate.id, "verdict": verdict, "words": decision.words,
                    "sender": sender, "message_id": decision.message_id, "why": why})
    person = ticket.owner or _account_manager(session, ticket)
    if person is None:
        return  # nobody to ask: the event is on the ticket for `desk tickets confirm`
    # A forger can send any number of these: one request per verdict and hour is enough
    # to tell the owner, and #confirm applies the latest decision anyway.
    hour = int(now.timestamp() // 3600)
    queue_mail(session, settings, OutgoingMail(
        kind="decision_confirm",
        event_key=f"estimate:{estimate.id}:unconfirmed:{verdict}:{person.id}:{hour}",
        to=[staff_address(person)], staff_id=person.id,
        subject=f"Confirm the client's {verdict}? {tagged(ticket.subject, ticket.ref)}",
        template="decision_confirm", internal=True,
        context={"staff_name": staff_greeting(person.name, person.email), "verdict": verdict,
                 "sender": sender,
                 "words": decision.words, "why": why, "ref": ticket.ref,
                 "hours": _hours(estimate.minutes), "cost": estimate.cost,
                 "desk_name": settings.desk.name},
    ), ticket=ticket, now=now)


def _account_manager(session: Session, ticket: Ticket) -> Staff | None:
    email = ticket.client.account_manager if ticket.client else None
    if not email:
        return None
    return session.scalar(select(Staff).where(Staff.email == email.lower(),
                                              Staff.active.is_(True)))


def unconfirmed_decision(session: Session, ticket: Ticket, estimate: Estimate
                         ) -> Decision | None:
    """The latest unproven decision on ``estimate`` (it is still pending, so none of them
    has been applied)."""
    events = session.scalars(select(Event).where(
        Event.ticket_id == ticket.id, Event.kind == "decision_unconfirmed")
        .order_by(Event.id.desc()))
    for event in events:
        data = event.data or {}
        if data.get("estimate_id") == estimate.id:
            return Decision(str(data["verdict"]), str(data["sender"]), str(data["words"]),
                            data.get("message_id"), event.at)
    return None


def confirm_decision(session: Session, settings: Settings, ticket: Ticket, actor: Actor,
                     now: datetime) -> str:
    """``#confirm`` / ``desk tickets confirm``: staff checked the unproven decision with the
    client; apply it as if the client's proven answer had arrived."""
    staff = actor.staff
    # Whom desk asked (the owner) and whoever may sign off a costing on the client's
    # behalf (#approve: account managers).
    if staff is not None and staff.id != ticket.owner_id and \
            staff.role != Role.account_manager:
        raise Refused("#confirm is for the ticket's owner and account managers; you are a "
                      f"{staff.role.replace('_', ' ')}")
    estimate = pending_estimate(session, ticket)
    decision = unconfirmed_decision(session, ticket, estimate) if estimate else None
    if estimate is None or decision is None:
        raise Refused(f"no unconfirmed client decision is waiting on #{ticket.ref}: "
                      "nothing to confirm")
    add_event(session, ticket, "decision_confirmed",
              f"{actor.label} confirmed {decision.sender}'s {decision.verdict!r} of estimate "
              f"{estimate.id}, received {decision.at:%Y-%m-%d %H:%M} UTC unproven",
              at=now, actor=actor.label,
              data={"estimate_id": estimate.id, "verdict": decision.verdict,
                    "sender": decision.sender, "message_id": decision.message_id})
    _apply(session, settings, ticket, estimate, decision, f"confirmed by {actor.label}", now,
           confirmed_by=actor.label)
    done = "approved: the ticket is open" if decision.verdict == "approve" else "declined"
    return f"estimate {estimate.id} {done} ({decision.sender}'s decision, confirmed)"


def _tell_owner(session: Session, settings: Settings, ticket: Ticket, estimate: Estimate,
                verdict: str, sender: str, words: str, now: datetime) -> None:
    people = [p for p in (ticket.owner,) if p is not None]
    author = session.get(Staff, estimate.author_staff_id) if estimate.author_staff_id else None
    if author is not None and author not in people:
        people.append(author)
    for person in people:
        queue_mail(session, settings, OutgoingMail(
            kind="estimate_decision", event_key=f"estimate:{estimate.id}:{verdict}:{person.id}",
            to=[staff_address(person)], staff_id=person.id,
            subject=f"Estimate {verdict}d: {tagged(ticket.subject, ticket.ref)}",
            template="estimate_decision", internal=True,
            context={"staff_name": staff_greeting(person.name, person.email), "verdict": verdict,
                     "sender": sender, "words": words, "ref": ticket.ref,
                     "hours": _hours(estimate.minutes), "cost": estimate.cost,
                     "desk_name": settings.desk.name},
        ), ticket=ticket, now=now)

