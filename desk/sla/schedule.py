"""Everything the clock must do for one ticket, and when.

``schedule`` is pure: from a ticket's stored deadlines and the SLA settings it lists
each action (warning, ladder step, silence nudge, P1 prompt, ETA warning) with its time
and a stable key. The clock task performs the due ones (the key makes each happen once,
across restarts and several workers); ``next_clock_at`` is the earliest not yet handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from desk.config.settings import Settings
from desk.sla.calendar import BusinessCalendar, Duration, parse_duration
from desk.sla.deadlines import PAUSED, STOPPED, calendar_for, targets_for
from desk.store.models import Status, Ticket

KIND_WORDS = {"first_response": "first response", "next_update": "next update",
              "resolution": "resolution"}


@dataclass(frozen=True, slots=True)
class Action:
    at: datetime
    key: str  # stable: the outbox event key and the event log's memory
    kind: str  # warn | breach | nudge | p1_prompt | eta_warning
    deadline: str | None = None  # first_response | next_update | resolution
    due: datetime | None = None
    step: int = 0  # ladder step (breach), 0-based
    n: int = 0  # nudge / prompt number since the last reply


def _fraction(calendar: BusinessCalendar, start: datetime, due: datetime,
              fraction: float) -> datetime:
    minutes = int(calendar.business_time_between(start, due).total_seconds() // 60 * fraction)
    return calendar.add(start, Duration(minutes=minutes)) if minutes > 0 else start


def _deadline_actions(ticket: Ticket, settings: Settings, calendar: BusinessCalendar,
                      ) -> list[Action]:
    actions: list[Action] = []
    step_delay = parse_duration(settings.sla.step_delay)
    for kind in ("first_response", "next_update", "resolution"):
        due: datetime | None = getattr(ticket, f"{kind}_due")
        if due is None:
            continue
        start = ticket.created_at
        if kind == "next_update":
            start = max(t for t in (ticket.last_public_reply_at, ticket.resumed_at,
                                    ticket.created_at) if t)
        stamp = due.strftime("%Y%m%dT%H%M")
        base = f"sla:{ticket.id}:{kind}:{stamp}"
        actions.append(Action(_fraction(calendar, start, due, settings.sla.warn_at),
                              f"{base}:warn", "warn", kind, due))
        at = due
        for step in range(len(settings.sla.ladder)):
            actions.append(Action(at, f"{base}:step{step}", "breach", kind, due, step=step))
            at = calendar.add(at, step_delay)
    return actions


def _silence_actions(ticket: Ticket, settings: Settings, calendar: BusinessCalendar,
                     after: datetime) -> list[Action]:
    """The next nudge (client not heard from us for `update_every`) and, for a P1 being
    worked, the next hourly prompt: only the first one after ``after`` is listed."""
    actions: list[Action] = []
    base = max(t for t in (ticket.last_public_reply_at, ticket.resumed_at, ticket.created_at)
               if t)
    stamp = base.strftime("%Y%m%dT%H%M%S")
    every = parse_duration(settings.sla.update_every)
    for n in range(1, 60):
        at = calendar.add(base, Duration(minutes=every.minutes * n,
                                         working_days=every.working_days * n))
        if at > after:
            actions.append(Action(at, f"nudge:{ticket.id}:{stamp}:{n}", "nudge", n=n))
            break
    if ticket.priority == "P1" and ticket.status == Status.open:
        hourly = parse_duration(settings.sla.p1_update_every)
        step = timedelta(minutes=hourly.minutes or 60)
        n = max(1, int((after - base) / step) + 1)
        actions.append(Action(base + step * n, f"p1:{ticket.id}:{stamp}:{n}", "p1_prompt", n=n))
    return actions


def _eta_action(ticket: Ticket, calendar: BusinessCalendar) -> Action | None:
    """Warn the project manager on the last working day before the ETA, at opening."""
    if ticket.eta is None:
        return None
    day = ticket.eta - timedelta(days=1)
    for _ in range(14):
        if _opens_on(calendar, day):
            break
        day -= timedelta(days=1)
    zone = calendar.zone
    at = calendar.next_open(datetime.combine(day, time(0), tzinfo=zone))
    return Action(at, f"eta:{ticket.id}:{ticket.eta.isoformat()}", "eta_warning")


def _opens_on(calendar: BusinessCalendar, day: object) -> bool:
    from datetime import date as _date

    assert isinstance(day, _date)
    start = datetime.combine(day, time(0), tzinfo=calendar.zone)
    return calendar.business_time_between(start, start + timedelta(days=1)) > timedelta(0)


def schedule(ticket: Ticket, settings: Settings, after: datetime,
             estimate_since: datetime | None = None) -> list[Action]:
    """Every action for this ticket that is due after ``after`` or not yet handled:
    deadline warnings and ladder steps are listed whole (their keys make them once-only),
    repeating nudges and prompts only from ``after`` on."""
    if ticket.status in STOPPED:
        return []
    targets = targets_for(settings, ticket)
    calendar = calendar_for(settings, ticket, bool(targets and targets.around_the_clock))
    actions = _deadline_actions(ticket, settings, calendar)
    if ticket.status == Status.awaiting_approval and estimate_since is not None:
        wait = parse_duration(settings.change_requests.remind_after)
        stamp = estimate_since.strftime("%Y%m%dT%H%M%S")
        actions.append(Action(calendar.add(estimate_since, wait),
                              f"estimate_reminder:{ticket.id}:{stamp}", "estimate_reminder"))
    if ticket.status not in PAUSED:
        actions += _silence_actions(ticket, settings, calendar, after)
        eta = _eta_action(ticket, calendar)
        if eta is not None:
            actions.append(eta)
    return sorted(actions, key=lambda a: a.at)


