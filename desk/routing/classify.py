"""Who is writing: sender -> contact -> client -> tier -> priority.

Unknown senders are not a tier: they go to triage by an account manager.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from desk.config.urgent_phrases import DEFAULT_URGENT_PHRASES
from desk.inbox.message import ParsedMessage
from desk.store.deferred import query
from desk.store.directory import client_by_domain, staff_by_email
from desk.store.models import Client, Contact, Staff, Ticket, Tier
from desk.store.tickets import add_event

# The tier's default priority (DOMAIN.md: SLA tiers high, hosting-only lowest).
TIER_PRIORITY: dict[str, str] = {
    Tier.support_sla: "P2",
    Tier.hosting_sla: "P2",
    Tier.retainer: "P3",
    Tier.project: "P3",
    Tier.post_project: "P4",
    Tier.hosting: "P4",
}
UNKNOWN_PRIORITY = "P3"

@dataclass(slots=True)
class Classification:
    client: Client | None
    contact: Contact | None
    staff: Staff | None
    tier: str | None
    priority: str
    reason: str
    urgent_phrase: str | None = None
    sla_policy: str | None = None
    reason_policy: str = ""
    notes: list[str] = field(default_factory=list)


def _domain_candidates(domain: str) -> list[str]:
    """``mail.eu.client.com`` -> itself, ``eu.client.com``, ``client.com``."""
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]


_CONTACT = select(Contact.id).where(Contact.email == bindparam("email"))


def find_client(session: Session, email: str) -> tuple[Client | None, Contact | None, str]:
    email = email.lower()
    # Contacts are never deferred: a backlog's rows need not be written for this.
    contact_id = query(session, _CONTACT, {"email": email}, sees_deferred=False).scalar()
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    if contact is not None:
        return contact.client, contact, f"{email} is a contact of {contact.client.name}"
    domain = email.rpartition("@")[2]
    candidates = _domain_candidates(domain)
    for cand in candidates:  # most specific first
        client = client_by_domain(session, cand)
        if client is not None:
            return client, None, f"domain {cand} belongs to {client.name}"
    return None, None, f"{email} matches no contact or client domain"


@lru_cache(maxsize=16)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p.lower()) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def urgent_phrase(text: str, phrases: Sequence[str]) -> str | None:
    if not phrases:
        return None
    m = _phrase_pattern(tuple(phrases)).search(text.lower())
    return m.group(0) if m else None


def classify(
    session: Session,
    msg: ParsedMessage,
    *,
    urgent_phrases: Sequence[str] = DEFAULT_URGENT_PHRASES,
    on_behalf_of: str | None = None,
) -> Classification:
    sender = on_behalf_of or (msg.sender.email if msg.sender else "")
    staff = staff_by_email(session, sender)
    client, contact, reason = find_client(session, sender) if sender else (None, None, "no sender")
    tier = client.tier if client else None
    # The tier's SLA policy unless the client has its own (set with --sla-policy).
    override = (client.settings or {}).get("sla_policy") if client else None
    sla_policy = override or tier
    priority = TIER_PRIORITY.get(tier, UNKNOWN_PRIORITY) if tier else UNKNOWN_PRIORITY
    prio_reason = f"{'tier ' + tier if tier else 'unknown sender'} default {priority}"
    # Only the top of the body: quoted history of an old outage must not re-trigger P1.
    head = "\n".join(msg.text_body.splitlines()[:40])
    phrase = urgent_phrase(f"{msg.subject}\n{head}", urgent_phrases)
    if phrase:
        priority = "P1"
        prio_reason = f"P1: the message reports an outage ({phrase!r})"
    return Classification(
        client=client,
        contact=contact,
        staff=staff,
        tier=tier,
        priority=priority,
        reason=f"{reason}; {prio_reason}",
        urgent_phrase=phrase,
        sla_policy=sla_policy,
        reason_policy=(f"SLA policy {sla_policy} (client override)" if override
                       else f"SLA policy {sla_policy} (tier default)" if tier else
                       "no SLA policy (unknown sender)"),
    )


def record_classification(session: Session, ticket: Ticket, c: Classification,
                          now: datetime) -> None:
    """The ticket's ``classified`` event: who the sender is, the priority and the policy."""
    add_event(session, ticket, "classified", "; ".join([c.reason, c.reason_policy, *c.notes]),
              at=now, data={"tier": c.tier, "priority": c.priority, "sla_policy": c.sla_policy})
