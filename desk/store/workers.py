"""Which desk processes are alive: a restarted desk must not wait for the leases and
claims of the one that was killed."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from desk.store.models import Worker

STALE_AFTER = timedelta(seconds=90)  # three missed heartbeats


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_dead(worker_id: str | None) -> bool:
    """A worker on this host whose process is gone (ids are ``host:pid:nonce``)."""
    if not worker_id:
        return False
    host, _, rest = worker_id.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def dead_workers(session: Session, now: datetime) -> list[str]:
    rows = session.scalars(select(Worker.id).where(or_(
        Worker.stopped_at.is_not(None), Worker.beat_at < now - STALE_AFTER))).all()
    local = session.scalars(select(Worker.id).where(Worker.stopped_at.is_(None))).all()
    return list({*rows, *(w for w in local if is_dead(w))})
