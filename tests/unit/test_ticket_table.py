"""The pieces under `desk tickets list` and `search`: the terminal table (widths as a
terminal counts them), what a search query means, and `--since`."""

from __future__ import annotations

import sqlite3
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desk.store.models import Client, Staff, Ticket
from desk.store.search import MARK_END, MARK_START, Term, fts5_string, parse_query
from desk.views.ticket_table import clip, display_width, emphasis, one_line, ticket_table
from desk.views.tickets import BadFilter, parse_since

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def terminal_width(line: str) -> int:
    return sum(0 if unicodedata.combining(c) or c in (MARK_START, MARK_END)
               else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def ticket(ref: int, subject: str, *, client: str | None = "Client Co",
           owner: str | None = "Paul Porter", status: str = "open") -> Ticket:
    t = Ticket(id=ref, subject=subject, status=status, priority="P2",
               tier="support_sla" if client else None)
    t.client = Client(name=client) if client else None
    t.owner = Staff(name=owner, email="paul@agency.test") if owner else None
    return t


LONG = "The invoice page takes a minute to load and the contact form forgets everything typed"


def test_clip_counts_columns_as_a_terminal_does() -> None:
    assert clip("short", 10) == "short"
    assert clip("exactly10!", 10) == "exactly10!"
    assert clip("eleven char", 10) == "eleven ch…"
    assert display_width("日本語") == 6 and clip("日本語のメール", 7) == "日本語…"
    assert display_width("Cafe\u0301") == 4  # a combining accent takes no column
    # A highlight cut off is closed, so bold does not run on into the next line.
    cut = clip(f"see {MARK_START}printers{MARK_END} here", 8)
    assert cut == f"see {MARK_START}pri{MARK_END}…"
    assert emphasis(cut, "<b>", "</b>") == "see <b>pri</b>…"


def test_one_line_keeps_rows_rows() -> None:
    assert one_line("Printer\r\nbroken\tagain\x1b[2J ") == "Printer broken again [2J"


def test_the_table_fits_the_width_and_keeps_its_columns() -> None:
    rows = [ticket(1, "Printer broken"), ticket(12, LONG, client="Retainer Co"),
            ticket(123, "Zero-width\u200b and 日本語 and a\nline break " * 3, client=None,
                   owner=None, status="awaiting_approval")]
    lines = ticket_table(rows, 80)
    assert len(lines) == 4 and all(terminal_width(line) <= 80 for line in lines), lines
    start = lines[0].index("SUBJECT")
    assert lines[1][start:] == "Printer broken"
    assert lines[2][start:].endswith("…") and LONG.startswith(lines[2][start:-1])
    assert lines[3].split()[:6] == ["#123", "awaiting_approval", "P2", "unknown", "-", "-"]
    assert [line.index("P2") for line in lines[1:]] == [lines[0].index("PRI")] * 3
    # No width (piped output): whole subjects.
    assert ticket_table(rows, None)[2].endswith(LONG)


def test_a_narrow_terminal_shrinks_names_before_the_subject() -> None:
    rows = [ticket(1, LONG, client="A Client With A Very Long Name Ltd",
                   owner="Bartholomew Fitzgerald-Smythe")]
    wide = ticket_table(rows, 160)[1]
    assert "A Client With A Very Lo…" in wide and "Bartholomew Fitzgeral…" in wide
    narrow = ticket_table(rows, 72)
    assert all(terminal_width(line) <= 72 for line in narrow)
    start = narrow[0].index("SUBJECT")
    assert len(narrow[1][start:]) >= 20  # the subject still says something


def test_notes_go_under_their_ticket_cut_to_the_width() -> None:
    note = f"…the {MARK_START}printers{MARK_END} on floor 3 are not printing " * 4
    lines = ticket_table([ticket(1, "Printer broken"), ticket(2, "Other")], 60,
                         notes=[note, ""])
    assert len(lines) == 4 and lines[2].startswith("     …the")
    assert terminal_width(lines[2]) <= 60 and lines[2].endswith("…")
    assert lines[2].count(MARK_START) == lines[2].count(MARK_END)


def test_what_a_query_means() -> None:
    assert parse_query('printer "floor 3"  web* printer') == [
        Term("printer"), Term("floor 3"), Term("web", prefix=True)]
    assert parse_query('*** (( - "" " "') == []  # nothing with a letter or digit
    assert parse_query('"unfinished phrase') == [Term("unfinished phrase")]
    assert parse_query("café 500") == [Term("café"), Term("500")]
    assert parse_query("0\x00 tab\there") == [Term("0"), Term("tab"), Term("here")]
    assert fts5_string(Term('say "hi"')) == '"say ""hi"""'
    assert fts5_string(Term("web", prefix=True)) == '"web" *'


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_no_text_is_fts5_syntax(query: str) -> None:
    # Whatever the admin types, FTS5 gets quoted strings: no syntax error, ever.
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='porter unicode61')")
    db.execute("INSERT INTO t VALUES ('the printers on floor 3')")
    for term in parse_query(query):
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (fts5_string(term),)).fetchall()
    terms = [fts5_string(t) for t in parse_query(query)]
    if terms:
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (" OR ".join(terms),)).fetchall()


@pytest.mark.parametrize(("given_", "expected"), [
    ("7d", datetime(2026, 11, 16, 10, 0, tzinfo=UTC)),
    ("12h", datetime(2026, 11, 22, 22, 0, tzinfo=UTC)),
    ("2w", datetime(2026, 11, 9, 10, 0, tzinfo=UTC)),
    ("3 days", datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),
    # A date is its midnight at the desk: London is on summer time in July.
    ("2026-07-01", datetime(2026, 6, 30, 23, 0, tzinfo=UTC)),
    ("2026-11-01", datetime(2026, 11, 1, 0, 0, tzinfo=UTC)),
    ("2026-07-01T09:30", datetime(2026, 7, 1, 8, 30, tzinfo=UTC)),
    ("2026-07-01T09:30Z", datetime(2026, 7, 1, 9, 30, tzinfo=UTC)),
])
def test_since(given_: str, expected: datetime) -> None:
    assert parse_since(given_, NOW, "Europe/London") == expected


@pytest.mark.parametrize("wrong", ["last week", "7", "3m", "2026-13-01", ""])
def test_since_refuses_what_it_cannot_read(wrong: str) -> None:
    with pytest.raises(BadFilter, match="--since"):
        parse_since(wrong, NOW, "Europe/London")
