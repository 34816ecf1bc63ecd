"""One message's journey: an ordered list of named stages over one ``Journey``, inside
one database transaction (or, in a batch, one transaction for many: work/ingest.py).

    require-sender -> screen -> classify -> which-ticket
      a new conversation: forwarded-by-staff -> acknowledge? -> assign (auto mail: set
                          aside, no owner, no clock) -> open-ticket
                          -> record-decisions -> unproven-forward -> acknowledge
                          -> notify-staff
      a ticket it joins:  join-ticket -> bounce -> staff-reply | client-reply -> clocks

Each stage is a small object with a name and one ``run``; ``applies`` says whether it has
anything to do with this journey. The stages call the modules that do the work
(screening, classify, which_ticket, assign, acknowledge, notices, conversation) and know
nothing of IMAP or SMTP. Every decision is written to the ticket's event log with its
reason. ``desk route`` runs the same list on a made-up message and rolls it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.inbox.message import Address, ParsedMessage
from desk.inbox.screening import Blocker, screen
from desk.routing.assign import Assignment, assign_by_rules, record_assignment
from desk.routing.classify import Classification, classify, record_classification
from desk.routing.forward import original_sender
from desk.routing.subject import base_subject
from desk.sla.clock import refresh
from desk.store.deferred import insert_later, insert_now
from desk.store.directory import forget_cached, of_client
from desk.store.models import Client, Contact, Message, Status, Ticket, TicketWorker, table
from desk.store.tickets import add_event, add_participant
from desk.work.acknowledge import queue_acknowledgement, rate_cap_reason
from desk.work.auto_mail import promote, set_aside
from desk.work.conversation import handle_client_reply, handle_staff_reply, refuse_unproven
from desk.work.identity import FORWARDING_REF, Proof, staff_proof
from desk.work.inbound import record_inbound
from desk.work.notices import notify_staff
from desk.work.which_ticket import ThreadMatch, which_ticket

_TICKET_WORKERS = table(TicketWorker)


NO_SENDER = "no usable From address: nobody to answer"


class Unprocessable(Exception):
    """The message can never be processed as it is: quarantine it with this reason."""


@dataclass(slots=True)
class Outcome:
    ticket_id: int
    new_ticket: bool
    acknowledged: bool
    stages: list[str] = field(default_factory=list)  # the stages that ran, in order


@dataclass(slots=True)
class Journey:
    """One message on its way through the stages: what they read and write."""

    session: Session
    msg: ParsedMessage
    settings: Settings
    now: datetime
    source: str
    raw_id: int | None
    blockers: list[Blocker] = field(default_factory=list)  # screening rules that matched
    classification: Classification | None = None
    match: ThreadMatch | None = None
    requester: Address | None = None  # whose ticket a new one is
    no_ack: str = ""  # why the new ticket gets no acknowledgement ("": it gets one)
    assignment: Assignment | None = None
    assigned: str = ""  # the assignment, in words, for the event and the owner's notice
    ticket: Ticket | None = None
    inbound: Message | None = None
    acknowledged: bool = False
    # A staff member's forward that could not be proven theirs: opens no ticket in the
    # client's name and acknowledges nobody named inside it.
    unproven_forward: Proof | None = None
    done: bool = False  # a stage settled everything: the rest are skipped
    trail: list[str] = field(default_factory=list)

    @property
    def is_new(self) -> bool:
        return self.match is not None and self.match.ticket is None

    @property
    def joins(self) -> Ticket | None:
        return self.match.ticket if self.match is not None else None

    @property
    def auto_generated(self) -> bool:
        return bool(self.blockers)


class Stage:
    name = ""

    def applies(self, j: Journey) -> bool:
        return True

    def run(self, j: Journey) -> None:
        raise NotImplementedError


class NewTicketStage(Stage):
    def applies(self, j: Journey) -> bool:
        return j.is_new


class JoinedTicketStage(Stage):
    def applies(self, j: Journey) -> bool:
        return j.joins is not None


# -- every message ------------------------------------------------------------------
class RequireSender(Stage):
    name = "require-sender"

    def run(self, j: Journey) -> None:
        if j.msg.sender is None:
            raise Unprocessable(NO_SENDER)


class Screen(Stage):
    name = "screen"

    def run(self, j: Journey) -> None:
        address = j.settings.desk.address
        j.blockers = screen(j.msg, own_addresses=[address], loop_header_value=address)


class Classify(Stage):
    name = "classify"

    def run(self, j: Journey) -> None:
        j.classification = classify(j.session, j.msg,
                                    urgent_phrases=j.settings.routing.urgent_phrases)


class WhichTicket(Stage):
    name = "which-ticket"

    def run(self, j: Journey) -> None:
        assert j.classification is not None
        j.match = which_ticket(j.session, j.msg, j.settings, j.now,
                               from_staff=j.classification.staff is not None)
        j.requester = j.msg.sender


# -- a new conversation -------------------------------------------------------------
class ForwardedByStaff(NewTicketStage):
    """A colleague forwarded a client's mail: the ticket is the client's."""

    name = "forwarded-by-staff"

    def run(self, j: Journey) -> None:
        c = j.classification
        assert c is not None and j.msg.sender is not None
        if c.staff is None or (original := original_sender(j.msg)) is None:
            return
        # A forward comes to the support address, so the proof is the staff member's own
        # forwarding address (a bound token without a ticket) or their mail server's word.
        proof = staff_proof(j.msg, c.staff.id, c.staff.email, FORWARDING_REF, j.settings)
        if not proof.ok:
            j.unproven_forward = proof
            return
        j.requester = original
        j.classification = classify(j.session, j.msg,
                                    urgent_phrases=j.settings.routing.urgent_phrases,
                                    on_behalf_of=original.email)
        j.classification.notes.append(f"forwarded by staff {j.msg.sender.email} on behalf of "
                                      f"{original.email}")


class MayAcknowledge(NewTicketStage):
    name = "acknowledge?"

    def run(self, j: Journey) -> None:
        c = j.classification
        assert j.requester is not None and c is not None
        if j.unproven_forward is not None:
            j.no_ack = (f"a forward from {j.requester.email} without proof that they sent it "
                        f"({j.unproven_forward.how}): nobody named in it is acknowledged")
            return
        # Asked before the ticket exists: the query then has nothing of this ticket to flush.
        j.no_ack = "; ".join(b.reason for b in j.blockers) if j.blockers else rate_cap_reason(
            j.session, j.settings, j.requester.email, j.msg.subject, j.now,
            verified=c.contact is not None or c.staff is not None) or ""


class Assign(NewTicketStage):
    name = "assign"

    def run(self, j: Journey) -> None:
        c = j.classification
        assert c is not None
        if j.auto_generated:  # nobody is paged for a robot's mail: set aside, no clock
            j.assignment = set_aside(j.blockers)
            return
        j.assignment = assign_by_rules(j.session, j.settings, c,
                                       j.msg.subject, j.msg.text_body, j.now)


class OpenTicket(NewTicketStage):
    name = "open-ticket"

    def run(self, j: Journey) -> None:
        session, now, c, a = j.session, j.now, j.classification, j.assignment
        assert c is not None and a is not None and j.requester is not None and j.match
        linked = j.match.linked
        ticket = Ticket(
            subject=base_subject(j.msg.subject),
            status=a.status,
            priority=c.priority,
            tier=c.tier,
            client=c.client,
            requester_email=j.requester.email,
            requester_name=j.requester.name,
            owner=a.owner,
            workers=a.workers,
            created_at=now,
            updated_at=now,
            last_client_message_at=now,
            sla_policy=c.sla_policy or ("triage" if c.client is None else None),
            linked_ticket_id=linked.id if linked is not None else None,
        )
        # Deadlines depend only on the ticket's own fields: written with the ticket's
        # INSERT instead of in UPDATEs right after it.
        refresh(ticket, j.settings, now)
        insert_now(session, ticket)  # its id is its reference, needed for the ack below
        for worker in a.workers:
            insert_later(session, _TICKET_WORKERS, {"ticket_id": ticket.id,
                                                     "staff_id": worker.id})
        j.ticket = ticket
        j.inbound = record_inbound(session, ticket, j.msg, now=now, source=j.source,
                                   raw_id=j.raw_id, auto_generated=j.auto_generated)
        if linked is not None:
            add_event(session, linked, "linked", f"a later reply opened #{ticket.ref}", at=now)
        if c.client is not None:
            _add_ccs(session, ticket, j.msg, c.client, j.settings)


class RecordDecisions(NewTicketStage):
    """Why the ticket is classified, threaded and assigned as it is: its first events."""

    name = "record-decisions"

    def run(self, j: Journey) -> None:
        session, now, c, a, match, ticket = (j.session, j.now, j.classification,
                                             j.assignment, j.match, j.ticket)
        assert c is not None and a is not None and match is not None and ticket is not None
        record_classification(session, ticket, c, now)
        add_event(session, ticket, "threaded", match.detail, at=now, data={"how": match.how})
        _record_refusals(session, match, now)
        if match.refused:
            add_event(session, ticket, "thread_refused",
                      "; ".join(why for _, why in match.refused), at=now)
        j.assigned = record_assignment(session, ticket, a, now)
        for defect in j.msg.defects:
            add_event(session, ticket, "parse_note", defect, at=now)


class ReportUnprovenForward(NewTicketStage):
    name = "unproven-forward"

    def applies(self, j: Journey) -> bool:
        return j.is_new and j.unproven_forward is not None

    def run(self, j: Journey) -> None:
        c = j.classification
        assert j.ticket is not None and j.inbound is not None and c is not None
        assert c.staff is not None and j.unproven_forward is not None
        refuse_unproven(j.session, j.settings, j.ticket, c.staff, j.inbound,
                        j.unproven_forward, j.now)


class Acknowledge(NewTicketStage):
    name = "acknowledge"

    def run(self, j: Journey) -> None:
        ticket, c, now = j.ticket, j.classification, j.now
        assert ticket is not None and c is not None and j.requester is not None
        if j.no_ack:
            data = {"rules": [b.rule for b in j.blockers]} if j.blockers else None
            add_event(j.session, ticket, "ack_suppressed", j.no_ack, at=now, data=data)
        elif queue_acknowledgement(j.session, j.settings, ticket, c, j.msg, j.requester, now):
            j.acknowledged = True
            add_event(j.session, ticket, "acknowledged",
                      f"acknowledgement queued to {j.requester.email}", at=now)


class NotifyStaff(NewTicketStage):
    name = "notify-staff"

    def applies(self, j: Journey) -> bool:
        return j.is_new and not j.auto_generated

    def run(self, j: Journey) -> None:
        assert j.ticket is not None and j.inbound is not None
        notify_staff(j.session, j.settings, j.ticket, j.inbound, j.now, kind="new",
                     reason=j.assigned)


# -- a ticket it joins --------------------------------------------------------------
class JoinTicket(JoinedTicketStage):
    name = "join-ticket"

    def run(self, j: Journey) -> None:
        session, now, match = j.session, j.now, j.match
        assert match is not None and match.ticket is not None and j.msg.sender is not None
        j.ticket = match.ticket
        j.inbound = record_inbound(session, j.ticket, j.msg, now=now, source=j.source,
                                   raw_id=j.raw_id, auto_generated=j.auto_generated)
        session.flush()
        _record_refusals(session, match, now)
        add_event(session, j.ticket, "threaded", f"{j.msg.sender.email}: {match.detail}",
                  at=now, data={"how": match.how})


class Bounce(JoinedTicketStage):
    """A delivery report marks the addresses that failed; nothing else happens."""

    name = "bounce"

    def applies(self, j: Journey) -> bool:
        return j.match is not None and j.match.how == "bounce"

    def run(self, j: Journey) -> None:
        assert j.ticket is not None
        failed = [r.lower() for r in j.msg.dsn_failed_recipients]
        if failed:
            j.session.execute(update(Contact).where(Contact.email.in_(failed))
                              .values(bouncing=True))
        add_event(j.session, j.ticket, "bounce",
                  f"delivery failed for {', '.join(failed) or 'an unknown recipient'}",
                  at=j.now, data={"failed": failed})
        j.done = True


def _staff_writing(j: Journey) -> bool:
    staff = j.classification.staff if j.classification is not None else None
    return staff is not None and j.ticket is not None and \
        staff.email != j.ticket.requester_email


class StaffReply(JoinedTicketStage):
    name = "staff-reply"

    def applies(self, j: Journey) -> bool:
        return j.joins is not None and _staff_writing(j)

    def run(self, j: Journey) -> None:
        assert j.ticket is not None and j.inbound is not None and j.classification
        assert j.classification.staff is not None
        handle_staff_reply(j.session, j.ticket, j.msg, j.inbound, j.classification.staff,
                           j.settings, j.now)
        forget_cached(j.session)  # a command may have closed or reassigned: load changed


class ClientReply(JoinedTicketStage):
    name = "client-reply"

    def applies(self, j: Journey) -> bool:
        return j.joins is not None and not _staff_writing(j)

    def run(self, j: Journey) -> None:
        ticket, match = j.ticket, j.match
        assert ticket is not None and j.inbound is not None and match is not None
        if j.auto_generated:
            # An out-of-office answering our mail: on the record, and nothing else changes.
            add_event(j.session, ticket, "auto_reply",
                      f"auto-generated mail from {j.inbound.from_addr} "
                      f"({', '.join(b.rule for b in j.blockers)}): no status or clock changed",
                      at=j.now, data={"rules": [b.rule for b in j.blockers]})
            return
        if ticket.status == Status.auto:
            # A person wrote into mail that was set aside: it is a conversation after all.
            promote(j.session, j.settings, ticket, j.now, by=j.inbound.from_addr,
                    acknowledge=True, written=(j.inbound, j.msg))
            return
        if ticket.client is not None:
            _add_ccs(j.session, ticket, j.msg, ticket.client, j.settings)
        handle_client_reply(j.session, ticket, j.msg, j.inbound, j.settings, j.now,
                            match.answers)


class RefreshClocks(JoinedTicketStage):
    name = "clocks"

    def run(self, j: Journey) -> None:
        assert j.ticket is not None
        refresh(j.ticket, j.settings, j.now)


STAGES: tuple[Stage, ...] = (
    RequireSender(),
    Screen(),
    Classify(),
    WhichTicket(),
    # a new conversation
    ForwardedByStaff(),
    MayAcknowledge(),
    Assign(),
    OpenTicket(),
    RecordDecisions(),
    ReportUnprovenForward(),
    Acknowledge(),
    NotifyStaff(),
    # a ticket it joins
    JoinTicket(),
    Bounce(),
    StaffReply(),
    ClientReply(),
    RefreshClocks(),
)


def process(
    session: Session,
    msg: ParsedMessage,
    settings: Settings,
    *,
    now: datetime,
    source: str,
    raw_id: int | None = None,
) -> Outcome:
    j = Journey(session, msg, settings, now, source, raw_id)
    for stage in STAGES:
        if j.done:
            break
        if stage.applies(j):
            stage.run(j)
            j.trail.append(stage.name)
    assert j.ticket is not None
    return Outcome(j.ticket.id, j.is_new, j.acknowledged, j.trail)


def _record_refusals(session: Session, match: ThreadMatch, now: datetime) -> None:
    for target, why in match.refused:
        add_event(session, target, "thread_refused", why, at=now)


def _add_ccs(
    session: Session, ticket: Ticket, msg: ParsedMessage, client: Client, settings: Settings
) -> None:
    """CC'd colleagues of the same client become participants of the conversation."""
    for addr in msg.cc + msg.to:
        if addr.email == settings.desk.address or addr.email.startswith(
            settings.desk.local_part + "+"
        ):
            continue
        if of_client(session, client, addr.email) and add_participant(
                session, ticket, addr.email, "cc"):
            add_event(session, ticket, "participant", f"{addr.email} (CC'd colleague of "
                          f"{client.name}) joins the conversation", at=ticket.updated_at)
