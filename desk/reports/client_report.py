"""The regular client report the handbooks promise: work done, hours against the
allowance, open items with status and ETA, SLA compliance, blockers, plans, feedback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.reports.hours import month_usage
from desk.reports.promises import promises_kept
from desk.store.models import (
    OPEN_STATUSES,
    Client,
    Estimate,
    EstimateStatus,
    Feedback,
    Ticket,
    TimeEntry,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How many weeks of hours the report's chart shows: two months, enough to see a trend.
WEEKS = 8


@dataclass(frozen=True, slots=True)
class Period:
    kind: str  # week | fortnight
    start: datetime  # UTC
    end: datetime  # UTC, exclusive: the moment the report is due

    @property
    def days(self) -> int:
        return 14 if self.kind == "fortnight" else 7


def cadence(client: Client, settings: Settings) -> str:
    return (client.settings or {}).get("report_period") or settings.reports.period


def send_moment(client: Client, settings: Settings, now: datetime) -> datetime | None:
    """The latest scheduled report moment at or before ``now`` (UTC), or None."""
    kind = cadence(client, settings)
    if kind == "none":
        return None
    zone = ZoneInfo(client.timezone or settings.desk.timezone)
    local = now.astimezone(zone)
    hh, mm = (int(x) for x in settings.reports.time.split(":"))
    wanted = WEEKDAYS.index(settings.reports.weekday)
    day = local.date() - timedelta(days=(local.weekday() - wanted) % 7)
    for _ in range(3):
        moment = datetime.combine(day, time(hh, mm), tzinfo=zone)
        # Fortnightly reports go out in even ISO weeks: a fixed, restart-proof rhythm.
        if moment <= local and (kind == "week" or day.isocalendar().week % 2 == 0):
            return moment.astimezone(UTC)
        day -= timedelta(days=7)
    return None


def period_ending(client: Client, settings: Settings, end: datetime) -> Period:
    kind = cadence(client, settings)
    kind = "fortnight" if kind == "fortnight" else "week"
    return Period(kind, end - timedelta(days=14 if kind == "fortnight" else 7), end)


def _hours(minutes: int | float) -> float:
    return round(minutes / 60, 2)


def weekly_hours(session: Session, client: Client, end: datetime, zone: ZoneInfo,
                 weeks: int = WEEKS) -> list[dict[str, Any]]:
    """Hours spent in each of the ``weeks`` weeks that end at ``end``, oldest first. A week
    is named by its last day in the client's zone ("to", and "label" as people write it:
    "27 Nov"); the latest ends on the report's own end date."""
    start = end - timedelta(days=7 * weeks)
    minutes = [0] * weeks
    for at, spent in session.execute(
            select(TimeEntry.at, TimeEntry.minutes).where(
                TimeEntry.client_id == client.id, TimeEntry.kind == "spent",
                TimeEntry.at >= start, TimeEntry.at < end)):
        minutes[min(int((at - start) / timedelta(days=7)), weeks - 1)] += spent
    weeks_out = []
    for i, m in enumerate(minutes):
        last = (start + timedelta(days=7 * (i + 1), seconds=-1)).astimezone(zone).date()
        weeks_out.append({"to": last.isoformat(), "label": f"{last.day} {last:%b}",
                          "hours": _hours(m)})
    return weeks_out


def build_report(session: Session, settings: Settings, client: Client, period: Period,
                 ) -> dict[str, Any]:
    start, end = period.start, period.end
    tickets = session.scalars(select(Ticket).where(Ticket.client_id == client.id)).all()
    by_id = {t.id: t for t in tickets}
    spent = dict(session.execute(
        select(TimeEntry.ticket_id, func.sum(TimeEntry.minutes))
        .where(TimeEntry.client_id == client.id, TimeEntry.kind == "spent",
               TimeEntry.at >= start, TimeEntry.at < end)
        .group_by(TimeEntry.ticket_id)).all())
    done = [t for t in tickets if t.resolved_at and start <= t.resolved_at < end]
    open_ = [t for t in tickets if t.status in OPEN_STATUSES]
    next_end = (end + timedelta(days=period.days)).date()
    month = month_usage(session, client, end, zone=settings.desk.timezone)
    planned = month_usage(session, client, end, kind="planned",
                              zone=settings.desk.timezone)
    zone = ZoneInfo(client.timezone or settings.desk.timezone)
    promises = promises_kept(session, settings, tickets, start, end)
    feedback = session.execute(select(func.avg(Feedback.rating), func.count(Feedback.rating))
                               .where(Feedback.client_id == client.id, Feedback.created_at >= start,
                                      Feedback.created_at < end)).one()
    overall = session.scalar(select(func.avg(Feedback.rating))
                             .where(Feedback.client_id == client.id))
    approvals = session.scalars(select(Estimate).where(
        Estimate.client_id == client.id, Estimate.status == EstimateStatus.approved,
        Estimate.decided_at >= start, Estimate.decided_at < end)).all()

    def row(t: Ticket) -> dict[str, Any]:
        return {"ref": t.ref, "subject": t.subject, "status": t.status, "priority": t.priority,
                "eta": t.eta.isoformat() if t.eta else None,
                "owner": t.owner.name if t.owner else None,
                "hours": _hours(spent.get(t.id, 0))}

    return {
        "client": client.name,
        "tier": client.tier,
        "period": {"kind": period.kind,
                   "from": start.astimezone(zone).date().isoformat(),
                   "to": (end - timedelta(seconds=1)).astimezone(zone).date().isoformat()},
        "work_done": [row(t) | {"resolved": (t.resolved_at or end).astimezone(zone).date()
                                .isoformat()}
                      for t in sorted(done, key=lambda t: t.resolved_at or end)],
        "hours": {
            "period": _hours(sum(spent.values())),
            "by_ticket": {by_id[k].ref: _hours(v) for k, v in spent.items() if k in by_id},
            "month_to_date": month.used_hours,
            "planned_this_month": planned.used_hours,
            "allowance": month.allowance_hours,
            "left": month.left_hours,
            # The allowance spread evenly over the year's weeks: the line each week's bar
            # is read against.
            "pace_per_week": (round(month.allowance_hours * 12 / 52, 2)
                              if month.allowance_hours else None),
        },
        "open": [row(t) for t in sorted(open_, key=lambda t: t.id)],
        "blockers": [row(t) for t in open_ if t.status in ("waiting", "awaiting_approval")],
        "next": [row(t) for t in open_ if t.eta and t.eta <= next_end],
        "weeks": weekly_hours(session, client, end, zone),
        "sla": {"tickets_with_clocks": promises.with_clock, "breached": promises.breached,
                "compliance_pct": promises.kept_pct},
        "feedback": {"average": round(float(feedback[0]), 1) if feedback[0] else None,
                     "answers": feedback[1],
                     "average_all_time": round(float(overall), 1) if overall else None},
        "approvals": [{"estimate": e.id, "ticket": str(e.ticket_id), "hours": _hours(e.minutes),
                       "cost": e.cost, "by": e.decided_by,
                       "on": e.decided_at.astimezone(zone).date().isoformat()
                       if e.decided_at else None} for e in approvals],
    }

