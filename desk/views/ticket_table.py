"""Tickets as an aligned table for a terminal: `desk tickets list` and `search`.

Columns are as wide as their longest cell (client and owner names within a cap); the
subject takes what is left of the terminal and is cut with "…" there, so one ticket stays
one line. Widths are counted as a terminal shows them: a CJK character takes two
columns, a combining accent none, and control characters (a tab or line break in a
subject) become spaces rather than breaking the row.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from desk.store.models import Ticket
from desk.store.search import MARK_END, MARK_START

ELLIPSIS = "…"
_GAP = "  "
SUBJECT_MIN = 20  # below this the subject says too little: client and owner give way
_SHRINK_MIN = 8


def _char_width(ch: str) -> int:
    if ch in (MARK_START, MARK_END) or unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    return sum(_char_width(ch) for ch in text)


def one_line(text: str) -> str:
    """Control characters out (they move the cursor), runs of white space as one space."""
    cleaned = "".join(ch if ch in (MARK_START, MARK_END) or unicodedata.category(ch)[0] != "C"
                      else " " for ch in text)
    return " ".join(cleaned.split())


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns, ending in "…" when it was longer. A
    highlight cut off in the middle is closed."""
    if display_width(text) <= width:
        return text
    out: list[str] = []
    used, marked = 0, False
    for ch in text:
        w = _char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
        marked = {MARK_START: True, MARK_END: False}.get(ch, marked)
    return "".join(out) + (MARK_END if marked else "") + ELLIPSIS


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


@dataclass(frozen=True)
class _Column:
    header: str
    cap: int | None = None  # widest it gets even when a cell is longer
    shrinks: bool = False  # gives way to the subject in a narrow terminal


_COLUMNS = (_Column("REF"), _Column("STATUS"), _Column("PRI"), _Column("TIER", 12),
            _Column("CLIENT", 24, shrinks=True), _Column("OWNER", 22, shrinks=True))


def ticket_cells(t: Ticket) -> list[str]:
    owner = (t.owner.name or t.owner.email) if t.owner is not None else "-"
    return [f"#{t.ref}", t.status, t.priority, t.tier or "unknown",
            t.client.name if t.client is not None else "-", owner, t.subject or "(no subject)"]


def _widths(rows: Sequence[Sequence[str]], width: int | None) -> list[int]:
    widths = []
    for i, col in enumerate(_COLUMNS):
        natural = max([display_width(col.header), *(display_width(r[i]) for r in rows)])
        widths.append(min(natural, col.cap) if col.cap else natural)
    if width is None:
        return widths
    fixed = sum(widths) + len(_GAP) * len(_COLUMNS)
    shrinking = [i for i, col in enumerate(_COLUMNS) if col.shrinks]
    while width - fixed < SUBJECT_MIN:
        widest = max(shrinking, key=lambda i: widths[i])
        if widths[widest] <= _SHRINK_MIN:
            break
        widths[widest] -= 1
        fixed -= 1
    return widths


def ticket_table(tickets: Sequence[Ticket], width: int | None,
                 notes: Sequence[str] | None = None) -> list[str]:
    """The table's lines, a header first. ``width``: the terminal's columns (None: no
    limit, the whole subject). ``notes``: a line to print under each ticket (a search's
    snippet), indented and cut to the width too."""
    rows = [[one_line(cell) for cell in ticket_cells(t)] for t in tickets]
    widths = _widths(rows, width)
    fixed = sum(widths) + len(_GAP) * len(_COLUMNS)
    subject_width = max(width - fixed, SUBJECT_MIN // 2) if width is not None else None
    lines = []
    for i, row in enumerate([["REF", "STATUS", "PRI", "TIER", "CLIENT", "OWNER", "SUBJECT"],
                             *rows]):
        cells = [_pad(clip(cell, w), w) for cell, w in zip(row, widths, strict=False)]
        subject = row[-1] if subject_width is None else clip(row[-1], subject_width)
        lines.append(_GAP.join([*cells, subject]))
        if notes is not None and i > 0 and notes[i - 1]:
            note = one_line(notes[i - 1])
            indent = " " * (widths[0] + len(_GAP))  # under the status
            lines.append(indent + (note if width is None
                                   else clip(note, max(width - len(indent), 10))))
    return lines


def emphasis(text: str, start: str, end: str) -> str:
    """A snippet's highlights written with ``start``/``end`` (bold codes, ``**``)."""
    return text.replace(MARK_START, start).replace(MARK_END, end)
