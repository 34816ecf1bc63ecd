"""Business-time arithmetic for SLA clocks.

SLA targets ("2h", "1 working day") are measured in a client's business calendar: working
hours per weekday in one IANA time zone, minus public holidays (the `holidays` package) and
extra closed dates. Every instant going in may carry any time zone; every instant coming out
is an aware UTC datetime, which is what the database stores.

How the calendar is modelled, and the decisions that follow from it:

- Each local date has a tuple of open spans, computed once per date as UTC datetimes from
  the wall-clock hours (`datetime.combine(day, t, tzinfo=zone)`). All arithmetic is then done
  on UTC instants, so a 09:00-17:30 day is 8.5 h of business time whatever the UTC offset,
  and the day of a DST change still opens at 09:00 local time.
- A wall time that does not exist (spring-forward gap) or exists twice (fall-back overlap) is
  resolved with zoneinfo's fold=0 rule: the offset in force *before* the transition. A gap
  time therefore lands inside the period after the jump (01:30 on 2026-03-29 in London is
  01:30 UTC = 02:30 BST) and an ambiguous time means its first occurrence. If that makes a
  span start before the previous span of the same day ends, it is clipped so that no
  instant is ever counted twice, and a span that collapses to nothing is dropped.
- "N working days" keeps the wall-clock time: the clock first starts at the next opening
  (so a ticket on Saturday counts from Monday's opening), then moves to the same local time
  on the N-th following date that has any open hours, rolling forward to the next opening
  if that moment is closed. Minutes in the same duration are then added as business time.
- A due time that falls exactly at closing time stays at closing time (15:30 + 2h on a
  day closing 17:30 is due 17:30 that day, not 09:00 the next morning).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

ONE_DAY = timedelta(days=1)
ZERO = timedelta(0)
# A calendar with no opening for this many consecutive days is treated as having none at
# all: it bounds every loop below instead of spinning on a misconfigured client.
MAX_CLOSED_DAYS = 366
# The per-date cache is dropped when it grows past this (a long-running daemon walks
# forward through the years; a few thousand dates is ample for the live window).
_DAY_CACHE_LIMIT = 4096

MIDNIGHT = time(0)
_WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Span = tuple[datetime, datetime]
Interval = tuple[time, time]


# --- durations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Duration:
    """An SLA target: whole working days, then business minutes on top."""

    minutes: int = 0
    working_days: int = 0

    def __post_init__(self) -> None:
        for name in ("minutes", "working_days"):
            value = getattr(self, name)
            # bool is an int subclass; True minutes is always a bug upstream.
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Duration.{name} must be a non-negative int, got {value!r}")

    def __str__(self) -> str:
        parts: list[str] = []
        if self.working_days:
            plural = "" if self.working_days == 1 else "s"
            parts.append(f"{self.working_days} working day{plural}")
        if self.minutes or not parts:
            parts.append(_format_minutes(self.minutes))
        return " ".join(parts)


def _format_minutes(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours}h{rest}m"
    return f"{hours}h" if hours else f"{rest}m"


_DAY_UNITS = ("d", "day", "days", "working day", "working days", "business day",
              "business days", "workday", "workdays", "working-day", "working-days")
_HOUR_UNITS = ("h", "hr", "hrs", "hour", "hours")
_MINUTE_UNITS = ("m", "min", "mins", "minute", "minutes")
_UNIT_KIND = {
    **{u: "working_days" for u in _DAY_UNITS},
    **{u: "hours" for u in _HOUR_UNITS},
    **{u: "minutes" for u in _MINUTE_UNITS},
}
_UNIT_PATTERN = "|".join(
    re.escape(u).replace(r"\ ", r"\s+") for u in sorted(_UNIT_KIND, key=len, reverse=True)
)
# One "<number> <unit>" component, optionally preceded by a separator; the lookahead stops
# "2 months" being read as "2 m" + junk.
_COMPONENT = re.compile(
    rf"\s*(?:,\s*|and\s+)?(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>{_UNIT_PATTERN})(?![a-z])"
)
_DURATION_EXAMPLES = "e.g. '2h', '1h30m', '45 min', '2 working days', '1 working day 4h'"


def parse_duration(text: str) -> Duration:
    """Parse an SLA target such as "1h30m", "1.5h", "3d" or "1 working day 2h"."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string ({_DURATION_EXAMPLES}), got {text!r}")
    source = text.strip().lower()
    if not source:
        raise ValueError(f"empty duration: expected {_DURATION_EXAMPLES}")
    if source.startswith("-"):
        raise ValueError(f"duration {text!r} is negative")
    totals: dict[str, Fraction] = {}
    pos = 0
    while pos < len(source):
        match = _COMPONENT.match(source, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}: expected {_DURATION_EXAMPLES}")
        kind = _UNIT_KIND[re.sub(r"\s+", " ", match["unit"])]
        if kind in totals:
            raise ValueError(f"invalid duration {text!r}: {kind.replace('_', ' ')} given twice")
        totals[kind] = Fraction(match["num"])
        pos = match.end()
    return _duration_from(text, totals)


