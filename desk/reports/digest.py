"""The managers' weekly digest: promises kept per client, open tickets by client and tier,
breaches and near misses, each person's load against capacity, retainer burn per client."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from desk.config.settings import Settings
from desk.reports.hours import month_usage
from desk.reports.promises import promises_kept
from desk.routing.assign import open_load
from desk.store.models import OPEN_STATUSES, Client, Event, Staff, Ticket


def sla_by_client(session: Session, settings: Settings, since: datetime, now: datetime,
                  ) -> list[dict[str, Any]]:
    """Promises kept per client in the window, least kept first: where a manager looks."""
    tickets = session.scalars(select(Ticket).where(
        Ticket.sla_policy.is_not(None), Ticket.created_at < now,
        or_(Ticket.status.in_(OPEN_STATUSES), Ticket.resolved_at >= since))
        .options(selectinload(Ticket.client))).all()
    groups: dict[str, list[Ticket]] = {}
    for t in tickets:
        groups.setdefault(t.client.name if t.client else "(unknown senders)", []).append(t)
    rows = []
    for name, group in groups.items():
        kept = promises_kept(session, settings, group, since, now)
        if kept.with_clock:
            rows.append({"client": name, "tier": group[0].tier or "-",
                         "tickets": kept.with_clock, "kept": kept.kept,
                         "breached": kept.with_clock - kept.kept, "pct": kept.kept_pct})
    return sorted(rows, key=lambda r: (r["pct"], r["client"]))


def build_digest(session: Session, now: datetime, zone: str,
                 settings: Settings | None = None) -> dict[str, Any]:
    """``settings``: for the promises kept per client (which tickets have agreed times);
    without them that section is None: not computed, which is not "no clocks"."""
    since = now - timedelta(days=7)
    open_tickets = session.scalars(
        select(Ticket).where(Ticket.status.in_(OPEN_STATUSES))
        .options(selectinload(Ticket.client))).all()
    by_client: dict[str, dict[str, Any]] = {}
    for t in open_tickets:
        name = t.client.name if t.client else "(unknown senders)"
        entry = by_client.setdefault(name, {"tier": t.tier or "-", "open": 0, "p1": 0,
                                            "waiting": 0})
        entry["open"] += 1
        entry["p1"] += t.priority == "P1"
        entry["waiting"] += t.status in ("waiting", "awaiting_approval")
    events = session.execute(select(Event.ticket_id, Event.kind, Event.detail).where(
        Event.kind.in_(("sla_breached", "sla_warning")), Event.at >= since)
        .order_by(Event.at)).all()
    breached = [{"ticket": str(tid), "detail": d} for tid, k, d in events if k == "sla_breached"]
    breached_ids = {b["ticket"] for b in breached}
    near = [{"ticket": str(tid), "detail": d} for tid, k, d in events
            if k == "sla_warning" and str(tid) not in breached_ids]
    staff = session.scalars(select(Staff).where(Staff.active.is_(True))
                            .order_by(Staff.role, Staff.email)).all()
    load = open_load(session, [s.id for s in staff])
    people = [{"email": s.email, "name": s.name, "role": s.role, "open": load.get(s.id, 0),
               "capacity": s.capacity, "away": s.is_away(now.date())} for s in staff]
    burn = []
    for client in session.scalars(select(Client).where(Client.hours_per_month.is_not(None))
                                  .order_by(Client.name)):
        usage = month_usage(session, client, now, zone=zone)
        if usage.allowance_minutes:
            burn.append({"client": client.name, "used": usage.used_hours,
                         "allowance": usage.allowance_hours,
                         "pct": round(100 * usage.used_minutes / usage.allowance_minutes)})
    return {"at": now.isoformat(), "open_by_client": dict(sorted(by_client.items())),
            "open_total": len(open_tickets), "breaches": breached, "near_misses": near,
            "people": people, "retainer_burn": burn,
            "sla_by_client": sla_by_client(session, settings, since, now) if settings else None}
