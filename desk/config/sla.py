"""SLA configuration: calendars, policies per tier and priority, the escalation ladder.

    [sla.calendar]                      # the agency's default business calendar
    hours = { mon = "09:00-17:30", tue = "09:00-17:30", ... }
    country = "GB"
    subdivision = "ENG"
    closed_dates = [2026-12-24]

    [sla.policies.support_sla.P1]       # overrides the built-in default for that cell
    first_response = "1h"
    next_update = "1h"
    resolution = "8h"
    around_the_clock = true
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from desk.sla.calendar import BusinessCalendar, Duration, WorkingHours, parse_duration

LadderStep = Literal["owner", "project_manager", "account_manager", "backup"]
DEFAULT_LADDER: tuple[LadderStep, ...] = ("owner", "project_manager", "account_manager", "backup")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)  # raises ValueError with a clear message
    return value


class CalendarSpec(_Model):
    hours: dict[str, str] = Field(default_factory=lambda: {
        d: "09:00-17:30" for d in ("mon", "tue", "wed", "thu", "fri")})
    country: str | None = None
    subdivision: str | None = None
    closed_dates: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> CalendarSpec:
        hours = WorkingHours.parse(self.hours)
        BusinessCalendar("UTC", hours, country=self.country, subdivision=self.subdivision)
        return self

    def build(self, tz: str, *, around_the_clock: bool = False) -> BusinessCalendar:
        hours = WorkingHours.always() if around_the_clock else WorkingHours.parse(self.hours)
        return BusinessCalendar(tz, hours, country=None if around_the_clock else self.country,
                                subdivision=None if around_the_clock else self.subdivision,
                                closed_dates=() if around_the_clock else self.closed_dates)


class Targets(_Model):
    first_response: str | None = None
    next_update: str | None = None
    resolution: str | None = None
    # Count every hour of every day (e.g. P1 on a 24/7 support contract).
    around_the_clock: bool = False

    _check = field_validator("first_response", "next_update", "resolution")(
        lambda cls, v: _duration(v))

    def duration(self, kind: str) -> Duration | None:
        value = getattr(self, kind)
        return parse_duration(value) if value else None


class PolicySpec(_Model):
    P1: Targets | None = None
    P2: Targets | None = None
    P3: Targets | None = None
    P4: Targets | None = None
    # The desk sends the client a short status update itself when one is due.
    client_updates: bool = False
    # Wording of the promise in acknowledgements when there is no clock (hosting only).
    courtesy: str | None = None

    def targets(self, priority: str) -> Targets | None:
        return getattr(self, priority, None)


def _t(first: str | None, update: str | None, resolution: str | None,
       around: bool = False) -> Targets:
    return Targets(first_response=first, next_update=update, resolution=resolution,
                   around_the_clock=around)


# DOMAIN.md: a human first response within 1-2 business hours on SLA tiers; an update at
# least every 2 working days, every hour while an urgent ticket is worked.
DEFAULT_POLICIES: dict[str, PolicySpec] = {
    "support_sla": PolicySpec(
        P1=_t("1h", "1h", "8h"), P2=_t("1h", "1 working day", "2 working days"),
        P3=_t("2h", "2 working days", "5 working days"),
        P4=_t("2h", "2 working days", "10 working days")),
    "hosting_sla": PolicySpec(
        P1=_t("1h", "1h", "8h"), P2=_t("2h", "1 working day", "3 working days"),
        P3=_t("2h", "2 working days", "5 working days"),
        P4=_t("1 working day", "2 working days", "10 working days")),
    "retainer": PolicySpec(
        P1=_t("2h", "1h", "1 working day"), P2=_t("4h", "2 working days", "5 working days"),
        P3=_t("1 working day", "2 working days", None),
        P4=_t("2 working days", "2 working days", None)),
    "project": PolicySpec(
        P1=_t("2h", "1h", "1 working day"), P2=_t("4h", "2 working days", "5 working days"),
        P3=_t("1 working day", "2 working days", None),
        P4=_t("2 working days", "2 working days", None)),
    "post_project": PolicySpec(
        P1=_t("4h", "1h", None), P2=_t("1 working day", "2 working days", None),
        P3=_t("2 working days", "2 working days", None),
        P4=_t("2 working days", "2 working days", None)),
    # Hosting without SLA: no agreed times, so no clocks, only visibility.
    "hosting": PolicySpec(courtesy="within 3 working days"),
    # Unknown senders: an account manager triages within a working day.
    "triage": PolicySpec(P1=_t("2h", None, None), P2=_t("1 working day", None, None),
                         P3=_t("1 working day", None, None), P4=_t("1 working day", None, None)),
}


class SlaSection(_Model):
    calendar: CalendarSpec = CalendarSpec()
    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    policies: dict[str, PolicySpec] = Field(default_factory=dict)
    # Warn the owner when this fraction of a target has elapsed.
    warn_at: float = Field(default=0.75, gt=0, lt=1)
    # At breach: each step is told in turn, this long apart.
    ladder: list[LadderStep] = Field(default_factory=lambda: list(DEFAULT_LADDER))
    step_delay: str = "30m"
    # Nudge the owner when a client has not heard from us for this long.
    update_every: str = "2 working days"
    # While a P1 is being worked, prompt the owner this often.
    p1_update_every: str = "1h"

    _check = field_validator("step_delay", "update_every", "p1_update_every")(
        lambda cls, v: _duration(v))

    def policy(self, name: str | None) -> PolicySpec | None:
        """The configured policy, cell by cell over the built-in one of the same name: a
        config that sets only P3 keeps the defaults for P1, P2 and P4."""
        if name is None:
            return None
        mine, default = self.policies.get(name), DEFAULT_POLICIES.get(name)
        if mine is None or default is None:
            return mine or default
        merged = default.model_dump()
        merged.update({k: getattr(mine, k) for k in mine.model_fields_set})
        return PolicySpec.model_validate(
            {k: (v.model_dump() if isinstance(v, Targets) else v) for k, v in merged.items()})

    def known_policy(self, name: str) -> bool:
        return name in self.policies or name in DEFAULT_POLICIES

    def calendar_spec(self, name: str | None) -> CalendarSpec:
        if name and name in self.calendars:
            return self.calendars[name]
        return self.calendar