def _duration_from(text: str, totals: dict[str, Fraction]) -> Duration:
    days = totals.get("working_days", Fraction(0))
    minutes = totals.get("hours", Fraction(0)) * 60 + totals.get("minutes", Fraction(0))
    if days.denominator != 1:
        raise ValueError(f"invalid duration {text!r}: working days must be whole")
    if minutes.denominator != 1:
        raise ValueError(f"invalid duration {text!r}: must be a whole number of minutes")
    if not days and not minutes:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    return Duration(minutes=int(minutes), working_days=int(days))


# --- weekly hours ----------------------------------------------------------------------


def _seconds(t: time, *, end: bool = False) -> int:
    # time(0) as an interval end means 24:00, the midnight that closes the day.
    if end and t == MIDNIGHT:
        return 24 * 3600
    return t.hour * 3600 + t.minute * 60 + t.second


def _check_day(day: str, intervals: tuple[Interval, ...]) -> None:
    previous_end = -1
    for start, end in intervals:
        if not isinstance(start, time) or not isinstance(end, time):
            raise ValueError(f"working hours for {day}: intervals must be (time, time) pairs")
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError(f"working hours for {day}: times are local wall times, no tzinfo")
        lo, hi = _seconds(start), _seconds(end, end=True)
        if hi <= lo:
            raise ValueError(f"working hours for {day}: {_hhmm(start)}-{_hhmm(end)} "
                             "must end after it starts")
        if lo < previous_end:
            raise ValueError(f"working hours for {day}: intervals overlap or are out of order "
                             f"at {_hhmm(start)}")
        previous_end = hi


def _hhmm(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


_TIME_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


def _parse_time(day: str, hour: str, minute: str, *, end: bool) -> time:
    h, m = int(hour), int(minute)
    if end and (h, m) == (24, 0):
        return MIDNIGHT
    if h > 23 or m > 59:
        raise ValueError(f"working hours for {day}: {hour}:{minute} is not a valid HH:MM time")
    return time(h, m)


def _parse_day(day: str, value: object) -> tuple[Interval, ...]:
    if not isinstance(value, str):
        raise ValueError(f"working hours for {day}: expected a string like '09:00-17:30' "
                         f"or 'closed', got {value!r}")
    text = value.strip().lower()
    if text in ("", "closed"):
        return ()
    intervals: list[Interval] = []
    for part in text.split(","):
        match = _TIME_RANGE.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"working hours for {day}: {part.strip()!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = match.groups()
        intervals.append((_parse_time(day, h1, m1, end=False), _parse_time(day, h2, m2, end=True)))
    # Config may list a split day in any order; overlaps are still refused by _check_day.
    return tuple(sorted(intervals, key=lambda iv: _seconds(iv[0])))


def _weekday_index(key: object) -> int:
    name = str(key).strip().lower()
    for index, (abbr, full) in enumerate(zip(_WEEKDAY_KEYS, _WEEKDAY_NAMES, strict=True)):
        if name in (abbr, full.lower()):
            return index
    raise ValueError(f"working hours: unknown day {key!r} (use mon, tue, ... sun)")


@dataclass(frozen=True)
class WorkingHours:
    """Open intervals per weekday, `week[0]` = Monday .. `week[6]` = Sunday.

    Each interval is (start, end) in local wall time; an end of `time(0)` means 24:00.
    An empty tuple means closed all day.
    """

    week: tuple[tuple[Interval, ...], ...]

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples so the value stays hashable.
        week = tuple(tuple((start, end) for start, end in day) for day in self.week)
        if len(week) != 7:
            raise ValueError(f"working hours need 7 weekdays, got {len(week)}")
        for name, intervals in zip(_WEEKDAY_NAMES, week, strict=True):
            _check_day(name, intervals)
        object.__setattr__(self, "week", week)

    @classmethod
    def parse(cls, spec: Mapping[str, str]) -> WorkingHours:
        """From config such as {"mon": "09:00-17:30", "tue": "09:00-12:30,13:30-17:30"}."""
        week: list[tuple[Interval, ...]] = [()] * 7
        seen: set[int] = set()
        for key, value in spec.items():
            index = _weekday_index(key)
            if index in seen:
                raise ValueError(f"working hours for {_WEEKDAY_NAMES[index]} given twice")
            seen.add(index)
            week[index] = _parse_day(_WEEKDAY_NAMES[index], value)
        return cls(tuple(week))

    @classmethod
    def default(cls) -> WorkingHours:
        office = ((time(9), time(17, 30)),)
        return cls((office,) * 5 + ((), ()))

    @classmethod
    def always(cls) -> WorkingHours:
        return cls((((MIDNIGHT, MIDNIGHT),),) * 7)

    def is_closed_all_week(self) -> bool:
        return not any(self.week)


# --- the calendar ----------------------------------------------------------------------


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: business-time arithmetic needs "
                         "an aware datetime")
    return at.astimezone(UTC)


