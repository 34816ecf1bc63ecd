"""Time spent and retainer allowance per client and month (the client's own month)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desk.store.models import Client, TimeEntry


@dataclass(frozen=True, slots=True)
class Usage:
    used_minutes: int
    allowance_minutes: int | None

    @property
    def used_hours(self) -> float:
        return round(self.used_minutes / 60, 2)

    @property
    def allowance_hours(self) -> float | None:
        return None if self.allowance_minutes is None else round(self.allowance_minutes / 60, 2)

    @property
    def left_hours(self) -> float | None:
        if self.allowance_minutes is None:
            return None
        return round((self.allowance_minutes - self.used_minutes) / 60, 2)


def month_start(client: Client, now: datetime, default_tz: str) -> datetime:
    """The start of the client's month: in the client's zone, else the agency's (the zone
    its acknowledgements and reports speak in), never UTC by accident."""
    local = now.astimezone(ZoneInfo(client.timezone or default_tz))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_usage(session: Session, client: Client, now: datetime, kind: str = "spent", *,
                zone: str) -> Usage:
    """``zone``: the agency's time zone, for clients without one of their own."""
    start = month_start(client, now, zone)
    used = session.scalar(select(func.coalesce(func.sum(TimeEntry.minutes), 0)).where(
        TimeEntry.client_id == client.id, TimeEntry.kind == kind, TimeEntry.at >= start,
        TimeEntry.at <= now)) or 0
    allowance = int(client.hours_per_month * 60) if client.hours_per_month else None
    return Usage(int(used), allowance)
