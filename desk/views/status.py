"""`desk status`: is the desk alive and healthy, in one look."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.sla.report import sla_status
from desk.store.models import (
    MailboxState,
    Outbox,
    OutboxStatus,
    Quarantine,
    QuarantineStatus,
    Status,
    Ticket,
    Worker,
)
from desk.work.retention import oldest_raw_mail

ALIVE_WITHIN = timedelta(seconds=90)  # three missed heartbeats
# Trouble older than this makes `desk status` exit 2: a mail server restarting is not news
# for monitoring, a refused secret is.
TROUBLE_ALERT_AFTER = timedelta(minutes=5)


def desk_status(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    def alive(w: Worker) -> bool:
        return w.stopped_at is None and now - w.beat_at <= ALIVE_WITHIN

    workers = [
        {"id": w.id, "pid": w.pid, "host": w.host, "started_at": w.started_at.isoformat(),
         "beat_at": w.beat_at.isoformat(),
         "alive": alive(w),
         "trouble": w.trouble,
         "trouble_since": w.trouble_since.isoformat() if w.trouble_since else None}
        for w in session.scalars(select(Worker).order_by(Worker.beat_at.desc()).limit(20))]
    troubled = [w for w in session.scalars(select(Worker).where(Worker.trouble.is_not(None)))
                if alive(w)]
    last_ingest = session.scalar(select(func.max(MailboxState.last_ingest_at)))
    last_message = session.scalar(select(func.max(Ticket.updated_at)))
    outbox = {status: n for status, n in session.execute(
        select(Outbox.status, func.count()).group_by(Outbox.status))}
    oldest = session.scalar(select(func.min(Outbox.created_at)).where(
        Outbox.status == OutboxStatus.pending))
    sla = sla_status(session, settings, now)
    at_risk = [t["ref"] for t in sla["tickets"] if t["state"] == "at_risk"]
    breached = [t["ref"] for t in sla["tickets"] if t["state"] == "breached"]
    oldest_raw = oldest_raw_mail(session)
    return {
        "at": now.isoformat(),
        "alive": any(w["alive"] for w in workers),
        # What running daemons cannot do now (a refused OAuth2 secret, a mail server down),
        # with the setting to fix where the cause is known.
        "trouble": [{"worker": w.id, "trouble": w.trouble,
                     "since": w.trouble_since.isoformat() if w.trouble_since else None,
                     "alert": w.trouble_since is not None
                     and now - w.trouble_since > TROUBLE_ALERT_AFTER} for w in troubled],
        "workers": workers,
        "last_ingest": last.isoformat() if (last := last_ingest or last_message) else None,
        "outbox": {"pending": outbox.get("pending", 0), "held": outbox.get("held", 0),
                   "failed": outbox.get("failed", 0), "sent": outbox.get("sent", 0),
                   # notices over a staff member's cap, for their window's summary mail
                   "waiting": outbox.get("waiting", 0),
                   "oldest_pending": oldest.isoformat() if oldest else None},
        "quarantine": session.scalar(select(func.count()).select_from(Quarantine)
                                     .where(Quarantine.status == QuarantineStatus.held)) or 0,
        "open_tickets": len(sla["tickets"]),
        # Auto-generated mail that threaded into nothing: no owner, no clock, until promoted.
        "set_aside": session.scalar(select(func.count()).select_from(Ticket)
                                    .where(Ticket.status == Status.auto)) or 0,
        "tickets_at_risk": at_risk,
        "tickets_breached": breached,
        # Retention at work: raw mail older than this is of a ticket still open or not
        # yet closed for [retention] raw_mail_days.
        "oldest_raw_mail": oldest_raw.isoformat() if oldest_raw else None,
        "raw_mail_days": settings.retention.raw_mail_days,
    }
