"""`desk sla status` and `desk sla explain`: where every promise stands, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from desk.config.settings import Settings
from desk.sla.calendar import Duration
from desk.sla.deadlines import PAUSED, calendar_for, targets_for
from desk.sla.schedule import KIND_WORDS, schedule
from desk.store.models import OPEN_STATUSES, Ticket


def _state(ticket: Ticket, settings: Settings, now: datetime) -> dict[str, Any] | None:
    dues = {k: getattr(ticket, f"{k}_due") for k in KIND_WORDS}
    dues = {k: v for k, v in dues.items() if v is not None}
    if not dues:
        return None
    kind, due = min(dues.items(), key=lambda kv: kv[1])
    warn = next((a.at for a in schedule(ticket, settings, now)
                 if a.kind == "warn" and a.deadline == kind), None)
    state = "breached" if now >= due else "at_risk" if warn and now >= warn else "ok"
    return {"deadline": kind, "due": due.isoformat(),
            "minutes_left": int((due - now).total_seconds() // 60), "state": state}


def sla_status(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    tickets = session.scalars(
        select(Ticket).where(Ticket.status.in_(OPEN_STATUSES))
        .options(selectinload(Ticket.client), selectinload(Ticket.owner)).order_by(Ticket.id))
    rows: list[dict[str, Any]] = []
    clients: dict[str, dict[str, int]] = {}
    for t in tickets:
        state = _state(t, settings, now)
        paused = t.status in PAUSED
        row = {"ref": t.ref, "subject": t.subject, "client": t.client.name if t.client else None,
               "priority": t.priority, "status": t.status, "policy": t.sla_policy,
               "owner": t.owner.email if t.owner else None, "paused": paused,
               **(state or {"deadline": None, "due": None, "minutes_left": None,
                            "state": "paused" if paused else "no clock"})}
        rows.append(row)
        summary = clients.setdefault(row["client"] or "(unknown senders)",
                                     {"open": 0, "ok": 0, "at_risk": 0, "breached": 0})
        summary["open"] += 1
        if row["state"] in ("ok", "at_risk", "breached"):
            summary[row["state"]] += 1
    return {"at": now.isoformat(), "tickets": rows, "clients": clients}


def sla_explain(ticket: Ticket, settings: Settings, now: datetime) -> list[str]:
    targets = targets_for(settings, ticket)
    lines = [f"#{ticket.ref} {ticket.subject}",
             f"policy {ticket.sla_policy or '-'}, priority {ticket.priority}, "
             f"status {ticket.status}"]
    if targets is None:
        lines.append("no SLA clocks for this ticket (no agreed times: visibility only)")
        return lines
    calendar = calendar_for(settings, ticket, targets.around_the_clock)
    spec = settings.sla.calendar_spec((ticket.client.settings or {}).get("calendar")
                                      if ticket.client else None)
    lines.append(f"calendar: {calendar.tz}, "
                 + ("around the clock" if targets.around_the_clock else
                    ", ".join(f"{d} {h}" for d, h in spec.hours.items()))
                 + (f", holidays {spec.country}{'-' + spec.subdivision if spec.subdivision else ''}"
                    if spec.country else ", no public holidays configured"))
    paused = ticket.paused_minutes or 0
    lines.append(f"paused so far: {paused} business minutes"
                 + (f"; paused now since {ticket.paused_since.isoformat()}"
                    if ticket.paused_since else ""))
    for kind, word in KIND_WORDS.items():
        target = targets.duration(kind)
        due = getattr(ticket, f"{kind}_due")
        lines.append("")
        if target is None:
            lines.append(f"{word}: no target in this policy")
            continue
        if due is None:
            reason = ("already happened" if kind == "first_response" and ticket.first_response_at
                      else "clock paused or stopped" if ticket.status not in ("new", "open")
                      else "starts after the first response")
            lines.append(f"{word}: target {target}; not running ({reason})")
            continue
        if kind == "next_update":
            start = max(t for t in (ticket.last_public_reply_at, ticket.resumed_at,
                                    ticket.created_at) if t)
            total = target
            origin = "since the last reply to the client"
        else:
            start = ticket.created_at
            total = Duration(minutes=target.minutes + paused, working_days=target.working_days)
            origin = "since the ticket opened" + (f", plus {paused} paused minutes"
                                                   if paused else "")
        lines.append(f"{word}: target {target} {origin}")
        lines += [f"  {line}" for line in calendar.explain(start, total)]
        state = "BREACHED" if now >= due else f"{int((due - now).total_seconds() // 60)} min left"
        lines.append(f"  -> due {due.isoformat()} ({state})")
    return lines
