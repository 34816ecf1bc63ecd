"""Clients, contacts and staff: the directory the pipeline classifies and assigns by.

Kept in the database, so changes take effect in a running daemon at once. Spreadsheet
imports of the same records are in ``desk.store.spreadsheets``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import getaddresses
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.store.models import Client, ClientDomain, Contact, Role, Staff, Tier, utcnow


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one value: the key of the field it is in (a CSV column, an
    option of `desk client add`; "" for a whole row), what is wrong, naming the value,
    and what would be accepted instead. Problems are reported together, so an admin
    fixes a file in one go."""

    key: str
    message: str
    allowed: str

    def shown(self, where: str = "") -> str:
        text = f"{self.message} ({where})" if where else self.message
        return f"{text}: {self.allowed}" if self.allowed else text


class DirectoryError(Exception):
    def __init__(self, problems: str | Problem | Sequence[Problem]) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems, "")]
        self.problems: list[Problem] = (
            [problems] if isinstance(problems, Problem) else list(problems))
        super().__init__("; ".join(p.shown() for p in self.problems))


EMAIL_ALLOWED = "an address such as name@example.com"


def _email(value: str) -> str:
    value = value.strip().lower()
    local, _, domain = value.rpartition("@")
    if not local or "." not in domain or " " in value:
        raise DirectoryError(Problem("", f"{value!r} is not an email address", EMAIL_ALLOWED))
    return value


def _domain(value: str) -> str:
    value = value.strip().lower().lstrip("@")
    if "." not in value or " " in value or "@" in value:
        raise DirectoryError(Problem("", f"{value!r} is not a domain",
                                     "a domain such as example.com"))
    return value


def parse_contact(value: str) -> tuple[str, str]:
    """``Rosa Elm <rosa@example.com>`` or a plain address: (display name, address)."""
    text = value.strip()
    if "<" in text or '"' in text:
        found = getaddresses([text])
        if len(found) != 1 or not found[0][1]:
            raise DirectoryError(Problem(
                "", f"{text!r} is not one contact",
                f"{EMAIL_ALLOWED}, or a name and an address: Rosa Elm <rosa@example.com>"))
        name, address = found[0]
        return " ".join(name.split()), _email(address)
    return "", _email(text)


def split_contacts(value: str | None) -> list[str]:
    """Several contacts in one cell: separated by ';' or ','. A comma or a space inside
    a quoted name or <...> separates nothing; plain addresses may also be separated by
    spaces, as earlier versions accepted."""
    parts: list[str] = []
    current, quoted, angled = "", False, False
    for char in value or "":
        if char == '"' and not angled:
            quoted = not quoted
        elif char == "<" and not quoted:
            angled = True
        elif char == ">" and not quoted:
            angled = False
        if char in ";," and not quoted and not angled:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    found: list[str] = []
    for part in parts:
        if "<" in part or '"' in part:
            found.append(part.strip())
        else:
            found += part.split()
    return found


def _role_words(role: str) -> str:
    words = role.replace("_", " ")
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"


