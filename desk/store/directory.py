"""Clients, contacts and staff: the directory the pipeline classifies and assigns by.

Kept in the database, so changes take effect in a running daemon at once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.store.models import Client, ClientDomain, Contact, Role, Staff, Tier, utcnow


class DirectoryError(Exception):
    pass


def _email(value: str) -> str:
    value = value.strip().lower()
    local, _, domain = value.rpartition("@")
    if not local or "." not in domain or " " in value:
        raise DirectoryError(f"{value!r} is not an email address")
    return value


def _domain(value: str) -> str:
    value = value.strip().lower().lstrip("@")
    if "." not in value or " " in value or "@" in value:
        raise DirectoryError(f"{value!r} is not a domain")
    return value


@dataclass(slots=True)
class ClientSpec:
    name: str
    tier: str
    domains: Sequence[str] = ()
    contacts: Sequence[str] = ()
    account_manager: str | None = None
    project_manager: str | None = None
    backup: str | None = None
    hours_per_month: float | None = None
    timezone: str | None = None
    sla_policy: str | None = None
    calendar: str | None = None
    report_period: str | None = None

    def validate(self) -> None:
        if not self.name.strip():
            raise DirectoryError("client name is empty")
        if self.tier not in Tier.__members__:
            raise DirectoryError(f"unknown tier {self.tier!r} (one of {', '.join(Tier)})")
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise DirectoryError(f"unknown time zone {self.timezone!r}") from None
        if self.hours_per_month is not None and self.hours_per_month < 0:
            raise DirectoryError("hours per month cannot be negative")


def upsert_client(session: Session, spec: ClientSpec,
                  now: datetime | None = None) -> tuple[Client, list[str]]:
    """Create or update a client; returns it and a list of human-readable changes."""
    spec.validate()
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
        d = _domain(raw)
        owner = session.get(ClientDomain, d)
        if owner is not None and owner.client is not client:
            raise DirectoryError(f"domain {d} already belongs to {owner.client.name}")
        if owner is None:
            client.domains.append(ClientDomain(domain=d))
            changes.append(f"domain {d}")
    for raw in spec.contacts:
        e = _email(raw)
        contact = session.scalar(select(Contact).where(Contact.email == e))
        if contact is not None and contact.client is not client:
            raise DirectoryError(f"contact {e} already belongs to {contact.client.name}")
        if contact is None:
            client.contacts.append(Contact(email=e))
            changes.append(f"contact {e}")
    session.flush()
    return client, changes


def of_client(session: Session, client: Client, email: str) -> bool:
    """Is ``email`` one of the client's people: a contact, or an address at its domains?"""
    email = email.lower()
    if session.scalar(select(Contact.id).where(Contact.email == email,
                                               Contact.client_id == client.id)):
        return True
    return email.rpartition("@")[2] in {d.domain for d in client.domains}


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
        "account_manager": c.account_manager,
        "project_manager": c.project_manager,
        "backup": c.backup,
        "hours_per_month": c.hours_per_month,
        "timezone": c.timezone,
        "sla_policy": (c.settings or {}).get("sla_policy") or c.tier,
        "calendar": (c.settings or {}).get("calendar") or "default",
    }


def add_staff(
    session: Session, email: str, name: str, role: str, capacity: int | None = None,
    now: datetime | None = None,
) -> tuple[Staff, bool]:
    email = _email(email)
    if role not in Role.__members__:
        raise DirectoryError(f"unknown role {role!r} (one of {', '.join(Role)})")
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


@dataclass(slots=True)
class ImportReport:
    changes: list[tuple[int, str, list[str]]]  # (line, name, changes)
    errors: list[tuple[int, str]]  # (line, message)


CLIENT_COLUMNS = ("name", "tier", "domains", "contacts", "account_manager", "project_manager",
                  "backup", "hours_per_month", "timezone", "sla_policy")


def _multi(value: str | None) -> list[str]:
    """Several values in one spreadsheet cell: separated by ; , or whitespace."""
    return [v for v in re.split(r"[;,\s]+", value or "") if v]


def import_clients(session: Session, text: str, now: datetime | None = None) -> ImportReport:
    """Upsert every row of the agency's client overview; each row in its own savepoint,
    so one bad row never half-applies. The caller commits or rolls back the whole."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in ("name", "tier") if c not in header]
    if missing:
        return ImportReport([], [(1, f"missing column(s): {', '.join(missing)}")])
    unknown = [h for h in header if h not in CLIENT_COLUMNS]
    if unknown:
        return ImportReport([], [(1, f"unknown column(s): {', '.join(unknown)}")])
    report = ImportReport([], [])
    for row in reader:
        line = reader.line_num
        cells = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        try:
            hours = cells.get("hours_per_month") or None
            spec = ClientSpec(
                name=cells.get("name", ""),
                tier=cells.get("tier", ""),
                domains=_multi(cells.get("domains")),
                contacts=_multi(cells.get("contacts")),
                account_manager=cells.get("account_manager") or None,
                project_manager=cells.get("project_manager") or None,
                backup=cells.get("backup") or None,
                hours_per_month=float(hours) if hours else None,
                timezone=cells.get("timezone") or None,
                sla_policy=cells.get("sla_policy") or None,
            )
            with session.begin_nested():
                _, changes = upsert_client(session, spec, now)
            report.changes.append((line, spec.name, changes))
        except (DirectoryError, ValueError) as exc:
            report.errors.append((line, str(exc)))
    return report


def import_staff(session: Session, text: str, now: datetime | None = None) -> ImportReport:
    reader = csv.DictReader(io.StringIO(text))
    report = ImportReport([], [])
    for row in reader:
        cells = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        try:
            cap = cells.get("capacity") or None
            with session.begin_nested():
                person, created = add_staff(session, cells.get("email", ""),
                                            cells.get("name", ""), cells.get("role", ""),
                                            int(cap) if cap else None, now)
            report.changes.append((reader.line_num, person.email,
                                   ["added" if created else "updated"]))
        except (DirectoryError, ValueError) as exc:
            report.errors.append((reader.line_num, str(exc)))
    return report
