"""The clock task: warn before a promise is broken, escalate step by step after, nudge
owners when a client has not heard from us, warn before an ETA passes.

It reads only tickets whose indexed ``next_clock_at`` is due. Each ticket is handled in
its own transaction (row-locked with SKIP LOCKED on PostgreSQL, so several workers share
the work); every action is remembered on the ticket and every mail is keyed by its
action, so a warning or a ladder step happens once, across restarts and workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.names import staff_greeting
from desk.outbound.mail import OutgoingMail
from desk.outbound.messages import client_recipients, client_thread, queue_mail, staff_address
from desk.routing.subject import tagged
from desk.sla.clock import ONCE_KINDS, estimate_since, refresh
from desk.sla.schedule import KIND_WORDS, Action, schedule
from desk.store.db import is_postgres, transaction
from desk.store.models import Staff, Ticket
from desk.store.tickets import add_event
from desk.work.estimates import pending_estimate
from desk.work.people import greeting_for

log = logging.getLogger("desk.sla")


@dataclass(slots=True)
class ClockReport:
    tickets: int = 0
    warnings: int = 0
    escalations: int = 0
    nudges: int = 0
    eta_warnings: int = 0


class Clock:
    def __init__(self, factory: sessionmaker[Session], settings: Settings,
                 clock: Callable[[], datetime], batch: int = 200) -> None:
        self.factory = factory
        self.settings = settings
        self.clock = clock
        self.batch = batch

    def tick(self) -> ClockReport:
        report = ClockReport()
        now = self.clock()
        while True:
            with self.factory() as session:
                ids = list(session.scalars(
                    select(Ticket.id).where(Ticket.next_clock_at <= now)
                    .order_by(Ticket.next_clock_at).limit(self.batch)))
            if not ids:
                return report
            progressed = False
            for ticket_id in ids:
                progressed |= self._one(ticket_id, now, report)
            if not progressed:
                return report  # everything left is locked by other workers

    def _one(self, ticket_id: int, now: datetime, report: ClockReport) -> bool:
        with transaction(self.factory) as session:
            q = select(Ticket).where(Ticket.id == ticket_id, Ticket.next_clock_at <= now)
            if is_postgres(session.get_bind()):  # type: ignore[arg-type]
                q = q.with_for_update(skip_locked=True)
            ticket = session.scalar(q)
            if ticket is None:
                return False
            report.tickets += 1
            self._perform(session, ticket, now, report)
            return True

    def _perform(self, session: Session, ticket: Ticket, now: datetime,
                 report: ClockReport) -> None:
        checked = ticket.clock_checked_at or (ticket.created_at - timedelta(seconds=1))
        done = list(ticket.clock_done or [])
        actions = schedule(ticket, self.settings, checked, estimate_since(ticket))
        for action in actions:
            if action.at > now or action.key in done:
                continue
            if action.kind not in ONCE_KINDS and action.at <= checked:
                continue
            self._do(session, ticket, action, now, report)
            if action.kind in ONCE_KINDS:
                done.append(action.key)
        live = {a.key for a in actions}
        ticket.clock_done = [k for k in done if k in live]  # forget superseded deadlines
        ticket.clock_checked_at = now
        refresh(ticket, self.settings, now)

    # -- actions ----------------------------------------------------------------------
    def _do(self, session: Session, ticket: Ticket, action: Action, now: datetime,
            report: ClockReport) -> None:
        if action.kind == "warn":
            if action.due is not None and now >= action.due:
                return  # already breached: the ladder speaks instead
            self._warn(session, ticket, action, now)
            report.warnings += 1
        elif action.kind == "breach":
            self._escalate(session, ticket, action, now)
            report.escalations += 1
        elif action.kind in ("nudge", "p1_prompt"):
            self._nudge(session, ticket, action, now)
            report.nudges += 1
        elif action.kind == "eta_warning":
            self._eta(session, ticket, action, now)
            report.eta_warnings += 1
        elif action.kind == "estimate_reminder":
            self._estimate_reminder(session, ticket, action, now)
            report.nudges += 1

    def _local(self, ticket: Ticket, when: datetime | None) -> str:
        if when is None:
            return "-"
        tz = (ticket.client.timezone if ticket.client else None) or self.settings.desk.timezone
        return when.astimezone(ZoneInfo(tz)).strftime("%a %d %b %H:%M %Z")

    def _context(self, ticket: Ticket, action: Action, **extra: Any) -> dict[str, Any]:
        return {
            "ref": ticket.ref, "subject": ticket.subject, "priority": ticket.priority,
            "status": ticket.status, "tier": ticket.tier,
            "client": ticket.client.name if ticket.client else ticket.requester_email,
            "owner": ticket.owner.name if ticket.owner else "nobody",
            "deadline": KIND_WORDS.get(action.deadline or "", ""),
            "due": self._local(ticket, action.due),
            "eta": ticket.eta.isoformat() if ticket.eta else None,
            "desk_name": self.settings.desk.name, **extra,
        }

    def _mail_staff(self, session: Session, ticket: Ticket, person: Staff, action: Action,
                    template: str, subject: str, now: datetime, **extra: Any) -> None:
        queue_mail(session, self.settings, OutgoingMail(
            kind=template, event_key=f"{action.key}:{person.id}", to=[staff_address(person)],
            staff_id=person.id,
            subject=f"{subject}: {tagged(ticket.subject, ticket.ref)}",
            template=template, internal=True,
            context=self._context(ticket, action,
                                  staff_name=staff_greeting(person.name, person.email), **extra),
        ), ticket=ticket, now=now)

    def _warn(self, session: Session, ticket: Ticket, action: Action, now: datetime) -> None:
        word = KIND_WORDS[action.deadline or ""]
        if ticket.owner is not None:
            left = (action.due - now) if action.due else timedelta(0)
            self._mail_staff(session, ticket, ticket.owner, action, "sla_warning",
                             f"Due soon ({word})", now,
                             minutes_left=int(left.total_seconds() // 60))
        add_event(session, ticket, "sla_warning", f"{word} due {self._local(ticket, action.due)}"
                  f"; warned {ticket.owner.email if ticket.owner else 'nobody (no owner)'}",
                  at=now, data={"key": action.key})

    def _ladder_person(self, session: Session, ticket: Ticket, step: str) -> Staff | None:
        if step == "owner":
            return ticket.owner
        client = ticket.client
        email = getattr(client, step, None) if client is not None else self.settings.desk.triage
        if not email:
            return None
        return session.scalar(select(Staff).where(Staff.email == email, Staff.active.is_(True)))

    def _escalate(self, session: Session, ticket: Ticket, action: Action, now: datetime) -> None:
        word = KIND_WORDS[action.deadline or ""]
        ladder = self.settings.sla.ladder
        step = ladder[action.step]
        person = self._ladder_person(session, ticket, step)
        earlier = {p.id for p in (self._ladder_person(session, ticket, s)
                                  for s in ladder[:action.step]) if p is not None}
        if action.step == 0:
            add_event(session, ticket, "sla_breached",
                      f"{word} was due {self._local(ticket, action.due)}", at=now,
                      data={"key": action.key, "deadline": action.deadline})
        if person is None:
            detail = f"step {action.step + 1} ({step.replace('_', ' ')}): nobody to tell"
        elif person.id in earlier:
            detail = (f"step {action.step + 1} ({step.replace('_', ' ')}): {person.email} "
                      "was already told")
        else:
            self._mail_staff(session, ticket, person, action, "sla_escalation",
                             f"Overdue ({word})", now, step=action.step + 1,
                             role=step.replace("_", " "), steps=len(ladder))
            detail = f"step {action.step + 1} ({step.replace('_', ' ')}): told {person.email}"
        add_event(session, ticket, "escalated", f"{word} overdue; {detail}", at=now,
                  data={"key": action.key, "step": action.step})

    def _nudge(self, session: Session, ticket: Ticket, action: Action, now: datetime) -> None:
        p1 = action.kind == "p1_prompt"
        silent = now - max(t for t in (ticket.last_public_reply_at, ticket.created_at) if t)
        hours = int(silent.total_seconds() // 3600)
        if ticket.owner is not None:
            self._mail_staff(session, ticket, ticket.owner, action, "sla_nudge",
                             "P1 update due" if p1 else "Client waiting for news", now,
                             p1=p1, silent_hours=hours)
        add_event(session, ticket, "nudged", ("P1 hourly prompt" if p1 else
                  f"the client has not heard from us for {hours} h") + " to "
                  + (ticket.owner.email if ticket.owner else "nobody"), at=now,
                  data={"key": action.key})
        policy = self.settings.sla.policy(ticket.sla_policy)
        if not p1 and policy is not None and policy.client_updates:
            self._status_update(session, ticket, action, now)

    def _status_update(self, session: Session, ticket: Ticket, action: Action,
                       now: datetime) -> None:
        to, cc = client_recipients(session, ticket)
        queue_mail(session, self.settings, OutgoingMail(
            kind="status_update", event_key=f"{action.key}:client", to=to, cc=cc,
            subject=f"Update: {tagged(ticket.subject, ticket.ref)}",
            template="status_update", thread=client_thread(session, ticket),
            context=self._context(ticket, action, first_name=greeting_for(
                session, ticket.requester_email, ticket.requester_name)),
        ), ticket=ticket, now=now)
        ticket.last_public_reply_at = now  # the client has heard from us
        add_event(session, ticket, "status_update", f"status update sent to "
                  f"{', '.join(a.email for a in (*to, *cc))}", at=now)

    def _estimate_reminder(self, session: Session, ticket: Ticket, action: Action,
                           now: datetime) -> None:
        if ticket.owner is not None:
            self._mail_staff(session, ticket, ticket.owner, action, "sla_nudge",
                             "Estimate not answered", now, p1=False, estimate=True,
                             silent_hours=int((now - ticket.updated_at).total_seconds() // 3600))
        told = "the owner"
        if self.settings.change_requests.remind_client:
            to, cc = client_recipients(session, ticket)
            queue_mail(session, self.settings, OutgoingMail(
                kind="estimate_reminder", event_key=f"{action.key}:client", to=to, cc=cc,
                subject=f"Reminder: your approval for {tagged(ticket.subject, ticket.ref)}",
                template="estimate_reminder", thread=client_thread(session, ticket),
                # The answer to a reminder is a decision too: the same bound Reply-To.
                estimate_id=estimate.id if (estimate := pending_estimate(session, ticket))
                else None,
                context=self._context(ticket, action, first_name=greeting_for(
                    session, ticket.requester_email, ticket.requester_name)),
            ), ticket=ticket, now=now)
            told += " and the client (once)"
        add_event(session, ticket, "estimate_reminder", f"estimate unanswered for "
                  f"{self.settings.change_requests.remind_after}: reminded {told}", at=now,
                  data={"key": action.key})

    def _eta(self, session: Session, ticket: Ticket, action: Action, now: datetime) -> None:
        person = self._ladder_person(session, ticket, "project_manager") or ticket.owner
        if person is not None:
            self._mail_staff(session, ticket, person, action, "eta_warning",
                             f"ETA {ticket.eta} at risk", now)
        add_event(session, ticket, "eta_warning", f"ETA {ticket.eta} and the ticket is still "
                  f"{ticket.status}; warned {person.email if person else 'nobody'}", at=now,
                  data={"key": action.key})

