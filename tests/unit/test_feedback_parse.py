"""Feedback answers in the forms busy clients actually write."""

from __future__ import annotations

import pytest

from desk.work.feedback import parse_feedback

QUOTED = ("\n\nOn Tue, 24 Nov 2026, Agency Support <support@agency.test> wrote:\n"
          "> 1. Was this resolved? yes / no\n> 2. How did we do, 1 to 10? (10 = perfect)\n")


@pytest.mark.parametrize("text, resolved, rating", [
    ("8", None, 8),
    ("8/10", None, 8),
    ("10/10!", None, 10),
    ("Yes, thanks!", True, None),
    ("yes, 9", True, 9),
    ("Yes 7 out of 10" + QUOTED, True, 7),
    ("No, it still shows the error. 3", False, 3),
    ("not really, 5/10", False, 5),
    ("eight", None, 8),
    ("All good, nine out of ten", True, 9),
    ("Thanks" + QUOTED, None, None),  # the quoted 1 to 10 is not an answer
])
def test_feedback_forms(text: str, resolved: bool | None, rating: int | None) -> None:
    got_resolved, got_rating, _ = parse_feedback(text)
    assert (got_resolved, got_rating) == (resolved, rating)