class BusinessCalendar:
    """Working hours in one time zone, minus public holidays and extra closed dates."""

    def __init__(
        self,
        tz: str,
        hours: WorkingHours,
        *,
        country: str | None = None,
        subdivision: str | None = None,
        closed_dates: Iterable[date] = (),
    ) -> None:
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        if subdivision and not country:
            raise ValueError(f"holiday subdivision {subdivision!r} given without a country")
        self.tz = tz
        self.hours = hours
        self.country = country
        self.subdivision = subdivision
        self.closed_dates = frozenset(closed_dates)
        self._holiday_years: dict[int, dict[date, str]] = {}
        self._days: dict[date, tuple[Span, ...]] = {}
        if country:
            self._load_holidays(None)  # fail at config time on an unknown country/region

    def __repr__(self) -> str:
        return (f"BusinessCalendar({self.tz!r}, country={self.country!r}, "
                f"subdivision={self.subdivision!r})")

    # -- holidays and per-date spans --

    def _load_holidays(self, year: int | None) -> dict[date, str]:
        assert self.country is not None
        try:
            table = holidays.country_holidays(
                self.country, subdiv=self.subdivision, years=() if year is None else year
            )
        except NotImplementedError as exc:
            raise ValueError(f"public holidays: {exc}") from exc
        return dict(table.items())

    def holiday_name(self, day: date) -> str | None:
        """The public holiday's name on `day` (local date), if any."""
        if not self.country:
            return None
        names = self._holiday_years.get(day.year)
        if names is None:
            names = self._holiday_years[day.year] = self._load_holidays(day.year)
        return names.get(day)

    def _spans(self, day: date) -> tuple[Span, ...]:
        spans = self._days.get(day)
        if spans is None:
            if len(self._days) >= _DAY_CACHE_LIMIT:
                self._days.clear()
            spans = self._days[day] = self._compute_spans(day)
        return spans

    def _compute_spans(self, day: date) -> tuple[Span, ...]:
        intervals = self.hours.week[day.weekday()]
        if not intervals or day in self.closed_dates or self.holiday_name(day):
            return ()
        spans: list[Span] = []
        for start, end in intervals:
            lo = datetime.combine(day, start, tzinfo=self.zone).astimezone(UTC)
            end_day = day + ONE_DAY if end == MIDNIGHT else day
            hi = datetime.combine(end_day, end, tzinfo=self.zone).astimezone(UTC)
            # fold=0 can map a gap time after a later wall time; never count twice.
            if spans and lo < spans[-1][1]:
                lo = spans[-1][1]
            if hi > lo:
                spans.append((lo, hi))
        return tuple(spans)

    def _days_from(self, day: date) -> Iterator[tuple[date, tuple[Span, ...]]]:
        """Dates from `day` on with their spans; gives up after a year with no opening."""
        closed_run = 0
        while True:
            spans = self._spans(day)
            if spans:
                closed_run = 0
            else:
                closed_run += 1
                if closed_run > MAX_CLOSED_DAYS:
                    raise ValueError("calendar has no working hours")
            yield day, spans
            day += ONE_DAY

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    # -- queries --

    def is_open(self, at: datetime) -> bool:
        at = _utc(at)
        # Neighbouring dates too: around a DST change at local midnight an instant's local
        # date need not be the date whose hours contain it.
        today = self._local_date(at)
        return any(
            lo <= at < hi
            for day in (today - ONE_DAY, today, today + ONE_DAY)
            for lo, hi in self._spans(day)
        )

    def next_open(self, at: datetime) -> datetime:
        """`at` (in UTC) if open, else the next opening. ValueError if none within a year."""
        at = _utc(at)
        for _, spans in self._days_from(self._local_date(at) - ONE_DAY):
            for lo, hi in spans:
                if hi > at:
                    return max(lo, at)
        raise AssertionError("unreachable: _days_from is infinite")

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Open time in [a, b); zero if b <= a."""
        a, b = _utc(a), _utc(b)
        if b <= a:
            return ZERO
        total = ZERO
        day, last = self._local_date(a) - ONE_DAY, self._local_date(b)
        while day <= last:
            for lo, hi in self._spans(day):
                lo, hi = max(lo, a), min(hi, b)
                if hi > lo:
                    total += hi - lo
            day += ONE_DAY
        return total

    def add(self, start: datetime, duration: Duration) -> datetime:
        """The UTC instant when `duration` of business time has elapsed after `start`."""
        return self._add(_utc(start), duration, None)

    def explain(self, start: datetime, duration: Duration) -> list[str]:
        """The steps of `add(start, duration)` in words, for `desk sla explain`."""
        trace: list[str] = [f"target {duration} of business time"]
        due = self._add(_utc(start), duration, trace)
        local = due.astimezone(self.zone)
        utc_part = f"{_clock(due)} UTC"
        if due.date() != local.date():
            utc_part = f"{due:%Y-%m-%d} {utc_part}"
        trace.append(f"due {self._stamp(due)} ({utc_part})")
        return trace

    # -- the arithmetic, shared by add() and explain() --

    def _add(self, at: datetime, duration: Duration, trace: list[str] | None) -> datetime:
        if duration.working_days:
            at = self._add_working_days(at, duration.working_days, trace)
            if not duration.minutes:
                return at
            if trace is not None:
                trace.append(f"then {_format_minutes(duration.minutes)} of business time")
        return self._add_minutes(at, timedelta(minutes=duration.minutes), trace,
                                 headline=not duration.working_days)

    def _add_working_days(self, at: datetime, n: int, trace: list[str] | None) -> datetime:
        opened = self.next_open(at)
        if trace is not None:
            state = "open" if opened == at else f"closed; clock starts {self._stamp(opened)}"
            trace.append(f"start {self._stamp(at)} ({state})")
            self._trace_closed_days(self._local_date(at), self._local_date(opened), trace)
        local = opened.astimezone(self.zone)
        count = 0
        for day, spans in self._days_from(local.date() + ONE_DAY):
            if spans:
                count += 1
            if trace is not None:
                trace.append(f"{_short_date(day)}: working day {count} of {n}" if spans
                             else f"{_short_date(day)}: {self.closed_reason(day)}")
            if count == n:
                break
        # Same wall-clock time on the target date; fold=0 resolves a gap or a repeat.
        wall = datetime.combine(day, local.time().replace(fold=0), tzinfo=self.zone)
        landed = self.next_open(wall)
        if trace is not None:
            if landed == _utc(wall):
                trace.append(f"same time on {_short_date(day)}: {_clock(wall)}")
            else:
                trace.append(f"{_short_date(day)} {_clock(wall)} is closed: rolled forward to "
                             f"{self._short_stamp(landed)}")
        return landed

    def _add_minutes(
        self, at: datetime, remaining: timedelta, trace: list[str] | None, *, headline: bool
    ) -> datetime:
        start_day = self._local_date(at)
        # For a minutes-only target the start line also reports the first open span.
        merge_start_line = headline and trace is not None
        if trace is not None and headline and not self.is_open(at):
            trace.append(f"start {self._stamp(at)} (closed; clock starts at next opening)")
            merge_start_line = False
        for day, spans in self._days_from(start_day - ONE_DAY):
            if trace is not None and not spans and day >= start_day:
                trace.append(f"{_short_date(day)}: {self.closed_reason(day)}")
            for lo, hi in spans:
                if hi <= at:
                    continue
                lo = max(lo, at)
                take = min(remaining, hi - lo)
                if trace is not None:
                    if merge_start_line:
                        trace.append(f"start {self._stamp(at)} (open until {self._end_clock(hi)}:"
                                     f" {_format_delta(take)} counted)")
                        merge_start_line = False
                    else:
                        trace.append(f"{_short_date(day)} {self._clock_local(lo)}-"
                                     f"{self._end_clock(lo + take)}: {_format_delta(take)} counted")
                if remaining <= hi - lo:
                    return lo + remaining
                remaining -= hi - lo
        raise AssertionError("unreachable: _days_from is infinite")

    # -- wording --

    def _trace_closed_days(self, first: date, stop: date, trace: list[str]) -> None:
        """Name each closed date in [first, stop), so a late start says why it waited."""
        day = first
        while day < stop:
            if not self._spans(day):
                trace.append(f"{_short_date(day)}: {self.closed_reason(day)}")
            day += ONE_DAY

    def closed_reason(self, day: date) -> str:
        """Why `day` (a local date) has no business hours, in words."""
        weekday = day.weekday()
        if not self.hours.week[weekday]:
            return "closed (weekend)" if weekday >= 5 else "closed (no working hours)"
        if day in self.closed_dates:
            return "closed (agency closure)"
        name = self.holiday_name(day)
        if name:
            return f"{name} (holiday)"
        return "closed (no working hours)"  # only when DST clipping left nothing open

    def _stamp(self, at: datetime) -> str:
        local = at.astimezone(self.zone)
        return f"{_WEEKDAY_ABBR[local.weekday()]} {local:%Y-%m-%d} {_clock(local)} {self.tz}"

    def _short_stamp(self, at: datetime) -> str:
        local = at.astimezone(self.zone)
        return f"{_short_date(local.date())} {_clock(local)}"

    def _clock_local(self, at: datetime) -> str:
        return _clock(at.astimezone(self.zone))

    def _end_clock(self, at: datetime) -> str:
        # A span closing at local midnight reads better as 24:00 than 00:00.
        local = at.astimezone(self.zone)
        if local.time() == MIDNIGHT:
            return "24:00"
        return _clock(local)


def _clock(at: datetime) -> str:
    if at.second or at.microsecond:
        return f"{at:%H:%M:%S}"
    return f"{at:%H:%M}"


def _short_date(day: date) -> str:
    return f"{_WEEKDAY_ABBR[day.weekday()]} {day.day:02d} {_MONTH_ABBR[day.month - 1]}"


def _format_delta(delta: timedelta) -> str:
    minutes, seconds = divmod(int(delta.total_seconds()), 60)
    if not seconds:
        return _format_minutes(minutes)
    return f"{_format_minutes(minutes)}{seconds}s" if minutes else f"{seconds}s"


# --- pauses ----------------------------------------------------------------------------


def _merged_pauses(
    start: datetime, end: datetime, pauses: Iterable[tuple[datetime, datetime | None]]
) -> list[Span]:
    clipped: list[Span] = []
    for pause_start, pause_end in pauses:
        lo = max(_utc(pause_start), start)
        hi = end if pause_end is None else min(_utc(pause_end), end)
        if hi > lo:
            clipped.append((lo, hi))
    clipped.sort()
    merged: list[Span] = []
    for lo, hi in clipped:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def pauses_excluded(
    calendar: BusinessCalendar,
    start: datetime,
    end: datetime,
    pauses: list[tuple[datetime, datetime | None]],
) -> timedelta:
    """Business time in [start, end) outside the pauses (open-ended = until `end`).

    Pauses are clipped to [start, end) and merged first, so overlapping pauses (say a
    "waiting on customer" inside a "waiting on third party") are only subtracted once.
    """
    start, end = _utc(start), _utc(end)
    if end <= start:
        return ZERO
    total = calendar.business_time_between(start, end)
    for lo, hi in _merged_pauses(start, end, pauses):
        total -= calendar.business_time_between(lo, hi)
    return total
