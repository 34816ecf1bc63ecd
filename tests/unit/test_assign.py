"""Assignment rules: every default rule, substitutions with reasons, pools, validation."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.routing import DEFAULT_RULES, Match, Pool, Rule, validate_order
from desk.inbox.message import Address, ParsedMessage
from desk.routing.assign import Assignment, assign
from desk.routing.classify import classify
from desk.store.directory import add_staff
from desk.store.models import Staff, Ticket

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TODAY = date(2026, 11, 23)


def route(session: Session, sender: str, subject: str = "Hello", body: str = "",
          rules: list[Rule] | None = None) -> Assignment:
    msg = ParsedMessage(message_id="x@y", sender=Address("", sender), subject=subject,
                        text_body=body)
    c = classify(session, msg)
    return assign(session, c, rules=rules or DEFAULT_RULES, text=f"{subject}\n{body}".lower(),
                  triage="alice@agency.test", today=TODAY, now=NOW)


def staff(session: Session, email: str) -> Staff:
    person = session.scalar(select(Staff).where(Staff.email == email))
    assert person is not None
    return person


def open_tickets(session: Session, owner: Staff, n: int) -> None:
    for _ in range(n):
        session.add(Ticket(subject="x", requester_email="r@x.test", owner=owner,
                           created_at=NOW, updated_at=NOW))
    session.flush()


@pytest.mark.parametrize("sender, subject, owner, status, workers", [
    ("stranger@nowhere.test", "Hello", "alice@agency.test", "new", []),
    ("boss@postproject.test", "Hello", "alice@agency.test", "new", []),
    ("boss@hosting.test", "Change the footer", "alice@agency.test", "awaiting_approval", []),
    ("boss@project.test", "Hello", "paul@agency.test", "new", []),
    ("boss@retainer.test", "Hello", "paul@agency.test", "new", []),
    ("boss@hostingsla.test", "Hello", "paul@agency.test", "new", []),
    ("boss@supportsla.test", "Hello", "paul@agency.test", "new", []),
    ("boss@hostingsla.test", "Site down", "paul@agency.test", "new", ["sam@agency.test"]),
    ("boss@supportsla.test", "500 error on checkout", "paul@agency.test", "new",
     ["sam@agency.test"]),
    # P1 for a hosting-only client is still hosting-only: sign-off first, no senior pulled in.
    ("boss@hosting.test", "Site down", "alice@agency.test", "awaiting_approval", []),
])
def test_default_rules_encode_the_handbook(session: Session, sender: str, subject: str,
                                           owner: str, status: str,
                                           workers: list[str]) -> None:
    a = route(session, sender, subject)
    assert a.owner is not None and a.owner.email == owner
    assert a.status == status
    assert [w.email for w in a.workers] == workers
    assert a.reasons and a.reasons[0].startswith("rule ")


def test_away_owner_is_replaced_by_the_backup_with_the_reason(session: Session) -> None:
    paul = staff(session, "paul@agency.test")
    paul.away_from, paul.away_until = date(2026, 11, 20), date(2026, 11, 30)
    a = route(session, "boss@retainer.test")
    assert a.owner is not None and a.owner.email == "ben@agency.test"
    text = "; ".join(a.reasons)
    assert "paul@agency.test: is away until 2026-11-30" in text
    assert "backup manager ben@agency.test steps in" in text


def test_inactive_owner_and_inactive_backup_fall_to_the_pool(session: Session) -> None:
    staff(session, "paul@agency.test").active = False
    staff(session, "ben@agency.test").active = False
    add_staff(session, "pat@agency.test", "Pat", "project_manager")
    a = route(session, "boss@project.test")
    assert a.owner is not None and a.owner.email == "pat@agency.test"
    assert "is inactive" in "; ".join(a.reasons)


def test_capacity_sends_the_ticket_to_the_next_eligible_person(session: Session) -> None:
    paul = staff(session, "paul@agency.test")
    paul.capacity = 2
    open_tickets(session, paul, 2)
    a = route(session, "boss@retainer.test")
    assert a.owner is not None and a.owner.email == "ben@agency.test"
    assert "at capacity (2/2 open tickets)" in "; ".join(a.reasons)


def test_a_junior_is_never_the_client_facing_owner(session: Session) -> None:
    rules = [Rule(name="juniors own hosting", match=Match(tier=["hosting"]),
                  owner="jo@agency.test")]
    a = route(session, "boss@hosting.test", rules=rules)
    assert a.owner is not None and a.owner.email != "jo@agency.test"
    assert "never the client-facing owner" in "; ".join(a.reasons)
    with pytest.raises(ValidationError, match="junior engineer is never"):
        Rule(name="bad", owner=Pool(role="junior_engineer"))
    # ...but a junior can be added as a worker.
    rules = [Rule(name="junior works", match=Match(tier=["retainer"]),
                  owner="project_manager", worker=Pool(role="junior_engineer"))]
    a = route(session, "boss@retainer.test", rules=rules)
    assert [w.email for w in a.workers] == ["jo@agency.test"]


def test_least_loaded_pool(session: Session) -> None:
    add_staff(session, "sara@agency.test", "Sara", "senior_engineer")
    open_tickets(session, staff(session, "sam@agency.test"), 3)
    a = route(session, "boss@supportsla.test", "site down")
    assert [w.email for w in a.workers] == ["sara@agency.test"]
    assert "least loaded -> sara@agency.test (0 open tickets)" in "; ".join(a.reasons)


def test_round_robin_pool_takes_turns(session: Session) -> None:
    add_staff(session, "sara@agency.test", "Sara", "senior_engineer")
    rules = [Rule(name="seniors take turns", owner=Pool(role="senior_engineer",
                                                        strategy="round_robin"))]
    owners = []
    for i in range(4):
        a = assign(session, classify(session, ParsedMessage(
            message_id=f"{i}@x", sender=Address("", "boss@retainer.test"))),
            rules=rules, text="", triage=None, today=TODAY,
            now=NOW.replace(minute=i))
        assert a.owner is not None
        owners.append(a.owner.email)
    assert owners == ["sam@agency.test", "sara@agency.test"] * 2


def test_keywords_and_client_match(session: Session) -> None:
    rules = [
        Rule(name="invoices to the AM", match=Match(keywords=["invoice"]),
             owner="account_manager"),
        Rule(name="VIP client", match=Match(client=["Retainer client"]), owner="sam@agency.test"),
        *DEFAULT_RULES,
    ]
    assert route(session, "boss@project.test", "Your invoice 42",
                 rules=rules).owner.email == "alice@agency.test"  # type: ignore[union-attr]
    a = route(session, "boss@retainer.test", "hello", rules=rules)
    assert a.owner is not None and a.owner.email == "sam@agency.test"
    assert a.rule == "VIP client"


@pytest.mark.parametrize("rule, message", [
    ({"name": "r", "owner": "ceo"}, "not a client role"),
    ({"name": "r", "owner": {"role": "intern"}}, "role"),
    ({"name": "r", "owner": {"role": "senior_engineer", "strategy": "random"}}, "strategy"),
    ({"name": "r", "match": {"tier": ["gold"]}, "owner": "triage"}, "tier"),
    ({"name": "r", "match": {"priority": ["P9"]}, "owner": "triage"}, "priority"),
    ({"name": "r", "match": {"unknown_sender": True, "tier": ["project"]}, "owner": "triage"},
     "no message can match"),
    ({"name": "r", "match": {"unknown_sender": True}, "owner": "project_manager"},
     "no client role"),
    ({"name": "r", "match": {"tier": []}, "owner": "triage"}, "empty list"),
    ({"name": "r", "match": {"tiers": ["project"]}, "owner": "triage"}, "tiers"),
])
def test_bad_rules_are_refused(rule: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError, match=message):
        Rule.model_validate(rule)


def test_rule_after_a_catch_all_is_refused_by_name() -> None:
    rules = [Rule(name="everything", owner="triage"),
             Rule(name="never reached", match=Match(tier=["project"]), owner="triage")]
    with pytest.raises(ValueError, match="'never reached' can never match"):
        validate_order(rules)
