"""Business-time arithmetic: durations, weekly hours, holidays, DST, pauses, explain().

Expected values are worked out by hand from the 2026 calendar (GB/US bank holidays, clock
changes: London 2026-03-29 and 2026-10-25, New York 2026-03-08 and 2026-11-01), never by
calling the code under test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desk.sla.calendar import (
    BusinessCalendar,
    Duration,
    WorkingHours,
    parse_duration,
    pauses_excluded,
)

LONDON_TZ = ZoneInfo("Europe/London")
NY_TZ = ZoneInfo("America/New_York")

SPLIT_DAY = "09:00-12:30,13:30-17:30"
LONDON = BusinessCalendar("Europe/London", WorkingHours.default(), country="GB",
                          subdivision="ENG")
SCOTLAND = BusinessCalendar("Europe/London", WorkingHours.default(), country="GB",
                            subdivision="SCT")
NEW_YORK = BusinessCalendar("America/New_York", WorkingHours.default(), country="US")
SPLIT = BusinessCalendar(
    "Europe/London",
    WorkingHours.parse({d: SPLIT_DAY for d in ("mon", "tue", "wed", "thu", "fri")}),
)
SHORT_FRIDAY = BusinessCalendar(
    "Europe/London",
    WorkingHours.parse({"mon": "09:00-17:30", "tue": "09:00-17:30", "wed": "09:00-17:30",
                        "thu": "09:00-17:30", "fri": "09:00-13:00"}),
)
CLOSURE = BusinessCalendar("Europe/London", WorkingHours.default(), country="GB",
                           subdivision="ENG", closed_dates=[date(2026, 6, 11)])
ALWAYS_LONDON = BusinessCalendar("Europe/London", WorkingHours.always())
ALWAYS_UTC = BusinessCalendar("UTC", WorkingHours.always())


def lon(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON_TZ)  # type: ignore[misc]


def nyc(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY_TZ)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes", "days"),
    [
        ("2h", 120, 0),
        ("90m", 90, 0),
        ("1h30m", 90, 0),
        ("1h 30m", 90, 0),
        ("1.5h", 90, 0),
        ("0.25h", 15, 0),
        ("2 working days", 0, 2),
        ("1 working day", 0, 1),
        ("3d", 0, 3),
        ("2 business days", 0, 2),
        ("45 min", 45, 0),
        ("2 hours", 120, 0),
        ("1 hour", 60, 0),
        ("30 minutes", 30, 0),
        ("1 working day 2h", 120, 1),
        ("1 working day, 2h 15m", 135, 1),
        ("  2H  ", 120, 0),
        ("1 Working  Day 4h", 240, 1),
    ],
)
def test_parse_duration_accepts(text: str, minutes: int, days: int) -> None:
    assert parse_duration(text) == Duration(minutes=minutes, working_days=days)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-2h", "negative"),
        ("2 weeks", "invalid duration"),
        ("soon", "invalid duration"),
        ("2 months", "invalid duration"),
        ("2", "invalid duration"),
        ("h", "invalid duration"),
        ("2h30", "invalid duration"),
        ("0h", "longer than zero"),
        ("1.5 days", "whole"),
        ("1.01h", "whole number of minutes"),
        ("1.5m", "whole number of minutes"),
        ("2h 3h", "given twice"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (Duration(minutes=120), "2h"),
        (Duration(minutes=90), "1h30m"),
        (Duration(minutes=30), "30m"),
        (Duration(working_days=2), "2 working days"),
        (Duration(working_days=1), "1 working day"),
        (Duration(minutes=240, working_days=1), "1 working day 4h"),
    ],
)
def test_duration_str_is_canonical_and_round_trips(duration: Duration, text: str) -> None:
    assert str(duration) == text
    assert parse_duration(text) == duration


@pytest.mark.parametrize("kwargs", [{"minutes": -1}, {"working_days": -2}, {"minutes": 1.5}])
def test_duration_rejects_bad_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="non-negative int"):
        Duration(**kwargs)  # type: ignore[arg-type]


# --- weekly hours ----------------------------------------------------------------------


def test_working_hours_parse_split_and_closed_days() -> None:
    hours = WorkingHours.parse(
        {"mon": "09:00-17:30", "tue": "13:30-17:30, 09:00-12:30", "sat": "closed"}
    )
    assert hours.week[0] == ((time(9), time(17, 30)),)
    assert hours.week[1] == ((time(9), time(12, 30)), (time(13, 30), time(17, 30)))
    assert hours.week[2] == ()  # missing = closed
    assert hours.week[5] == ()


def test_working_hours_presets() -> None:
    default = WorkingHours.default()
    assert default == WorkingHours.parse(
        {d: "09:00-17:30" for d in ("mon", "tue", "wed", "thu", "fri")}
    )
    assert default.week[5] == default.week[6] == ()
    assert WorkingHours.always() == WorkingHours.parse(
        {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    )
    assert hash(default) != hash(WorkingHours.always())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"mon": "17:30-09:00"}, "Monday.*end after"),
        ({"sat": "09:00-09:00"}, "Saturday.*end after"),
        ({"tue": "09:00-13:00,12:00-17:00"}, "Tuesday.*overlap"),
        ({"wed": "9am-5pm"}, "Wednesday.*HH:MM"),
        ({"thu": "25:00-26:00"}, "Thursday.*valid HH:MM"),
        ({"fri": "09:60-10:00"}, "Friday.*valid HH:MM"),
        ({"sun": 9}, "Sunday.*expected a string"),
        ({"funday": "09:00-17:00"}, "unknown day"),
        ({"mon": "09:00-17:00", "Monday": "10:00-11:00"}, "Monday given twice"),
    ],
)
def test_working_hours_parse_rejects(spec: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkingHours.parse(spec)


# --- add() -----------------------------------------------------------------------------

ADD_CASES = [
    # (id, calendar, start, duration, expected UTC)
    ("same day", LONDON, lon(2026, 6, 10, 10, 0), "2h", utc(2026, 6, 10, 11, 0)),
    ("overnight", LONDON, lon(2026, 6, 10, 16, 30), "2h", utc(2026, 6, 11, 9, 0)),
    ("due at closing", LONDON, lon(2026, 6, 10, 15, 30), "2h", utc(2026, 6, 10, 16, 30)),
    ("fri pm to mon", LONDON, lon(2026, 6, 12, 16, 0), "4h", utc(2026, 6, 15, 10, 30)),
    ("before opening", LONDON, lon(2026, 6, 10, 7, 0), "30m", utc(2026, 6, 10, 8, 30)),
    ("after closing", LONDON, lon(2026, 6, 10, 20, 0), "1h", utc(2026, 6, 11, 9, 0)),
    ("saturday start", LONDON, lon(2026, 6, 13, 11, 0), "1h", utc(2026, 6, 15, 9, 0)),
    ("two full days", LONDON, lon(2026, 6, 15, 9, 0), "17h", utc(2026, 6, 16, 16, 30)),
    ("one minute over", LONDON, lon(2026, 6, 15, 9, 0), "8h31m", utc(2026, 6, 16, 8, 1)),
    ("start in utc", LONDON, utc(2026, 6, 10, 15, 0), "1h", utc(2026, 6, 10, 16, 0)),
    ("christmas", LONDON, lon(2026, 12, 24, 17, 0), "1h", utc(2026, 12, 29, 9, 30)),
    ("on christmas", LONDON, lon(2026, 12, 25, 10, 0), "2h", utc(2026, 12, 29, 11, 0)),
    ("new year 2027", LONDON, lon(2026, 12, 31, 17, 0), "1h", utc(2027, 1, 4, 9, 30)),
    ("easter", LONDON, lon(2026, 4, 2, 17, 0), "1h", utc(2026, 4, 7, 8, 30)),
    ("st andrew", SCOTLAND, lon(2026, 11, 27, 16, 0), "2h", utc(2026, 12, 1, 9, 30)),
    ("not st andrew in eng", LONDON, lon(2026, 11, 27, 16, 0), "2h", utc(2026, 11, 30, 9, 30)),
    ("closure date", CLOSURE, lon(2026, 6, 10, 16, 30), "2h", utc(2026, 6, 12, 9, 0)),
    ("london spring dst", LONDON, lon(2026, 3, 27, 16, 30), "2h", utc(2026, 3, 30, 9, 0)),
    ("london fall dst", LONDON, lon(2026, 10, 23, 16, 30), "2h", utc(2026, 10, 26, 10, 0)),
    ("ny spring dst", NEW_YORK, nyc(2026, 3, 6, 16, 30), "2h", utc(2026, 3, 9, 14, 0)),
    ("ny fall dst", NEW_YORK, nyc(2026, 10, 30, 16, 30), "2h", utc(2026, 11, 2, 15, 0)),
    ("thanksgiving", NEW_YORK, nyc(2026, 11, 25, 17, 0), "1h", utc(2026, 11, 27, 14, 30)),
    ("july 3 observed", NEW_YORK, nyc(2026, 7, 2, 17, 0), "1h", utc(2026, 7, 6, 13, 30)),
    ("split: over lunch", SPLIT, lon(2026, 6, 10, 12, 0), "1h", utc(2026, 6, 10, 13, 0)),
    ("split: in lunch", SPLIT, lon(2026, 6, 10, 12, 45), "30m", utc(2026, 6, 10, 13, 0)),
    ("split: to lunch", SPLIT, lon(2026, 6, 10, 12, 0), "30m", utc(2026, 6, 10, 11, 30)),
    ("split: next day", SPLIT, lon(2026, 6, 10, 17, 0), "5h", utc(2026, 6, 11, 13, 30)),
    # Working days: same wall-clock time N working days on.
    ("2 wd", LONDON, lon(2026, 6, 10, 14, 0), "2 working days", utc(2026, 6, 12, 13, 0)),
    ("wd over weekend", LONDON, lon(2026, 6, 12, 14, 0), "1 working day",
     utc(2026, 6, 15, 13, 0)),
    ("wd over christmas", LONDON, lon(2026, 12, 24, 11, 0), "1 working day",
     utc(2026, 12, 29, 11, 0)),
    ("wd after closing", LONDON, lon(2026, 6, 10, 18, 0), "1 working day",
     utc(2026, 6, 12, 8, 0)),
    ("wd from saturday", LONDON, lon(2026, 6, 13, 10, 0), "1 working day",
     utc(2026, 6, 16, 8, 0)),
    ("wd plus hours", LONDON, lon(2026, 6, 12, 16, 0), "1 working day 2h",
     utc(2026, 6, 16, 8, 30)),
    ("wd lands closed", SHORT_FRIDAY, lon(2026, 6, 11, 15, 0), "1 working day",
     utc(2026, 6, 15, 8, 0)),
    ("wd across dst", LONDON, lon(2026, 3, 27, 10, 0), "1 working day",
     utc(2026, 3, 30, 9, 0)),
    ("3d", LONDON, lon(2026, 6, 10, 10, 0), "3d", utc(2026, 6, 15, 9, 0)),
    ("wd ny fall dst", NEW_YORK, nyc(2026, 10, 30, 10, 0), "1 working day",
     utc(2026, 11, 2, 15, 0)),
    # 24/7: elapsed real time, so the 23-hour spring-forward day is 23 hours.
    ("24/7 utc", ALWAYS_UTC, utc(2026, 6, 12, 16, 0), "2h", utc(2026, 6, 12, 18, 0)),
    ("24/7 weekend", ALWAYS_UTC, utc(2026, 6, 13, 23, 0), "2h", utc(2026, 6, 14, 1, 0)),
    ("24/7 over dst", ALWAYS_LONDON, lon(2026, 3, 28, 23, 0), "3h", utc(2026, 3, 29, 2, 0)),
    ("24/7 wd over dst", ALWAYS_LONDON, lon(2026, 3, 28, 12, 0), "1 working day",
     utc(2026, 3, 29, 11, 0)),
]


@pytest.mark.parametrize(
    ("calendar", "start", "duration", "expected"),
    [case[1:] for case in ADD_CASES],
    ids=[case[0] for case in ADD_CASES],
)
def test_add(
    calendar: BusinessCalendar, start: datetime, duration: str, expected: datetime
) -> None:
    due = calendar.add(start, parse_duration(duration))
    assert due == expected
    assert due.tzinfo is UTC


@pytest.mark.parametrize(
    ("calendar", "start", "duration", "expected"),
    [case[1:] for case in ADD_CASES],
    ids=[case[0] for case in ADD_CASES],
)
def test_explain_ends_with_the_same_due_time_as_add(
    calendar: BusinessCalendar, start: datetime, duration: str, expected: datetime
) -> None:
    lines = calendar.explain(start, parse_duration(duration))
    local = expected.astimezone(calendar.zone)
    assert lines[-1].startswith(f"due {local:%a %Y-%m-%d %H:%M} {calendar.tz} (")
    assert f"{expected:%H:%M} UTC)" in lines[-1]


# --- open / between --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calendar", "at", "expected"),
    [
        (LONDON, lon(2026, 6, 10, 9, 0), True),
        (LONDON, lon(2026, 6, 10, 8, 59), False),
        (LONDON, lon(2026, 6, 10, 17, 29), True),
        (LONDON, lon(2026, 6, 10, 17, 30), False),  # closing time is exclusive
        (LONDON, utc(2026, 6, 10, 8, 0), True),  # 09:00 BST
        (LONDON, utc(2026, 1, 14, 8, 0), False),  # 08:00 GMT
        (LONDON, nyc(2026, 6, 10, 5, 0), True),  # 10:00 BST
        (LONDON, lon(2026, 6, 13, 12, 0), False),  # Saturday
        (LONDON, lon(2026, 12, 25, 12, 0), False),
        (SPLIT, lon(2026, 6, 10, 13, 0), False),
        (SPLIT, lon(2026, 6, 10, 13, 30), True),
        (ALWAYS_LONDON, lon(2026, 12, 25, 3, 0), True),
    ],
)
def test_is_open(calendar: BusinessCalendar, at: datetime, expected: bool) -> None:
    assert calendar.is_open(at) is expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (lon(2026, 6, 13, 12, 0), utc(2026, 6, 15, 8, 0)),
        (lon(2026, 6, 10, 11, 15), utc(2026, 6, 10, 10, 15)),
        (lon(2026, 12, 24, 18, 0), utc(2026, 12, 29, 9, 0)),
    ],
)
def test_next_open(at: datetime, expected: datetime) -> None:
    assert LONDON.next_open(at) == expected


@pytest.mark.parametrize(
    ("calendar", "a", "b", "expected"),
    [
        (LONDON, lon(2026, 6, 12, 16, 0), lon(2026, 6, 15, 10, 0), timedelta(hours=2.5)),
        (LONDON, lon(2026, 6, 15, 10, 0), lon(2026, 6, 12, 16, 0), timedelta(0)),
        (LONDON, lon(2026, 6, 15, 10, 0), lon(2026, 6, 15, 10, 0), timedelta(0)),
        (LONDON, lon(2026, 12, 24, 9, 0), lon(2026, 12, 29, 17, 30), timedelta(hours=17)),
        # The week of the spring change still has five 8.5-hour days.
        (LONDON, lon(2026, 3, 23, 0, 0), lon(2026, 3, 30, 0, 0), timedelta(hours=42.5)),
        (NEW_YORK, nyc(2026, 10, 26, 0, 0), nyc(2026, 11, 3, 0, 0), timedelta(hours=51)),
        (SPLIT, lon(2026, 6, 10, 12, 0), lon(2026, 6, 10, 14, 0), timedelta(hours=1)),
        (ALWAYS_LONDON, lon(2026, 3, 29, 0, 0), lon(2026, 3, 30, 0, 0), timedelta(hours=23)),
        (ALWAYS_LONDON, lon(2026, 10, 25, 0, 0), lon(2026, 10, 26, 0, 0), timedelta(hours=25)),
    ],
)
def test_business_time_between(
    calendar: BusinessCalendar, a: datetime, b: datetime, expected: timedelta
) -> None:
    assert calendar.business_time_between(a, b) == expected


def test_wall_times_in_the_spring_gap_use_fold_0() -> None:
    # 2026-03-29 London: 01:00-02:00 does not exist. fold=0 reads 01:30 as 01:30 GMT
    # (= 02:30 BST), so "01:30-03:00" holds 30 minutes that day instead of 90.
    cal = BusinessCalendar("Europe/London", WorkingHours.parse({"sun": "01:30-03:00"}))
    assert cal.business_time_between(lon(2026, 3, 29), lon(2026, 3, 30)) == timedelta(minutes=30)
    assert cal.business_time_between(lon(2026, 3, 22), lon(2026, 3, 23)) == timedelta(minutes=90)


def test_spans_made_to_overlap_by_the_gap_are_not_counted_twice() -> None:
    # 01:30 (fold=0) is 01:30 UTC but 02:00 BST is 01:00 UTC: the spans would overlap.
    cal = BusinessCalendar("Europe/London", WorkingHours.parse({"sun": "00:00-01:30,02:00-03:00"}))
    day = cal.business_time_between(lon(2026, 3, 29), lon(2026, 3, 30))
    assert day == timedelta(hours=2)  # 00:00 GMT to 03:00 BST, each instant once


def test_ambiguous_wall_times_mean_the_first_occurrence() -> None:
    cal = BusinessCalendar("Europe/London", WorkingHours.parse({"sun": "01:00-01:30"}))
    assert cal.is_open(utc(2026, 10, 25, 0, 15))  # 01:15 BST, first time round
    assert not cal.is_open(utc(2026, 10, 25, 1, 15))  # 01:15 GMT, second time round


# --- the property: add and business_time_between agree ----------------------------------

_PROPERTY_CALENDARS = [LONDON, NEW_YORK, SPLIT, ALWAYS_LONDON]
_EPOCH = utc(2026, 1, 1)


@settings(max_examples=200, deadline=None)
@given(
    calendar_index=st.integers(0, len(_PROPERTY_CALENDARS) - 1),
    offset_minutes=st.integers(0, 2 * 366 * 24 * 60),
    seconds=st.integers(0, 59),
    minutes=st.integers(0, 5000),
)
def test_add_and_business_time_between_agree(
    calendar_index: int, offset_minutes: int, seconds: int, minutes: int
) -> None:
    calendar = _PROPERTY_CALENDARS[calendar_index]
    start = _EPOCH + timedelta(minutes=offset_minutes, seconds=seconds)
    due = calendar.add(start, Duration(minutes=minutes))
    assert due >= start
    assert calendar.business_time_between(start, due) == timedelta(minutes=minutes)
    if minutes:
        # Due the moment the last business minute ends, not later (e.g. not next morning).
        assert calendar.is_open(due - timedelta(seconds=1))


# --- pauses ----------------------------------------------------------------------------

WINDOW = (lon(2026, 6, 15, 9, 0), lon(2026, 6, 17, 17, 30))  # Mon 09:00 - Wed 17:30 = 25.5h


@pytest.mark.parametrize(
    ("pauses", "expected_hours"),
    [
        ([], 25.5),
        ([(lon(2026, 6, 15, 12, 0), lon(2026, 6, 16, 12, 0))], 17),
        # Overlapping pauses are subtracted once: union Mon 12:00 - Tue 14:00 = 10.5h.
        ([(lon(2026, 6, 15, 12, 0), lon(2026, 6, 16, 12, 0)),
          (lon(2026, 6, 16, 10, 0), lon(2026, 6, 16, 14, 0))], 15),
        # Same pauses, other order, and one nested inside the other.
        ([(lon(2026, 6, 16, 10, 0), lon(2026, 6, 16, 14, 0)),
          (lon(2026, 6, 15, 12, 0), lon(2026, 6, 16, 12, 0)),
          (lon(2026, 6, 15, 13, 0), lon(2026, 6, 15, 14, 0))], 15),
        ([(lon(2026, 6, 17, 10, 0), None)], 18),  # open-ended: until the end of the window
        ([(lon(2026, 6, 14, 12, 0), lon(2026, 6, 15, 10, 0))], 24.5),  # clipped at start
        ([(lon(2026, 6, 18, 10, 0), None)], 25.5),  # after the window
        ([(lon(2026, 6, 13, 10, 0), None)], 0),  # paused throughout
        ([(lon(2026, 6, 15, 18, 0), lon(2026, 6, 16, 9, 0))], 25.5),  # paused overnight only
    ],
)
def test_pauses_excluded(
    pauses: list[tuple[datetime, datetime | None]], expected_hours: float
) -> None:
    got = pauses_excluded(LONDON, WINDOW[0], WINDOW[1], pauses)
    assert got == timedelta(hours=expected_hours)


def test_pauses_excluded_empty_window() -> None:
    assert pauses_excluded(LONDON, WINDOW[1], WINDOW[0], []) == timedelta(0)


# --- explain() -------------------------------------------------------------------------


def test_explain_scottish_holiday_and_weekend() -> None:
    assert SCOTLAND.explain(lon(2026, 11, 27, 16, 0), parse_duration("2h")) == [
        "target 2h of business time",
        "start Fri 2026-11-27 16:00 Europe/London (open until 17:30: 1h30m counted)",
        "Sat 28 Nov: closed (weekend)",
        "Sun 29 Nov: closed (weekend)",
        "Mon 30 Nov: Saint Andrew's Day (holiday)",
        "Tue 01 Dec 09:00-09:30: 30m counted",
        "due Tue 2026-12-01 09:30 Europe/London (09:30 UTC)",
    ]


def test_explain_christmas_and_closure() -> None:
    cal = BusinessCalendar("Europe/London", WorkingHours.default(), country="GB",
                           subdivision="ENG", closed_dates=[date(2026, 12, 29)])
    lines = cal.explain(lon(2026, 12, 24, 17, 0), parse_duration("1h"))
    assert "Fri 25 Dec: Christmas Day (holiday)" in lines
    assert "Sat 26 Dec: closed (weekend)" in lines
    assert any(line.startswith("Mon 28 Dec: Boxing Day") for line in lines)
    assert "Tue 29 Dec: closed (agency closure)" in lines
    assert lines[-1] == "due Wed 2026-12-30 09:30 Europe/London (09:30 UTC)"


def test_explain_working_days_from_a_closed_start() -> None:
    lines = SCOTLAND.explain(lon(2026, 11, 28, 10, 0), parse_duration("2 working days 1h"))
    assert lines == [
        "target 2 working days 1h of business time",
        "start Sat 2026-11-28 10:00 Europe/London "
        "(closed; clock starts Tue 2026-12-01 09:00 Europe/London)",
        "Sat 28 Nov: closed (weekend)",
        "Sun 29 Nov: closed (weekend)",
        "Mon 30 Nov: Saint Andrew's Day (holiday)",
        "Wed 02 Dec: working day 1 of 2",
        "Thu 03 Dec: working day 2 of 2",
        "same time on Thu 03 Dec: 09:00",
        "then 1h of business time",
        "Thu 03 Dec 09:00-10:00: 1h counted",
        "due Thu 2026-12-03 10:00 Europe/London (10:00 UTC)",
    ]


def test_explain_shows_the_utc_date_when_it_differs() -> None:
    lines = NEW_YORK.explain(nyc(2026, 6, 10, 17, 0), parse_duration("1h"))
    assert lines[-1] == "due Thu 2026-06-11 09:30 America/New_York (13:30 UTC)"
    late = BusinessCalendar("America/New_York", WorkingHours.parse({"wed": "18:00-22:00"}))
    lines = late.explain(nyc(2026, 6, 10, 18, 0), parse_duration("3h"))
    assert lines[-1] == "due Wed 2026-06-10 21:00 America/New_York (2026-06-11 01:00 UTC)"


# --- bad calendars and inputs ----------------------------------------------------------


def test_calendar_with_no_hours_raises() -> None:
    closed = BusinessCalendar("Europe/London", WorkingHours.parse({"sat": "closed"}))
    assert closed.hours.is_closed_all_week()
    assert not WorkingHours.parse({"sun": "10:00-11:00"}).is_closed_all_week()
    with pytest.raises(ValueError, match="calendar has no working hours"):
        closed.add(lon(2026, 6, 10, 10, 0), parse_duration("1h"))
    with pytest.raises(ValueError, match="calendar has no working hours"):
        closed.add(lon(2026, 6, 10, 10, 0), parse_duration("1 working day"))
    with pytest.raises(ValueError, match="calendar has no working hours"):
        closed.next_open(lon(2026, 6, 10, 10, 0))
    assert closed.business_time_between(lon(2026, 1, 1), lon(2027, 1, 1)) == timedelta(0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"tz": "Europe/London", "country": "XX"}, "public holidays"),
        ({"tz": "Europe/London", "country": "GB", "subdivision": "XYZ"}, "public holidays"),
        ({"tz": "Europe/London", "subdivision": "SCT"}, "without a country"),
    ],
)
def test_calendar_config_errors(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(hours=WorkingHours.default(), **kwargs)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        LONDON.add(datetime(2026, 6, 10, 10, 0), parse_duration("1h"))
