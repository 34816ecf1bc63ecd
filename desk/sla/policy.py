"""Default promises per tier (DOMAIN.md). The SLA engine turns them into deadlines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Promise:
    first_response: str  # how the acknowledgement states it
    covers: str  # what the plan covers, in plain words


TIER_PROMISES: dict[str | None, Promise] = {
    "support_sla": Promise(
        "within 1 business hour",
        "Your Support & SLA plan covers this request, including maintenance and our "
        "agreed response and delivery times.",
    ),
    "hosting_sla": Promise(
        "within 2 business hours",
        "Your Hosting with SLA plan covers hosting issues with agreed response times.",
    ),
    "retainer": Promise(
        "within 1 working day",
        "Work on this is taken from your monthly retainer hours; we will tell you how "
        "much time it needs before it eats into your allowance.",
    ),
    "project": Promise(
        "within 1 working day",
        "Your project manager looks after everything within the agreed project scope.",
    ),
    "post_project": Promise(
        "within 2 working days",
        "Your project has finished, so this is handled on a best-effort basis; your "
        "account manager can suggest a support package that fits.",
    ),
    "hosting": Promise(
        "within 3 working days",
        "Your plan covers hosting only. Any change to the site needs a costed estimate "
        "that you sign off before we start work.",
    ),
    None: Promise(
        "within 1 working day",
        "An account manager will look at your request and make sure it reaches the "
        "right person.",
    ),
}


def promise_for(tier: str | None) -> Promise:
    return TIER_PROMISES.get(tier, TIER_PROMISES[None])
