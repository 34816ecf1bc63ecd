"""Who owns a new ticket.

Default rules from DOMAIN.md: unknown sender -> the triage account manager;
post-project and hosting-only -> the client's account manager (hosting-only waits for a
costed sign-off); project, retainer and SLA tiers -> the client's project manager.
Away or inactive owners are replaced by the client's backup manager.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.models import Client, Role, Staff, Status, Tier
from desk.routing.classify import Classification


@dataclass(slots=True)
class Assignment:
    owner: Staff | None
    status: str
    reasons: list[str] = field(default_factory=list)


_CLIENT_ROLE_FOR_TIER: dict[str, str] = {
    Tier.post_project: "account_manager",
    Tier.hosting: "account_manager",
    Tier.project: "project_manager",
    Tier.retainer: "project_manager",
    Tier.hosting_sla: "project_manager",
    Tier.support_sla: "project_manager",
}


def _staff(session: Session, email: str | None) -> Staff | None:
    if not email:
        return None
    return session.scalar(select(Staff).where(Staff.email == email.lower()))


def _available(person: Staff | None, today: date) -> tuple[bool, str]:
    if person is None:
        return False, "is not on the staff list"
    if not person.active:
        return False, f"{person.email} is inactive"
    if person.is_away(today):
        return False, f"{person.email} is away until {person.away_until}"
    if person.role == Role.junior_engineer:
        return False, f"{person.email} is a junior engineer and never the client-facing owner"
    return True, ""


def triage_owner(session: Session, triage: str | None) -> tuple[Staff | None, str]:
    person = _staff(session, triage)
    if person is not None:
        return person, f"triage account manager {person.email} (configured)"
    person = session.scalar(
        select(Staff)
        .where(Staff.role == Role.account_manager, Staff.active.is_(True))
        .order_by(Staff.id)
    )
    if person is not None:
        return person, f"first active account manager {person.email} (no [desk] triage set)"
    return None, "no account manager on the staff list: left unassigned"


def assign(
    session: Session, classification: Classification, *, triage: str | None, today: date
) -> Assignment:
    client: Client | None = classification.client
    if client is None:
        owner, why = triage_owner(session, triage)
        return Assignment(owner, Status.new, [f"unknown sender -> {why}"])
    role = _CLIENT_ROLE_FOR_TIER.get(client.tier, "account_manager")
    status = Status.awaiting_approval if client.tier == Tier.hosting else Status.new
    reasons = [f"tier {client.tier} -> the client's {role.replace('_', ' ')}"]
    if client.tier == Tier.hosting:
        reasons.append("hosting without SLA: waits for the account manager's costed sign-off")
    for label, email in ((role, getattr(client, role)), ("backup", client.backup)):
        person = _staff(session, email)
        ok, why = _available(person, today)
        if ok:
            reasons.append(f"owner {person.email} ({label.replace('_', ' ')})")  # type: ignore[union-attr]
            return Assignment(person, status, reasons)
        reasons.append(f"skipped {label.replace('_', ' ')} {email or '(none set)'}: {why}")
    owner, why = triage_owner(session, None)
    reasons.append(f"fell back to {why}")
    return Assignment(owner, status, reasons)
