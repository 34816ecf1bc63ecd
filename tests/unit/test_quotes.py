"""Reply text extraction on real replies from common mail programs (talon's corpus)."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from desk.inbox.parse import parse_message
from desk.inbox.quotes import reply_text, strip_quotes, strip_signature

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
PLAIN = sorted((CORPUS / "talon-standard-replies").glob("*.eml"))
HTML = sorted((CORPUS / "talon-html-replies").glob("*.html"))


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: p.stem)
def test_plain_replies_match_talons_expectations(path: Path) -> None:
    expected_file = path.with_name(f"{path.stem}_reply_text")
    expected = expected_file.read_text() if expected_file.exists() else "Hello"
    msg = parse_message(path.read_bytes())
    assert _norm(strip_quotes(msg.text_body)) == _norm(expected)


@pytest.mark.parametrize("path", HTML, ids=lambda p: p.stem)
def test_html_replies_match_talons_expectations(path: Path) -> None:
    mail = EmailMessage()
    mail["From"], mail["Subject"] = "alex@example.com", "Re: hi"
    mail.set_content(path.read_bytes().decode("utf-8", "replace"), subtype="html")
    text = strip_quotes(parse_message(mail.as_bytes()).text_body)
    assert "".join(text.split()) == "Hi.Iamfine.Thanks,Alex"


def test_corpus_is_complete() -> None:
    assert len(PLAIN) == 12 and len(HTML) == 9


@pytest.mark.parametrize("text, expected", [
    ("Fixed it.\n\n-- \nSam Senior\nAgency", "Fixed it."),
    ("Fixed it.\n\nSent from my iPhone", "Fixed it."),
    ("Fixed it.\nVon meinem iPhone gesendet", "Fixed it."),
    ("No signature here.\n-- not a delimiter", "No signature here.\n-- not a delimiter"),
])
def test_signatures_are_cut(text: str, expected: str) -> None:
    assert strip_signature(text) == expected


def test_inline_answers_keep_what_was_written_and_drop_the_quotes() -> None:
    text = ("On Mon, 23 Nov 2026 at 10:00, Carol <c@client.test> wrote:\n"
            "> Is the form fixed?\n\nYes, since this morning.\n\n"
            "> And the newsletter?\n\nTomorrow.\n")
    assert reply_text(text) == "Yes, since this morning.\n\n\nTomorrow."


def test_colon_lines_that_are_not_attributions_stay() -> None:
    text = "Steps to reproduce:\n1. open the shop\n2. click buy"
    assert strip_quotes(text) == text
