"""Promises kept: of the tickets that had agreed times during a window, how many met them.
One definition for the client's report and the managers' digest, so the two never show a
client different numbers for the same week."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.sla.deadlines import targets_for
from desk.store.models import OPEN_STATUSES, Event, Ticket


@dataclass(frozen=True, slots=True)
class Promises:
    # Tickets with agreed times (an SLA policy with targets for their priority) that were
    # open at some moment of the window.
    with_clock: int
    # Of those, the ones without a breach recorded in the window.
    kept: int
    # Tickets with a breach recorded in the window (any ticket of the set asked about).
    breached: int

    @property
    def kept_pct(self) -> int | None:
        """A whole percentage; None when no ticket had agreed times."""
        return round(100 * self.kept / self.with_clock) if self.with_clock else None


def promises_kept(session: Session, settings: Settings, tickets: Iterable[Ticket],
                  start: datetime, end: datetime) -> Promises:
    tickets = list(tickets)
    ids = [t.id for t in tickets]
    breached = set(session.scalars(select(Event.ticket_id).where(
        Event.ticket_id.in_(ids), Event.kind == "sla_breached", Event.at >= start,
        Event.at < end))) if ids else set()
    active = [t for t in tickets if t.sla_policy and t.created_at < end
              and (t.status in OPEN_STATUSES or (t.resolved_at or end) >= start)]
    with_clock = {t.id for t in active if targets_for(settings, t) is not None}
    return Promises(len(with_clock), len(with_clock - breached), len(breached))
