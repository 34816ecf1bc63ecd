"""Reading a client's answer to an estimate, and parsing #estimate."""

from __future__ import annotations

import pytest

from desk.work.actions import Refused
from desk.work.estimates import decision_in, parse_estimate

QUOTED = ("\n\nOn Mon, 23 Nov 2026 at 10:00, Agency Support <support@agency.test> wrote:\n"
          "> How to answer: reply with the word \"approve\" to go ahead, or \"decline\"\n"
          "> if you would rather not.\n")


@pytest.mark.parametrize("text, verdict", [
    ("approve", "approve"),
    ("Approved, thanks!", "approve"),
    ("Yes, approved, thank you", "approve"),
    ("Please go ahead." + QUOTED, "approve"),
    ("Looks good, we approve." + QUOTED, "approve"),
    ("decline", "decline"),
    ("No thanks, too expensive for now." + QUOTED, "decline"),
    ("I do not approve this.", "decline"),
    ("We can't approve that yet", "decline"),
    ("Freigegeben, danke", "approve"),
    ("Abgelehnt.", "decline"),
    ("Akkoord!", "approve"),
    ("Could you explain the second item first?" + QUOTED, None),  # a question, not an answer
    ("", None),
])
def test_decisions_come_from_what_the_client_wrote(text: str, verdict: str | None) -> None:
    assert decision_in(text)[0] == verdict


def test_decision_words_are_kept_without_the_quote() -> None:
    verdict, words = decision_in("Approved, go ahead Paul." + QUOTED)
    assert verdict == "approve" and words == "Approved, go ahead Paul."


@pytest.mark.parametrize("arg, expected", [
    ("3h £270 new team page", (180, "£270", "new team page")),
    ("1h30m update plugins", (90, None, "update plugins")),
    ("2h 450EUR", (120, "450EUR", "")),
    ("45m $80.50 fix the form", (45, "$80.50", "fix the form")),
    ("4h 2 new pages", (240, None, "2 new pages")),
])
def test_parse_estimate(arg: str, expected: tuple[int, str | None, str]) -> None:
    assert parse_estimate(arg) == expected


@pytest.mark.parametrize("arg", ["", "soon", "2 working days fix"])
def test_bad_estimates_are_refused(arg: str) -> None:
    with pytest.raises(Refused):
        parse_estimate(arg)
