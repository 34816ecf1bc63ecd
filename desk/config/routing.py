"""Assignment rules: ordered, first match wins, validated at start.

    [[routing.rules]]
    name = "SLA tiers, P1: PM owns, least-loaded senior works"
    match = { tier = ["hosting_sla", "support_sla"], priority = ["P1"] }
    owner = "project_manager"
    worker = { role = "senior_engineer", strategy = "least_loaded" }

``owner`` / ``worker``: a client role (``account_manager``, ``project_manager``,
``backup``), ``triage``, a staff address, or a pool ``{ role, strategy }`` with strategy
``least_loaded`` or ``round_robin``. ``status`` optionally sets the first status
(``awaiting_approval`` for work that needs a costed sign-off).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TierName = Literal["retainer", "project", "post_project", "hosting", "hosting_sla", "support_sla"]
Priority = Literal["P1", "P2", "P3", "P4"]
RoleName = Literal["account_manager", "project_manager", "senior_engineer", "junior_engineer"]
CLIENT_ROLES = ("account_manager", "project_manager", "backup")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pool(_Model):
    role: RoleName
    strategy: Literal["least_loaded", "round_robin"] = "least_loaded"


class Match(_Model):
    tier: list[TierName] | None = None
    priority: list[Priority] | None = None
    client: list[str] | None = None
    unknown_sender: bool | None = None
    keywords: list[str] | None = None

    def is_catch_all(self) -> bool:
        return all(v is None for v in (self.tier, self.priority, self.client,
                                       self.unknown_sender, self.keywords))


Target = str | Pool


def _check_target(value: Target, what: str) -> Target:
    if isinstance(value, Pool):
        return value
    if value in (*CLIENT_ROLES, "triage"):
        return value
    local, _, domain = value.rpartition("@")
    if local and "." in domain:
        return value.lower()
    raise ValueError(
        f"{what} {value!r} is not a client role (account_manager, project_manager, backup), "
        "'triage', a staff address or a pool {role, strategy}"
    )


class Rule(_Model):
    name: str = Field(min_length=1)
    match: Match = Match()
    owner: Target
    worker: Target | None = None
    status: Literal["new", "open", "awaiting_approval"] | None = None

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: Target) -> Target:
        value = _check_target(value, "owner")
        if isinstance(value, Pool) and value.role == "junior_engineer":
            raise ValueError("a junior engineer is never the client-facing owner; "
                             "use worker = { role = 'junior_engineer' } instead")
        return value

    @field_validator("worker")
    @classmethod
    def _worker(cls, value: Target | None) -> Target | None:
        return None if value is None else _check_target(value, "worker")

    @model_validator(mode="after")
    def _possible(self) -> Rule:
        m = self.match
        needs_client = any(t in CLIENT_ROLES for t in (self.owner, self.worker)
                           if isinstance(t, str))
        if m.unknown_sender and (m.tier or m.client):
            raise ValueError("no message can match: unknown senders have no tier or client")
        if m.unknown_sender and needs_client:
            raise ValueError("unknown senders have no client, so no client role can own them")
        for field in ("tier", "priority", "client", "keywords"):
            if getattr(m, field) == []:
                raise ValueError(f"no message can match: match.{field} is an empty list")
        return self


def validate_order(rules: list[Rule]) -> None:
    """A rule after a catch-all can never match: refuse it by name."""
    names: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.name in names:
            raise ValueError(f"rule {rule.name!r} is defined twice")
        names.add(rule.name)
        if rule.match.is_catch_all() and i < len(rules) - 1:
            raise ValueError(f"rule {rules[i + 1].name!r} can never match: rule "
                             f"{rule.name!r} before it matches everything")


DEFAULT_RULES: list[Rule] = [
    Rule(name="unknown sender -> triage account manager",
         match=Match(unknown_sender=True), owner="triage"),
    Rule(name="hosting without SLA -> account manager, costed sign-off first",
         match=Match(tier=["hosting"]), owner="account_manager", status="awaiting_approval"),
    Rule(name="post-project -> account manager",
         match=Match(tier=["post_project"]), owner="account_manager"),
    Rule(name="SLA tiers, P1 -> project manager owns, least-loaded senior works",
         match=Match(tier=["hosting_sla", "support_sla"], priority=["P1"]),
         owner="project_manager", worker=Pool(role="senior_engineer")),
    Rule(name="SLA tiers -> project manager",
         match=Match(tier=["hosting_sla", "support_sla"]), owner="project_manager"),
    Rule(name="project and retainer -> project manager",
         match=Match(tier=["project", "retainer"]), owner="project_manager"),
]
