"""Auto-generated mail that threads into no ticket: set aside, and promoted by a person.

An out-of-office reply or a robot's notice is not a request. Left to the pipeline's usual
course it would become a ticket with an owner nobody told and an SLA clock running towards
a breach. Instead it becomes a ticket in the ``auto`` state: no owner, no notice, no clock
(``auto`` pauses the clocks, see ``sla/deadlines.py``), listed by ``desk tickets list
--status auto`` and counted by ``desk status``. ``desk tickets promote REF`` (or a person
writing into it) turns it into a ticket like any other: classified and assigned as of now,
its owner told, its clocks started then.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.inbox.message import Address, ParsedMessage
from desk.inbox.screening import Blocker
from desk.routing.assign import Assignment, assign_by_rules, record_assignment
from desk.routing.classify import classify, record_classification
from desk.sla.clock import refresh
from desk.store.models import Message, Status, Ticket
from desk.store.tickets import add_event
from desk.work.acknowledge import queue_acknowledgement, rate_cap_reason
from desk.work.notices import notify_staff


class NotSetAside(Exception):
    """Promotion asked of a ticket that is not in the ``auto`` state."""


def set_aside(blockers: list[Blocker]) -> Assignment:
    """The assignment of an auto mail that opens a ticket: nobody, and no round-robin turn
    used up (``assign`` would count it against someone's load)."""
    rules = ", ".join(b.rule for b in blockers)
    return Assignment(None, Status.auto, None, [], [
        f"auto-generated mail ({rules}): set aside with no owner and no SLA clock; "
        "`desk tickets promote` makes it a ticket if a person should answer it"])


def promote(session: Session, settings: Settings, ticket: Ticket, now: datetime, *,
            by: str, acknowledge: bool = False,
            written: tuple[Message, ParsedMessage] | None = None) -> Assignment:
    """Make a set-aside ticket a real one: classified and assigned by today's rules and
    directory, its owner and workers told, its clocks running from ``now``; with
    ``acknowledge`` the requester gets the acknowledgement they would have had.
    ``written``: the mail a person just wrote into it, which is then what counts."""
    if ticket.status != Status.auto:
        raise NotSetAside(f"#{ticket.ref} is {ticket.status}, not set aside as auto mail")
    if written is not None:
        first, msg = written
        requester = msg.sender or Address(ticket.requester_name or "", ticket.requester_email)
    else:
        first = session.scalars(select(Message).where(Message.ticket_id == ticket.id)
                                .order_by(Message.id).limit(1)).one()
        requester = Address(ticket.requester_name or "", ticket.requester_email)
        msg = ParsedMessage(message_id=first.message_id, sender=requester,
                            subject=first.subject, text_body=first.body_text)
    c = classify(session, msg, urgent_phrases=settings.routing.urgent_phrases)
    a = assign_by_rules(session, settings, c, msg.subject, msg.text_body, now)
    ticket.client, ticket.tier, ticket.priority = c.client, c.tier, c.priority
    ticket.sla_policy = c.sla_policy or ("triage" if c.client is None else None)
    ticket.owner, ticket.workers, ticket.status = a.owner, list(a.workers), a.status
    ticket.updated_at = now
    if written is not None:
        # The writer is whom the ticket now serves: replies and the acknowledgement go to
        # them, never to the robot's address the set-aside mail came from (which anyone
        # can forge to have a colleague's answer relayed to a mailbox of their choosing).
        ticket.requester_email, ticket.requester_name = requester.email, requester.name
        ticket.last_client_message_at = now
    refresh(ticket, settings, now)  # ends the pause the auto state was: clocks start now
    add_event(session, ticket, "promoted", f"promoted from auto mail by {by}", at=now,
              actor=by)
    record_classification(session, ticket, c, now)
    assigned = record_assignment(session, ticket, a, now)
    session.flush()
    # Mail written in is a new request and capped like one; an admin's --acknowledge is not.
    capped = rate_cap_reason(session, settings, requester.email, ticket.subject, now,
                             verified=c.contact is not None or c.staff is not None) \
        if acknowledge and written is not None else ""
    if capped:
        add_event(session, ticket, "ack_suppressed", capped, at=now)
    elif acknowledge and queue_acknowledgement(session, settings, ticket, c, msg, requester,
                                               now):
        add_event(session, ticket, "acknowledged",
                  f"acknowledgement queued to {requester.email}", at=now)
    notify_staff(session, settings, ticket, first, now, kind="new", reason=assigned)
    return a
