"""The managers' weekly digest: open tickets by client and tier, breaches and near misses,
each person's load against capacity, retainer burn per client."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from desk.reports.hours import month_usage
from desk.routing.assign import open_load
from desk.store.models import OPEN_STATUSES, Client, Event, Staff, Ticket


def build_digest(session: Session, now: datetime, zone: str) -> dict[str, Any]:
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
            "people": people, "retainer_burn": burn}
