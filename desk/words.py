"""Counted nouns for everything people read: "1 ticket", "2 tickets", never "1 tickets".

Used by the CLI, the reports and (as the Jinja filter `plural`) every template."""

from __future__ import annotations

# The few nouns desk counts whose plural is not the noun plus "s".
_IRREGULAR = {
    "reply": "replies",
    "entry": "entries",
    "inbox": "inboxes",
    "address": "addresses",
    "breach": "breaches",
    "match": "matches",
    "person": "people",
    "is": "are",
    "was": "were",
    "has": "have",
}


def plural_of(noun: str) -> str:
    return _IRREGULAR.get(noun, noun + "s")


def plural(count: float, noun: str, many: str | None = None) -> str:
    """`plural(1, "ticket")` is "1 ticket"; `plural(3, "reply")` is "3 replies".
    A whole float prints without ".0" ("2 hours", "2.5 hours")."""
    number = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{number} {noun_for(count, noun, many)}"


def noun_for(count: float, noun: str, many: str | None = None) -> str:
    """The noun alone, for sentences that put the number elsewhere."""
    return noun if count == 1 else (many or plural_of(noun))
