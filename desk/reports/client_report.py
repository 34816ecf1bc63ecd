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
from desk.store.models import (
    OPEN_STATUSES,
    Client,
    Estimate,
    EstimateStatus,
    Event,
    Feedback,
    Ticket,
    TimeEntry,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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

    ids = [t.id for t in tickets]
    breaches = session.execute(select(Event.ticket_id, Event.data).where(
        Event.ticket_id.in_(ids), Event.kind == "sla_breached", Event.at >= start,
        Event.at < end)).all() if ids else []
    active = [t for t in tickets if t.sla_policy and t.created_at < end and
              (t.status in OPEN_STATUSES or (t.resolved_at or end) >= start)]
    breached_ids = {tid for tid, _ in breaches}
    with_clock = [t for t in active if settings.sla.policy(t.sla_policy) is not None
                  and settings.sla.policy(t.sla_policy).targets(t.priority) is not None]  # type: ignore[union-attr]
    compliance = (round(100 * (len(with_clock) - len(breached_ids & {t.id for t in with_clock}))
                        / len(with_clock)) if with_clock else None)
    feedback = session.execute(select(func.avg(Feedback.rating), func.count(Feedback.rating))
                               .where(Feedback.client_id == client.id, Feedback.created_at >= start,
                                      Feedback.created_at < end)).one()
    overall = session.scalar(select(func.avg(Feedback.rating))
                             .where(Feedback.client_id == client.id))
    approvals = session.scalars(select(Estimate).where(
        Estimate.client_id == client.id, Estimate.status == EstimateStatus.approved,
        Estimate.decided_at >= start, Estimate.decided_at < end)).all()
    zone = ZoneInfo(client.timezone or settings.desk.timezone)

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
        },
        "open": [row(t) for t in sorted(open_, key=lambda t: t.id)],
        "blockers": [row(t) for t in open_ if t.status in ("waiting", "awaiting_approval")],
        "next": [row(t) for t in open_ if t.eta and t.eta <= next_end],
        "sla": {"tickets_with_clocks": len(with_clock), "breached": len(breached_ids),
                "compliance_pct": compliance},
        "feedback": {"average": round(float(feedback[0]), 1) if feedback[0] else None,
                     "answers": feedback[1],
                     "average_all_time": round(float(overall), 1) if overall else None},
        "approvals": [{"estimate": e.id, "ticket": str(e.ticket_id), "hours": _hours(e.minutes),
                       "cost": e.cost, "by": e.decided_by,
                       "on": e.decided_at.astimezone(zone).date().isoformat()
                       if e.decided_at else None} for e in approvals],
    }


def chart_png(data: dict[str, Any]) -> bytes | None:
    from desk.reports.chart import bar_chart

    h = data["hours"]
    if not h["allowance"]:
        return None
    used, planned, allowance = h["month_to_date"], h["planned_this_month"], h["allowance"]
    over = used > allowance
    return bar_chart([(used, (200, 70, 60) if over else (74, 123, 183)),
                      (used + planned, (160, 190, 225))],
                     max(allowance, used + planned) * 1.05, marker=allowance)