def _either(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


# Which staff roles may fill each of a client's manager fields (DOMAIN.md, Roles).
MANAGER_ROLES: dict[str, tuple[Role, ...]] = {
    # Costings of hosting-only clients, estimates and triage of strangers are theirs alone.
    "account_manager": (Role.account_manager,),
    # Owns delivery and assigns engineers; an account manager holds every power that
    # takes, so in a small agency one manager can be both.
    "project_manager": (Role.project_manager, Role.account_manager),
    # Takes over a ticket as its owner while the owner is away, and is the last step of
    # the escalation ladder: anyone who may own a client-facing ticket. Never a junior,
    # whom routing never makes an owner.
    "backup": (Role.account_manager, Role.project_manager, Role.senior_engineer),
}
_MANAGER_LABELS = {"account_manager": "the account manager",
                   "project_manager": "the project manager", "backup": "the backup manager"}


def manager_problem(session: Session, key: str, email: str) -> Problem | None:
    """Why ``email`` cannot be the client's ``key`` (account_manager, project_manager,
    backup), or None when they can: an active staff member with a fitting role."""
    roles = MANAGER_ROLES[key]
    allowed = (f"{_MANAGER_LABELS[key]} must be an active staff member with role "
               f"{_either(list(roles))}")
    person = session.scalar(select(Staff).where(Staff.email == email))
    if person is None:
        return Problem(key, f"{email} is not on the staff list",
                       allowed + " (add them with `desk staff add` first)")
    if not person.active:
        return Problem(key, f"{email} is inactive (left the agency)", allowed)
    if person.role not in roles:
        return Problem(key, f"{email} is {_role_words(person.role)}", allowed)
    return None


TIERS_ALLOWED = f"one of {', '.join(Tier)}"
TIMEZONE_ALLOWED = "an IANA time zone such as Europe/London or America/New_York"
# A month has at most 744 hours; anything beyond (or inf, nan) is a typo, and would break
# the arithmetic of every notice for the client.
MAX_HOURS_PER_MONTH = 744
HOURS_ALLOWED = f"a number of hours from 0 to {MAX_HOURS_PER_MONTH}, such as 10 or 7.5"


@dataclass(slots=True)
class ClientSpec:
    name: str
    tier: str
    domains: Sequence[str] = ()
    contacts: Sequence[str] = ()  # "rosa@example.com" or "Rosa Elm <rosa@example.com>"
    account_manager: str | None = None
    project_manager: str | None = None
    backup: str | None = None
    hours_per_month: float | None = None
    timezone: str | None = None
    sla_policy: str | None = None
    calendar: str | None = None
    report_period: str | None = None

    def problems(self, session: Session, *, policies: Collection[str] | None = None,
                 calendars: Collection[str] | None = None) -> list[Problem]:
        """Everything wrong with this client, each value checked, none skipped because of
        an earlier one. ``policies`` and ``calendars``: the names the configuration
        knows (unchecked when None)."""
        found: list[Problem] = []
        if not self.name.strip():
            found.append(Problem("name", "the client name is empty", "a name such as Acme Ltd"))
        if self.tier not in Tier.__members__:
            found.append(Problem("tier", f"unknown tier {self.tier!r}", TIERS_ALLOWED))
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                found.append(Problem("timezone", f"unknown time zone {self.timezone!r}",
                                     TIMEZONE_ALLOWED))
        hours = self.hours_per_month
        if hours is not None and not 0 <= hours <= MAX_HOURS_PER_MONTH:  # nan fails too
            found.append(Problem("hours_per_month",
                                 f"{hours:g} hours per month is "
                                 + ("negative" if hours < 0 else "not a month's hours"),
                                 HOURS_ALLOWED))
        if self.sla_policy and policies is not None and self.sla_policy not in policies:
            found.append(Problem("sla_policy", f"unknown SLA policy {self.sla_policy!r}",
                                 f"one of {', '.join(sorted(policies))}, or a policy defined "
                                 f"in [sla.policies.{self.sla_policy}]"))
        if self.calendar and calendars is not None and self.calendar not in calendars:
            found.append(Problem("calendar", f"unknown calendar {self.calendar!r}",
                                 (f"one of {', '.join(sorted(calendars))}, or " if calendars
                                  else "") + f"a calendar defined in "
                                 f"[sla.calendars.{self.calendar}]"))
        client = session.scalar(select(Client).where(Client.name == self.name.strip()))
        for raw in self.domains:
            try:
                _domain_free(session, client, raw)
            except DirectoryError as exc:
                found += _in("domains", exc.problems)
        for raw in self.contacts:
            try:
                _contact_free(session, client, raw)
            except DirectoryError as exc:
                found += _in("contacts", exc.problems)
        for key in MANAGER_ROLES:
            value = getattr(self, key)
            try:
                problem = manager_problem(session, key, _email(value)) if value else None
            except DirectoryError as exc:
                problem = _in(key, exc.problems)[0]
            if problem is not None:
                found.append(problem)
        return found


def _in(key: str, problems: Sequence[Problem]) -> list[Problem]:
    return [Problem(key, p.message, p.allowed) for p in problems]


def _domain_free(session: Session, client: Client | None, raw: str) -> str:
    d = _domain(raw)
    owner = session.get(ClientDomain, d)
    if owner is not None and owner.client is not client:
        raise DirectoryError(Problem("", f"domain {d} already belongs to {owner.client.name}",
                                     "a domain no other client has"))
    return d


def _contact_free(session: Session, client: Client | None, raw: str
                  ) -> tuple[str, str, Contact | None]:
    name, e = parse_contact(raw)
    contact = session.scalar(select(Contact).where(Contact.email == e))
    if contact is not None and contact.client is not client:
        raise DirectoryError(Problem("", f"contact {e} already belongs to "
                                     f"{contact.client.name}", "an address no other client has"))
    return name, e, contact


def upsert_client(session: Session, spec: ClientSpec, now: datetime | None = None, *,
                  policies: Collection[str] | None = None,
                  calendars: Collection[str] | None = None) -> tuple[Client, list[str]]:
    """Create or update a client; returns it and a list of human-readable changes.
    Raises DirectoryError with every problem of the spec, changing nothing."""
    problems = spec.problems(session, policies=policies, calendars=calendars)
    if problems:
        raise DirectoryError(problems)
    changes: list[str] = []
    client = session.scalar(select(Client).where(Client.name == spec.name.strip()))
    if client is None:
        client = Client(name=spec.name.strip(), tier=spec.tier, created_at=now or utcnow())
        session.add(client)
        changes.append(f"new client {spec.name} ({spec.tier})")
    fields: dict[str, Any] = {
        "tier": spec.tier,
        "account_manager": _email(spec.account_manager) if spec.account_manager else None,
        "project_manager": _email(spec.project_manager) if spec.project_manager else None,
        "backup": _email(spec.backup) if spec.backup else None,
        "hours_per_month": spec.hours_per_month,
        "timezone": spec.timezone or None,
    }
    for key, value in fields.items():
        if value is not None and getattr(client, key) != value:
            if client.id is not None:
                changes.append(f"{key}: {getattr(client, key)} -> {value}")
            setattr(client, key, value)
    for key, value in (("sla_policy", spec.sla_policy), ("calendar", spec.calendar),
                       ("report_period", spec.report_period)):
        if value and (client.settings or {}).get(key) != value:
            # A new dict: SQLAlchemy JSON columns only notice replaced values.
            client.settings = {**(client.settings or {}), key: value}
            changes.append(f"{key.replace('_', ' ')} -> {value}")
    for raw in spec.domains:
        d = _domain_free(session, client, raw)
        if session.get(ClientDomain, d) is None:
            client.domains.append(ClientDomain(domain=d))
            changes.append(f"domain {d}")
    for raw in spec.contacts:
        name, e, contact = _contact_free(session, client, raw)
        shown = f"{name} <{e}>" if name else e
        if contact is None:
            client.contacts.append(Contact(email=e, name=name))
            changes.append(f"contact {shown}")
        elif name and contact.name != name:
            # A bare address never erases a name given before; a new name replaces it.
            changes.append(f"contact {e}: name {contact.name or '(none)'} -> {name}")
            contact.name = name
    session.flush()
    return client, changes


def of_client(session: Session, client: Client, email: str) -> bool:
    """Is ``email`` one of the client's people: a contact, or an address at its domains?"""
    email = email.lower()
    if session.scalar(select(Contact.id).where(Contact.email == email,
                                               Contact.client_id == client.id)):
        return True
    # As classification does: mail.eu.client.com is client.com's (its subdomains too).
    parts = email.rpartition("@")[2].split(".")
    domains = {d.domain for d in client.domains}
    return any(".".join(parts[i:]) in domains for i in range(len(parts) - 1))


# -- lookups within one transaction ------------------------------------------------------
# The ingest of a backlog runs many messages in one transaction (inbox/ingest.py). The
# staff list and the domain table are small and read for every message; each is read once
# per transaction here and kept in ``session.info``, which lives exactly as long as the
# session. Our own changes go through the same ORM objects, so the copy stays true; a
# rolled-back savepoint calls ``forget_cached``.

_CACHE = "desk.directory"


@dataclass(slots=True)
class _Cached:
    staff: dict[str, Staff] | None = None
    domains: dict[str, int] | None = None  # domain -> client id
    clients: dict[int, Client] = field(default_factory=dict)
    load: dict[int, int] | None = None  # staff id -> open tickets owned or worked


def _cached(session: Session) -> _Cached:
    found = session.info.get(_CACHE)
    if found is None:
        found = session.info[_CACHE] = _Cached()
    return found


def forget_cached(session: Session) -> None:
    session.info.pop(_CACHE, None)


def _staff(session: Session) -> dict[str, Staff]:
    cache = _cached(session)
    if cache.staff is None:
        cache.staff = {p.email: p for p in session.scalars(select(Staff).order_by(Staff.id))}
    return cache.staff


def all_staff(session: Session) -> list[Staff]:
    return list(_staff(session).values())


def staff_by_email(session: Session, email: str | None) -> Staff | None:
    return _staff(session).get(email.lower()) if email else None


def client_by_domain(session: Session, domain: str) -> Client | None:
    cache = _cached(session)
    if cache.domains is None:
        cache.domains = {d: c for d, c in session.execute(
            select(ClientDomain.domain, ClientDomain.client_id))}
    client_id = cache.domains.get(domain)
    if client_id is None:
        return None
    # Held here, not only in the identity map, which keeps objects weakly: otherwise
    # every message would load its client again.
    if not cache.clients:
        # All at once: an agency has dozens of clients (a few hundred at most), and a
        # backlog's messages come from most of them. One query, not one per client.
        cache.clients = {c.id: c for c in session.scalars(select(Client))}
    return cache.clients.get(client_id)


def staff_load(session: Session, compute: Callable[[Session], dict[int, int]]
               ) -> dict[int, int]:
    """Everyone's open load, computed once per transaction and then kept up to date by
    ``count_assignment``; a staff reply that may close a ticket calls ``forget_cached``."""
    cache = _cached(session)
    if cache.load is None:
        cache.load = compute(session)
    return cache.load


def count_assignment(session: Session, people: Sequence[Staff | None]) -> None:
    load = _cached(session).load
    if load is None:
        return
    for person in dict.fromkeys(p for p in people if p is not None):
        load[person.id] = load.get(person.id, 0) + 1


def client_dict(c: Client) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "tier": c.tier,
        "domains": [d.domain for d in c.domains],
        "contacts": [x.email for x in c.contacts],
        "contact_names": {x.email: x.name for x in c.contacts if x.name},
        "account_manager": c.account_manager,
        "project_manager": c.project_manager,
        "backup": c.backup,
        "hours_per_month": c.hours_per_month,
        "timezone": c.timezone,
        "sla_policy": (c.settings or {}).get("sla_policy") or c.tier,
        "calendar": (c.settings or {}).get("calendar") or "default",
    }


