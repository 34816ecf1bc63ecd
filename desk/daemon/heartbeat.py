"""This process's row in the workers table: other workers take over its leases and
claims once it stops beating, and ``desk status`` reads it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from desk.logs import mask_secrets
from desk.periodic import Retry, repeat_async, troubles
from desk.store.db import transaction
from desk.store.models import Worker

log = logging.getLogger("desk.daemon")

HEARTBEAT_SECONDS = 30.0


class Heartbeat:
    def __init__(self, factory: sessionmaker[Session], worker_id: str,
                 clock: Callable[[], datetime]) -> None:
        self.factory = factory
        self.worker_id = worker_id
        self.clock = clock

    def beat(self, stopped: bool = False) -> None:
        """Never raises: a missed beat only matters if many follow."""
        now = self.clock()
        try:
            with transaction(self.factory) as session:
                row = session.get(Worker, self.worker_id)
                if row is None:
                    row = Worker(id=self.worker_id, pid=os.getpid(), host=socket.gethostname(),
                                 started_at=now)
                    session.add(row)
                row.beat_at = now
                row.stopped_at = now if stopped else None
                now_in = [] if stopped else troubles.current()
                # Descriptions quote errors, and errors may quote a URL with a password.
                row.trouble = mask_secrets("; ".join(f"{t.what}: {t.description}"
                                                     for t in now_in)) or None
                row.trouble_since = now_in[0].since if now_in else None
        except Exception as exc:
            log.debug("heartbeat failed: %s", exc)

    async def run(self, stop: threading.Event) -> None:
        """Beat every HEARTBEAT_SECONDS until ``stop`` (or cancelled), and at once when
        a loop's trouble begins or ends, so ``desk status`` tells it within seconds."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def wake_up() -> None:  # called from the thread whose loop is in trouble
            loop.call_soon_threadsafe(wake.set)

        unsubscribe = troubles.listen(wake_up)
        try:
            await repeat_async(lambda: asyncio.to_thread(self.beat), stop,
                               Retry("heartbeat", HEARTBEAT_SECONDS, HEARTBEAT_SECONDS), log,
                               every=HEARTBEAT_SECONDS, wake=wake)
        finally:
            unsubscribe()
