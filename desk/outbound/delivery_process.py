"""Delivery in a process of its own while `desk run --once` reads a backlog.

Reading a backlog keeps one core busy with Python (parsing, the pipeline, SQLAlchemy);
in the same process the sender gets the interpreter only between the ingest thread's
turns, so most mail went out after the intake. A second process delivers on the other
core meanwhile. It is the same Sender with its own worker id: claims, the sent journal
and the takeover of a dead worker's claims keep delivery exactly-once as with several
desk processes. It dies with its parent (PR_SET_PDEATHSIG, and the pipe's end) and is
only started for a backlog: a handful of messages is not worth a process.

On SQLite the two processes share the write lock; a counter in shared memory lets the
ingest step aside between its batches when the delivery process waits (db.WriterTurns).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import threading
import uuid
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from desk.config.settings import Settings, hide_secrets_of
from desk.logs import setup_logging
from desk.outbound.sender import SendReport

log = logging.getLogger("desk.outbound")

_PR_SET_PDEATHSIG = 1


class DeliveryProcess:
    def __init__(self, settings: Settings, pinned_now: datetime | None,
                 turns: Any | None) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process with threads
        self._conn, child_end = ctx.Pipe()
        self._lock = threading.Lock()
        announce = ctx.RawValue("i", 0) if turns is not None else None
        self._turns = turns
        self._proc = ctx.Process(
            target=_child_main, name="desk-delivery", daemon=True,
            args=(settings, pinned_now, child_end, announce,
                  logging.getLogger().getEffectiveLevel()))
        self._proc.start()
        child_end.close()
        if turns is not None:
            turns.share_with(announce, self._proc.is_alive)
        log.info("delivering from a second process (pid %s) while the backlog is read",
                 self._proc.pid)

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    def wake(self) -> None:
        """New mail is queued (from any thread)."""
        with self._lock, contextlib.suppress(OSError):
            self._conn.send("wake")

    def finish(self) -> SendReport:
        """Deliver everything queued, then end; returns what the process sent. If it died,
        what it did not send is claimed again by whoever delivers next."""
        report = SendReport()
        try:
            with self._lock:
                self._conn.send("finish")
            report = SendReport(*self._conn.recv())
            log.info("delivery process: sent %d, failed %d, will retry %d", report.sent,
                     report.failed, report.retried)
        except (OSError, EOFError) as exc:
            log.warning("delivery process ended early (%s): the rest goes from here", exc)
        finally:
            self._proc.join(timeout=30)
            if self._proc.is_alive():
                self._proc.kill()
            self._conn.close()
            if self._turns is not None:
                self._turns.share_with(None, None)
        return report


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_main(settings: Settings, pinned_now: datetime | None, conn: Connection,
                announce: Any, log_level: int) -> None:
    _die_with_parent()
    # The same masked logging as the parent: no password or secret in a log line.
    setup_logging(logging.getLevelName(log_level), "text")
    hide_secrets_of(settings)
    from desk.outbound.sender import Sender
    from desk.outbound.transport import make_transport
    from desk.store.db import make_engine, session_factory, writer_turns
    from desk.store.models import utcnow

    engine = make_engine(settings.database_url,
                         busy_timeout=settings.desk.busy_timeout_seconds)
    if (turns := writer_turns(engine)) is not None:
        turns.announce = announce

    def clock() -> datetime:
        return pinned_now or utcnow()

    sender = Sender(
        session_factory(engine), make_transport(settings.smtp),
        worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        clock=clock, retry_for=timedelta(hours=settings.smtp.retry_for_hours),
        journal_dir=Path(settings.smtp.journal_dir))
    try:
        asyncio.run(_serve(sender, conn))
    finally:
        engine.dispose()


async def _serve(sender: Any, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    total = SendReport()
    try:
        while True:
            try:
                command = await loop.run_in_executor(None, conn.recv)
                while conn.poll():  # several wakes while we were sending: one round
                    command = "finish" if "finish" in (command, conn.recv()) else command
            except (EOFError, OSError):
                return  # the parent is gone: what we claimed is void, nothing is lost
            try:
                report = await sender.deliver_due()
            except Exception as exc:  # the database busy or gone: the next round retries
                log.warning("delivery process: round failed (%s: %s)", type(exc).__name__, exc)
                report = SendReport()
            total.sent += report.sent
            total.retried += report.retried
            total.failed += report.failed
            if command == "finish":
                conn.send((total.sent, total.retried, total.failed))
                return
    finally:
        await sender.transport.close()
        if sender.journal is not None:
            sender.journal.close()
