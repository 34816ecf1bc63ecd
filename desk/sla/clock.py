"""When a ticket next needs the clock task: its deadlines recomputed and the earliest
action not yet done (a warning, a ladder step, a nudge, an ETA warning).

Pure computation over the ticket; the clock task that acts on it (and sends mail) is
``desk/work/escalation.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import object_session

from desk.config.settings import Settings
from desk.sla.deadlines import recompute
from desk.sla.schedule import schedule
from desk.store.models import Estimate, EstimateStatus, Ticket

# Actions that happen once per deadline, remembered in ``ticket.clock_done``.
ONCE_KINDS = ("warn", "breach", "eta_warning", "estimate_reminder")


def estimate_since(ticket: Ticket) -> datetime | None:
    session = object_session(ticket)
    if session is None or ticket.id is None or ticket.status != "awaiting_approval":
        return None  # a ticket not yet written has no estimates
    return session.scalar(select(Estimate.created_at).where(
        Estimate.ticket_id == ticket.id, Estimate.status == EstimateStatus.pending)
        .order_by(Estimate.id.desc()).limit(1))


def next_clock_at(ticket: Ticket, settings: Settings, checked: datetime) -> datetime | None:
    done = set(ticket.clock_done or [])
    times = [a.at for a in schedule(ticket, settings, checked, estimate_since(ticket))
             if a.key not in done and (a.kind in ONCE_KINDS or a.at > checked)]
    return min(times) if times else None


def refresh(ticket: Ticket, settings: Settings, now: datetime) -> None:
    """Recompute deadlines and the next clock time (after any change to the ticket)."""
    recompute(ticket, settings, now)
    checked = ticket.clock_checked_at or (ticket.created_at - timedelta(seconds=1))
    ticket.next_clock_at = next_clock_at(ticket, settings, checked)
