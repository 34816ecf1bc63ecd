"""The report's and the digest's charts are HTML table bars that mail programs show
without images: every bar fills exactly its row, whatever the numbers (none, at the pace,
far above it, over the allowance), with only what Outlook's Word engine renders (table
cells with bgcolor and widths: no images, no flex or grid, no background images)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from desk.outbound.render import render

WEEKS = [{"to": f"2026-11-{d:02d}", "label": f"{d} Nov", "hours": h}
         for d, h in zip(range(3, 31, 4), (0.0, 1.0, 2.31, 2.4, 9.0, 40.0, 0.25), strict=False)]


def report(**hours: Any) -> dict[str, Any]:
    return {
        "client": "Bramble Bakery", "tier": "retainer",
        "period": {"kind": "week", "from": "2026-11-20", "to": "2026-11-27"},
        "work_done": [], "open": [], "blockers": [], "next": [], "approvals": [],
        "weeks": WEEKS,
        "hours": {"period": 2.5, "by_ticket": {}, "month_to_date": 8.0,
                  "planned_this_month": 3.0, "allowance": 10.0, "left": 2.0,
                  "pace_per_week": 2.31, **hours},
        "sla": {"tickets_with_clocks": 1, "breached": 0, "compliance_pct": 100},
        "feedback": {"average": None, "answers": 0, "average_all_time": None},
    }


DIGEST: dict[str, Any] = {
    "at": "2026-11-30T08:00:00+00:00", "open_total": 1, "breaches": [], "near_misses": [],
    "open_by_client": {"Bramble Bakery": {"tier": "retainer", "open": 1, "p1": 0,
                                          "waiting": 0}},
    "sla_by_client": [
        {"client": "Fjord Freight", "tier": "hosting_sla", "tickets": 3, "kept": 0,
         "breached": 3, "pct": 0},
        {"client": "Granite Health", "tier": "support_sla", "tickets": 3, "kept": 2,
         "breached": 1, "pct": 67},
        {"client": "Bramble Bakery", "tier": "retainer", "tickets": 1, "kept": 1,
         "breached": 0, "pct": 100}],
    "people": [{"email": "paul@agency.example", "name": "Paul Porter",
                "role": "project_manager", "open": 35, "capacity": 30, "away": False},
               {"email": "jo@agency.example", "name": "Jo Junior", "role": "junior_engineer",
                "open": 0, "capacity": None, "away": True}],
    "retainer_burn": [{"client": "Bramble Bakery", "used": 5.5, "allowance": 10.0, "pct": 55},
                      {"client": "Granite Health", "used": 24.0, "allowance": 20.0,
                       "pct": 120}],
}


def bars(html: str) -> list[list[int]]:
    """The percentage widths of each bar's cells."""
    rows = re.findall(r'<table role="presentation" width="100%"[^>]*><tr>(<td width="\d+%".*?)'
                      r"</tr></table>", html)
    return [[int(w) for w in re.findall(r'<td width="(\d+)%"', row)] for row in rows]


def outlook_safe(html: str) -> None:
    assert "<img" not in html and "background-image" not in html
    assert not re.search(r"display:\s*(flex|grid)", html)


@pytest.mark.parametrize("hours", [
    {}, {"month_to_date": 12.5, "left": -2.5}, {"planned_this_month": 0.0},
    {"allowance": None, "left": None, "pace_per_week": None},
], ids=["under", "over-allowance", "nothing-planned", "no-allowance"])
def test_every_report_bar_fills_its_row_exactly(hours: dict[str, Any]) -> None:
    html = render("report.html.j2", {"r": report(**hours), "desk_name": "Agency Support"})
    outlook_safe(html)
    found = bars(html)
    assert len(found) == len(WEEKS) + (1 if hours.get("allowance", 10.0) else 0)
    for cells in found:
        assert sum(cells) == 100 and all(w > 0 for w in cells), cells
    # Every week's number is beside its bar, as text.
    for w in WEEKS:
        assert f"{w['label']}</td>" in html and f"{w['hours']:.1f} h</strong>" in html


def test_the_pace_line_stands_at_the_same_place_in_every_week() -> None:
    html = render("report.html.j2", {"r": report(), "desk_name": "Agency Support"})
    rows = re.findall(r'<tr>(<td width="\d+%".*?)</tr></table>', html)[1:]  # [0]: the month
    marks = set()
    for row in rows:
        cells = re.findall(r'<td width="(\d+)%"[^>]*bgcolor="(#[0-9a-f]{6})"', row)
        colours = [c for _, c in cells]
        marks.add(sum(int(w) for w, _ in cells[:colours.index("#222222")]))
    assert len(rows) == len(WEEKS) and len(marks) == 1
    # Amber only beyond the pace: not for a week exactly at it (2.31 h), and so marked.
    amber = ["#d9822b" in row for row in rows]
    assert amber == [w["hours"] > 2.31 for w in WEEKS]
    assert html.count("above pace</span>") == sum(amber)


def test_digest_bars_fill_their_rows_and_say_their_numbers() -> None:
    html = render("digest.html.j2", {"d": DIGEST, "staff_name": "Alice",
                                     "desk_name": "Agency Support"})
    outlook_safe(html)
    found = bars(html)
    assert len(found) == 3 + 2 + 1  # promises per client, retainer hours, Paul's load
    for cells in found:
        assert sum(cells) == 100 and all(w > 0 for w in cells), cells
    assert "2 of 3 tickets on time" in html and "1 of 1 ticket on time" in html
    assert "<strong>67%</strong>" in html and "<strong>120%</strong>" in html
    text = render("digest.txt.j2", {"d": DIGEST, "staff_name": "Alice",
                                    "desk_name": "Agency Support"})
    assert "  Granite Health                  67%  2 of 3 tickets on time, 1 late\n" in text
    assert "1 open ticket, 0 breaches, 0 near misses." in text
