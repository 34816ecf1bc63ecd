"""Stored SLA deadlines, recomputed after every change to a ticket (through
``desk.sla.clock.refresh``, which also sets ``next_clock_at`` from them).

The clock task then only reads tickets whose ``next_clock_at`` is due (an index), never
scanning open tickets. Clocks pause while a ticket waits on the customer (or on a
costing/estimate sign-off): the business time spent paused is added to the targets.
"""

from __future__ import annotations

from datetime import datetime

from desk.config.settings import Settings
from desk.config.sla import CalendarSpec, Targets
from desk.sla.calendar import BusinessCalendar, Duration
from desk.store.models import Status, Ticket

# A set-aside auto mail counts as paused: no deadline runs, and if a person promotes it
# its clocks start then (the time set aside is paused time), not when the robot wrote.
PAUSED = (Status.waiting, Status.awaiting_approval, Status.auto)
STOPPED = (Status.resolved, Status.closed)
KINDS = ("first_response", "next_update", "resolution")


# Calendars are built once per (calendar spec, zone, 24/7) and reused: building one loads
# holiday tables, and every ticket event needs one.
_CALENDARS: dict[tuple[int, str, bool], tuple[CalendarSpec, BusinessCalendar]] = {}


def _calendar(spec: CalendarSpec, tz: str, around: bool) -> BusinessCalendar:
    key = (id(spec), tz, around)
    hit = _CALENDARS.get(key)
    if hit is None or hit[0] is not spec:  # the id of a dead spec may be reused
        if len(_CALENDARS) > 512:
            _CALENDARS.clear()
        hit = _CALENDARS[key] = (spec, spec.build(tz, around_the_clock=around))
    return hit[1]


def calendar_for(settings: Settings, ticket: Ticket, around: bool = False) -> BusinessCalendar:
    client = ticket.client
    tz = (client.timezone if client else None) or settings.desk.timezone
    name = (client.settings or {}).get("calendar") if client else None
    return _calendar(settings.sla.calendar_spec(name), tz, around)


def targets_for(settings: Settings, ticket: Ticket) -> Targets | None:
    policy = settings.sla.policy(ticket.sla_policy)
    return policy.targets(ticket.priority) if policy else None


def _plus(duration: Duration, minutes: int) -> Duration:
    return Duration(minutes=duration.minutes + minutes, working_days=duration.working_days)


def _track_pause(ticket: Ticket, calendar: BusinessCalendar, now: datetime) -> None:
    if ticket.status in PAUSED and ticket.paused_since is None:
        ticket.paused_since = now
    elif ticket.status not in PAUSED and ticket.paused_since is not None:
        paused = calendar.business_time_between(ticket.paused_since, now)
        ticket.paused_minutes = (ticket.paused_minutes or 0) + int(paused.total_seconds() // 60)
        ticket.paused_since = None
        ticket.resumed_at = now


def recompute(ticket: Ticket, settings: Settings, now: datetime) -> None:
    targets = targets_for(settings, ticket)
    calendar = calendar_for(settings, ticket, bool(targets and targets.around_the_clock))
    _track_pause(ticket, calendar, now)
    due: dict[str, datetime | None] = dict.fromkeys(KINDS)
    if targets is not None and ticket.status not in STOPPED and ticket.status not in PAUSED:
        start = ticket.created_at
        paused = ticket.paused_minutes or 0
        first = targets.duration("first_response")
        if first and ticket.first_response_at is None:
            due["first_response"] = calendar.add(start, _plus(first, paused))
        update = targets.duration("next_update")
        if update and ticket.first_response_at is not None:
            base = max(t for t in (ticket.last_public_reply_at, ticket.resumed_at, start) if t)
            due["next_update"] = calendar.add(base, update)
        resolution = targets.duration("resolution")
        if resolution:
            due["resolution"] = calendar.add(start, _plus(resolution, paused))
    ticket.first_response_due = due["first_response"]
    ticket.next_update_due = due["next_update"]
    ticket.resolution_due = due["resolution"]
