"""Ticket changes staff make, by email command or from the CLI, with DOMAIN.md's
permissions. Each returns a one-line description and records an event; a refused change
raises ``Refused`` with the reason the staff member is told."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.routing.commands import Command
from desk.store.directory import of_client
from desk.store.models import Role, Staff, Status, Ticket, TimeEntry
from desk.store.tickets import add_event, add_participant

MANAGERS = (Role.account_manager, Role.project_manager)
CLIENT_FACING = (Role.account_manager, Role.project_manager, Role.senior_engineer)


class Refused(Exception):
    """A command this person may not give, or that makes no sense; nothing changes."""


@dataclass(slots=True)
class Actor:
    staff: Staff | None  # None: an admin at the CLI (may do anything)
    label: str

    @property
    def role(self) -> str | None:
        return self.staff.role if self.staff else None

    def require(self, roles: tuple[str, ...], what: str) -> None:
        if self.staff is not None and self.staff.role not in roles:
            allowed = ", ".join(r.replace("_", " ") + "s" for r in roles)
            raise Refused(f"{what} is for {allowed}; you are a {self.staff.role.replace('_', ' ')}")


def _staff(session: Session, email: str) -> Staff:
    person = session.scalar(select(Staff).where(Staff.email == email.strip().lower()))
    if person is None or not person.active:
        raise Refused(f"{email} is not an active staff member")
    return person


def _no_unapproved_engineering(t: Ticket, person: Staff) -> None:
    """Hosting-only clients: no engineer works a change before the costing is approved."""
    if (t.tier == "hosting" and t.status == Status.awaiting_approval
            and person.role in (Role.senior_engineer, Role.junior_engineer)):
        raise Refused("this hosting-only change waits for the client to approve the account "
                      "manager's costing: no engineering work before that")


def take(session: Session, t: Ticket, actor: Actor, arg: str, now: datetime) -> str:
    actor.require(CLIENT_FACING, "#take")
    assert actor.staff is not None
    _no_unapproved_engineering(t, actor.staff)
    if t.owner_id == actor.staff.id:
        return f"{actor.label} already owns #{t.ref}"
    before = t.owner.email if t.owner else "nobody"
    t.owner = actor.staff
    add_event(session, t, "assigned", f"{actor.label} took the ticket (was {before})", at=now,
              actor=actor.label)
    return f"{actor.label} now owns #{t.ref}"


def assign_to(session: Session, t: Ticket, actor: Actor, arg: str, now: datetime) -> str:
    actor.require(MANAGERS, "#assign")
    if not arg:
        raise Refused("#assign needs an address: #assign sam@agency.example")
    person = _staff(session, arg)
    _no_unapproved_engineering(t, person)
    if person.role == Role.junior_engineer:
        # Juniors never face the client: they join as a worker under the current owner.
        if person not in t.workers:
            t.workers.append(person)
        add_event(session, t, "assigned", f"{actor.label} added junior {person.email} as a "
                  "worker (juniors are never the client-facing owner)", at=now, actor=actor.label)
        return f"{person.email} works #{t.ref} (owner stays {t.owner.email if t.owner else '-'})"
    before = t.owner.email if t.owner else "nobody"
    t.owner = person
    add_event(session, t, "assigned", f"{actor.label} assigned {person.email} (was {before})",
              at=now, actor=actor.label)
    return f"{person.email} now owns #{t.ref}"


def set_status(session: Session, t: Ticket, actor: Actor, arg: str, now: datetime) -> str:
    wanted = arg.strip().lower()
    if wanted not in ("open", "waiting", "resolved", "closed"):
        raise Refused("#status takes open, waiting, resolved or closed")
    if wanted in ("resolved", "closed"):
        actor.require(CLIENT_FACING, f"#status {wanted}")
    if t.status == Status.awaiting_approval and wanted == "open":
        raise Refused("this ticket waits for a signed-off costing: an account manager "
                      "opens it with #approve")
    before = t.status
    if before == wanted:
        return f"#{t.ref} is already {wanted}"
    t.status = wanted
    if wanted == "resolved":
        t.resolved_at = now
    add_event(session, t, "status", f"{before} -> {wanted} by {actor.label}", at=now,
              actor=actor.label, data={"from": before, "to": wanted})
    return f"#{t.ref} is now {wanted}"


def set_priority(session: Session, t: Ticket, actor: Actor, arg: str, now: datetime) -> str:
    actor.require(CLIENT_FACING, "#priority")
    wanted = arg.strip().upper()
    if wanted not in ("P1", "P2", "P3", "P4"):
        raise Refused("#priority takes P1, P2, P3 or P4")
    before = t.priority
    t.priority = wanted
    add_event(session, t, "priority", f"{before} -> {wanted} by {actor.label}", at=now,
              actor=actor.label, data={"from": before, "to": wanted})
    return f"#{t.ref} priority {wanted}"


def log_time(session: Session, t: Ticket, actor: Actor, arg: str, now: datetime) -> str:
    from desk.sla.calendar import parse_duration

    spent, _, note = arg.partition(" ")
    try:
        duration = parse_duration(spent)
    except ValueError as exc:
        raise Refused(f"#time {spent}: {exc} (write e.g. #time 1h30m)") from None
    if duration.working_days:
        raise Refused("#time takes hours and minutes, e.g. #time 1h30m")
    session.add(TimeEntry(ticket_id=t.id, client_id=t.client_id,
                          staff_id=actor.staff.id if actor.staff else None,
                          minutes=duration.minutes, note=note.strip(), at=now))
    add_event(session, t, "time", f"{actor.label} logged {duration}"
              + (f": {note.strip()}" if note.strip() else ""), at=now, actor=actor.label,
              data={"minutes": duration.minutes})
    return f"logged {duration} on #{t.ref}"


def set_eta(session: Session, t: Ticket, actor: Actor, arg: str, now: datetime) -> str:
    actor.require(CLIENT_FACING, "#eta")
    try:
        eta = date.fromisoformat(arg.strip())
    except ValueError:
        raise Refused("#eta takes a date: #eta 2026-12-01") from None
    before = t.eta
    t.eta = eta
    add_event(session, t, "eta", f"ETA {before or 'none'} -> {eta} by {actor.label}", at=now,
              actor=actor.label, data={"eta": eta.isoformat()})
    return f"#{t.ref} ETA {eta}"


def add_cc(session: Session, t: Ticket, actor: Actor, arg: str, now: datetime) -> str:
    actor.require(CLIENT_FACING, "#cc")
    email = arg.strip().lower()
    if "@" not in email:
        raise Refused("#cc needs an address: #cc colleague@client.example")
    # Only the client's own people: a CC must never leak a ticket to an outsider.
    if t.client is None or not of_client(session, t.client, email):
        raise Refused(f"{email} is not a contact of {t.client.name if t.client else 'a client'}"
                      "; add them with `desk client add` first")
    add_participant(session, t, email, "cc")
    add_event(session, t, "participant", f"{actor.label} added {email} in CC", at=now,
              actor=actor.label)
    return f"{email} now receives replies on #{t.ref}"


Handler = Callable[[Session, Ticket, Actor, str, datetime], str]

HANDLERS: dict[str, Handler] = {
    "take": take,
    "assign": assign_to,
    "status": set_status,
    "priority": set_priority,
    "time": log_time,
    "eta": set_eta,
    "cc": add_cc,
}


def run_command(session: Session, t: Ticket, actor: Actor, cmd: Command, now: datetime) -> str:
    handler = HANDLERS.get(cmd.name)
    if handler is None:
        raise Refused(f"{cmd.line}: not a command here")
    return handler(session, t, actor, cmd.arg, now)