ROLES_ALLOWED = f"one of {', '.join(Role)}"
MAX_CAPACITY = 10_000
CAPACITY_ALLOWED = (f"a whole number of open tickets from 0 to {MAX_CAPACITY:,}, such as 15 "
                    "(empty: no limit)")


def staff_problems(email: str, name: str, role: str, capacity: int | None = None
                   ) -> list[Problem]:
    """Everything wrong with a staff record, each value checked."""
    found: list[Problem] = []
    try:
        _email(email)
    except DirectoryError as exc:
        found += _in("email", exc.problems)
    if not name.strip():
        found.append(Problem("name", "the name is empty", "the person's name, such as Sam Lee"))
    if role not in Role.__members__:
        found.append(Problem("role", f"unknown role {role!r}", ROLES_ALLOWED))
    if capacity is not None and not 0 <= capacity <= MAX_CAPACITY:
        found.append(Problem("capacity", f"capacity {capacity} is "
                             + ("negative" if capacity < 0 else "more than anyone can own"),
                             CAPACITY_ALLOWED))
    return found


def add_staff(
    session: Session, email: str, name: str, role: str, capacity: int | None = None,
    now: datetime | None = None,
) -> tuple[Staff, bool]:
    problems = staff_problems(email, name, role, capacity)
    if problems:
        raise DirectoryError(problems)
    email = _email(email)
    person = session.scalar(select(Staff).where(Staff.email == email))
    created = person is None
    if person is None:
        person = Staff(email=email, name=name, role=role, created_at=now or utcnow())
        session.add(person)
    person.name, person.role, person.active = name, role, True
    if capacity is not None:
        person.capacity = capacity
    session.flush()
    return person, created


def set_away(session: Session, email: str, start: date | None, until: date | None) -> Staff:
    person = session.scalar(select(Staff).where(Staff.email == _email(email)))
    if person is None:
        raise DirectoryError(f"no staff member {email}")
    if start and until and until < start:
        raise DirectoryError("--until is before --from")
    person.away_from, person.away_until = start, until
    return person


def staff_dict(s: Staff) -> dict[str, Any]:
    return {
        "id": s.id,
        "email": s.email,
        "name": s.name,
        "role": s.role,
        "active": s.active,
        "capacity": s.capacity,
        "away_from": s.away_from.isoformat() if s.away_from else None,
        "away_until": s.away_until.isoformat() if s.away_until else None,
    }
