"""Counted nouns read as people write them."""

import pytest

from desk.outbound.render import environment
from desk.words import noun_for, plural


@pytest.mark.parametrize(("count", "noun", "expected"), [
    (0, "ticket", "0 tickets"),
    (1, "ticket", "1 ticket"),
    (2, "ticket", "2 tickets"),
    (1, "reply", "1 reply"),
    (3, "reply", "3 replies"),
    (2, "breach", "2 breaches"),
    (1.0, "hour", "1 hour"),
    (2.5, "hour", "2.5 hours"),
    (2.0, "hour", "2 hours"),
])
def test_plural(count: float, noun: str, expected: str) -> None:
    assert plural(count, noun) == expected


def test_noun_alone_and_explicit_plural() -> None:
    assert noun_for(1, "person") == "person"
    assert noun_for(4, "person") == "people"
    assert plural(2, "client", "clients'") == "2 clients'"


def test_templates_have_the_filter() -> None:
    text = environment(None).from_string('{{ n | plural("message") }}').render(n=1)
    assert text == "1 message"
