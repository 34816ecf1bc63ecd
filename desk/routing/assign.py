"""Who owns a new ticket, and who works it: ordered rules (``desk.config.routing``).

An owner who is away, inactive, over capacity or a junior engineer is skipped, with the
reason recorded: the client's backup manager steps in, then the least-loaded colleague
of the same role, then triage. Every step is written to the ticket's event log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desk.config.routing import Pool, Rule, Target
from desk.config.settings import Settings
from desk.routing.classify import Classification
from desk.store.deferred import update_later
from desk.store.directory import all_staff, count_assignment, staff_by_email, staff_load
from desk.store.models import OPEN_STATUSES, Client, Role, Staff, Status, Ticket, TicketWorker
from desk.store.tickets import add_event
from desk.words import noun_for, plural


@dataclass(slots=True)
class Assignment:
    owner: Staff | None
    status: str
    rule: str | None = None
    workers: list[Staff] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def open_load(session: Session, staff_ids: Sequence[int] | None = None) -> dict[int, int]:
    """Open tickets each person owns or works, in two grouped queries."""
    owned = select(Ticket.owner_id, func.count()).where(
        Ticket.status.in_(OPEN_STATUSES), Ticket.owner_id.is_not(None)
    ).group_by(Ticket.owner_id)
    worked = (select(TicketWorker.staff_id, func.count())
              .join(Ticket, Ticket.id == TicketWorker.ticket_id)
              .where(Ticket.status.in_(OPEN_STATUSES)).group_by(TicketWorker.staff_id))
    if staff_ids is not None:
        owned = owned.where(Ticket.owner_id.in_(staff_ids))
        worked = worked.where(TicketWorker.staff_id.in_(staff_ids))
    load: dict[int, int] = {}
    for sid, n in [*session.execute(owned).all(), *session.execute(worked).all()]:
        if sid is not None:  # owners are filtered on NOT NULL; the type does not know
            load[sid] = load.get(sid, 0) + n
    return load


class _Resolver:
    def __init__(self, session: Session, client: Client | None, triage: str | None,
                 today: date, now: datetime) -> None:
        self.session = session
        self.client = client
        self.triage = triage
        self.today = today
        self.now = now
        self.reasons: list[str] = []

    def load(self) -> dict[int, int]:
        return staff_load(self.session, open_load)

    def staff(self, email: str | None) -> Staff | None:
        return staff_by_email(self.session, email)

    def why_not(self, person: Staff | None, as_owner: bool) -> str | None:
        if person is None:
            return "is not on the staff list"
        if not person.active:
            return "is inactive"
        if person.is_away(self.today):
            return f"is away until {person.away_until}" if person.away_until else "is away"
        if as_owner and person.role == Role.junior_engineer:
            return "is a junior engineer, never the client-facing owner"
        if person.capacity is not None:
            load = self.load().get(person.id, 0)
            if load >= person.capacity:
                return (f"is at capacity ({load}/{person.capacity} "
                        f"{noun_for(person.capacity, 'open ticket')})")
        return None

    def pick_from_pool(self, pool: Pool, exclude: Sequence[int] = ()) -> Staff | None:
        candidates = [p for p in all_staff(self.session) if p.role == pool.role and p.active]
        load = self.load()
        usable = []
        for person in candidates:
            if person.id in exclude:
                continue
            if person.is_away(self.today):
                self.reasons.append(f"pool {pool.role}: skipped {person.email} (away)")
                continue
            if person.capacity is not None and load.get(person.id, 0) >= person.capacity:
                self.reasons.append(f"pool {pool.role}: skipped {person.email} (at capacity "
                                    f"{load.get(person.id, 0)}/{person.capacity})")
                continue
            usable.append(person)
        if not usable:
            self.reasons.append(f"pool {pool.role}: nobody available")
            return None
        never = datetime.min.replace(tzinfo=UTC)
        if pool.strategy == "round_robin":
            chosen = min(usable, key=lambda p: (p.last_assigned_at or never, p.id))
            self.reasons.append(f"pool {pool.role} round robin -> {chosen.email} "
                                "(assigned least recently)")
        else:
            chosen = min(usable, key=lambda p: (load.get(p.id, 0),
                                                p.last_assigned_at or never, p.id))
            self.reasons.append(f"pool {pool.role} least loaded -> {chosen.email} "
                                f"({plural(load.get(chosen.id, 0), 'open ticket')})")
        return chosen

    def triage_owner(self) -> Staff | None:
        person = self.staff(self.triage)
        if person is not None and self.why_not(person, True) is None:
            self.reasons.append(f"triage account manager {person.email}")
            return person
        if person is not None:
            self.reasons.append(f"triage {person.email} {self.why_not(person, True)}")
        chosen = self.pick_from_pool(Pool(role="account_manager"))
        if chosen is None:
            self.reasons.append("left unassigned: no account manager available")
        return chosen

    def resolve(self, target: Target, as_owner: bool) -> Staff | None:
        if isinstance(target, Pool):
            chosen = self.pick_from_pool(target)
            return chosen if chosen or not as_owner else self.triage_owner()
        if target == "triage":
            return self.triage_owner()
        if target in ("account_manager", "project_manager", "backup"):
            email = getattr(self.client, target) if self.client else None
            label = f"the client's {target.replace('_', ' ')}"
        else:
            email, label = target, target
        person = self.staff(email)
        problem = self.why_not(person, as_owner) if email else "is not set"
        if problem is None:
            assert person is not None
            self.reasons.append(f"{label} {person.email}")
            return person
        self.reasons.append(f"skipped {label} {email or ''}".rstrip() + f": {problem}")
        if not as_owner:
            return None
        if target != "backup" and self.client is not None and self.client.backup:
            backup = self.staff(self.client.backup)
            problem = self.why_not(backup, True)
            if problem is None:
                assert backup is not None
                self.reasons.append(f"the client's backup manager {backup.email} steps in")
                return backup
            self.reasons.append(f"skipped the client's backup {self.client.backup}: {problem}")
        role = target if target in ("account_manager", "project_manager") else "project_manager"
        exclude = [p.id for p in (person,) if p is not None]
        chosen = self.pick_from_pool(Pool(role=role), exclude)  # type: ignore[arg-type]
        return chosen or self.triage_owner()


def rule_matches(rule: Rule, c: Classification, text: str) -> bool:
    m = rule.match
    if m.unknown_sender is not None and m.unknown_sender != (c.client is None):
        return False
    if m.tier is not None and c.tier not in m.tier:
        return False
    if m.priority is not None and c.priority not in m.priority:
        return False
    if m.client is not None and (c.client is None or c.client.name.lower() not in
                                 {n.lower() for n in m.client}):
        return False
    return m.keywords is None or any(k.lower() in text for k in m.keywords)


def assign(
    session: Session,
    classification: Classification,
    *,
    rules: Sequence[Rule],
    text: str,
    triage: str | None,
    today: date,
    now: datetime,
) -> Assignment:
    resolver = _Resolver(session, classification.client, triage, today, now)
    lowered = text.lower()
    for rule in rules:
        if not rule_matches(rule, classification, lowered):
            continue
        resolver.reasons.append(f"rule {rule.name!r}")
        owner = resolver.resolve(rule.owner, as_owner=True)
        workers: list[Staff] = []
        if rule.worker is not None:
            worker = resolver.resolve(rule.worker, as_owner=False)
            if worker is not None and worker is not owner:
                workers.append(worker)
        for person in (owner, *workers):
            if person is not None:
                update_later(session, person, last_assigned_at=now)
        status = rule.status or Status.new
        if status in OPEN_STATUSES:
            count_assignment(session, [owner, *workers])
        if status == Status.awaiting_approval:
            resolver.reasons.append("no engineering work until the account manager signs off "
                                    "a costed estimate")
        return Assignment(owner, status, rule.name, workers, resolver.reasons)
    resolver.reasons.append("no rule matched")
    owner = resolver.triage_owner()
    if owner is not None:
        update_later(session, owner, last_assigned_at=now)
    count_assignment(session, [owner])
    return Assignment(owner, Status.new, None, [], resolver.reasons)


def assign_by_rules(session: Session, settings: Settings, classification: Classification,
                    subject: str, body: str, now: datetime) -> Assignment:
    """``assign`` with the agency's rules and triage owner, on today's date as the
    client's time zone counts it (absences are by date); rules read the subject and the
    top of the body."""
    client = classification.client
    zone = ZoneInfo((client.timezone if client else None) or settings.desk.timezone)
    return assign(session, classification, rules=settings.routing.rules,
                  text=f"{subject}\n{body[:4000]}",
                  triage=settings.desk.triage, today=now.astimezone(zone).date(), now=now)


def record_assignment(session: Session, ticket: Ticket, a: Assignment, now: datetime) -> str:
    """The ticket's ``assigned`` event; returns its words (the owner's notice says why)."""
    owner = a.owner.email if a.owner else "nobody"
    workers = [w.email for w in a.workers]
    summary = f"owner {owner}" + (f", worker {', '.join(workers)}" if workers else "")
    assigned = f"{summary}: " + "; ".join(a.reasons)
    add_event(session, ticket, "assigned", assigned, at=now,
              data={"owner": owner, "workers": workers, "rule": a.rule})
    return assigned
