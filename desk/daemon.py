"""The asyncio supervisor behind ``desk run``.

Ingest runs in its own thread (imapclient and the pipeline are blocking); the sender
delivers the outbox on the event loop over one reused SMTP connection. On SIGTERM or
SIGINT the daemon stops taking work, finishes what is in flight, and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from desk.config import Settings
from desk.inbox.imap_source import INGEST_BATCH, ImapSource, LeaseHeld
from desk.inbox.lmtp_source import start_lmtp
from desk.inbox.maildir_source import MaildirSource
from desk.outbound.delivery_process import DeliveryProcess
from desk.outbound.sender import Sender, SendReport
from desk.outbound.transport import make_transport
from desk.reports.scheduler import run_scheduled
from desk.store.db import (
    current_revision,
    head_revision,
    is_transient,
    make_engine,
    session_factory,
    transaction,
    writer_turns,
)
from desk.store.models import Worker, utcnow
from desk.work.escalation import Clock, ClockReport
from desk.work.ingest import Ingestor, IngestResult, TransientError

log = logging.getLogger("desk.daemon")

SENDER_IDLE_SECONDS = 5.0
CLOCK_SECONDS = 30.0
MAILDIR_POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 30.0


def _share_the_interpreter() -> None:
    """The ingest thread is busy Python; the event loop (sender, LMTP, clock) mostly waits
    on sockets and then needs the interpreter back. The default 5 ms between handovers
    costs the loop up to 5 ms at every SMTP reply, which during a backlog left nearly all
    mail to go out after the intake. 1 ms keeps delivery moving alongside."""
    sys.setswitchinterval(0.001)


class SchemaOutOfDate(Exception):
    pass


@dataclass(slots=True)
class RunSummary:
    ingested: int = 0
    new_tickets: int = 0
    duplicates: int = 0
    quarantined: int = 0
    sent: int = 0
    send_failures: int = 0
    clock: ClockReport = field(default_factory=ClockReport)
    reports: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_ingest(self, results: list[IngestResult]) -> None:
        for r in results:
            if r.outcome == "ticketed":
                self.ingested += 1
                self.new_tickets += r.new_ticket
            elif r.outcome == "duplicate":
                self.duplicates += 1
            elif r.outcome == "quarantined":
                self.quarantined += 1

    def add_send(self, report: SendReport) -> None:
        self.sent += report.sent
        self.send_failures += report.failed

    def line(self) -> str:
        c = self.clock
        return (f"ingested {self.ingested} ({self.new_tickets} new tickets, {self.duplicates} "
                f"duplicates, {self.quarantined} quarantined); clock: {c.warnings} warnings, "
                f"{c.escalations} escalations, {c.nudges} nudges, {c.eta_warnings} ETA warnings"
                f"; {self.reports} reports; sent {self.sent}, {self.send_failures} failed")


def check_schema(engine: Engine) -> None:
    have, want = current_revision(engine), head_revision()
    if have != want:
        raise SchemaOutOfDate(
            f"database schema is at {have or 'nothing'}, this desk needs {want}: run `desk init`"
        )


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        engine: Engine | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = engine or make_engine(settings.database_url,
                                            busy_timeout=settings.desk.busy_timeout_seconds)
        check_schema(self.engine)
        self.factory: sessionmaker[Session] = session_factory(self.engine)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ingestor = Ingestor(self.factory, settings, clock)
        self.stop = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backlog_delivery = False  # run --once may deliver from a second process
        self._delivery: DeliveryProcess | None = None
        self.source = self._make_source()
        self.clock_task = Clock(self.factory, settings, clock)
        self.sender = Sender(
            self.factory, make_transport(settings.smtp), worker_id=self.worker_id, clock=clock,
            retry_for=timedelta(hours=settings.smtp.retry_for_hours),
            journal_dir=Path(settings.smtp.journal_dir),
        )

    def _make_source(self) -> ImapSource | MaildirSource | None:
        mb = self.settings.mailbox
        if mb is None:
            return None
        if mb.source == "imap":
            return ImapSource(mb, self.ingestor, self.factory, worker_id=self.worker_id,
                              clock=self.clock, on_ingested=self._notify_sender)
        assert mb.path is not None
        return MaildirSource(Path(mb.path), self.ingestor)

    def _notify_sender(self, count: int = 0) -> None:
        """Called from the ingest thread (``count``: messages just committed): wake the
        sender without waiting for its timer."""
        if self._backlog_delivery and self._delivery is None and count >= INGEST_BATCH:
            # A full batch: a backlog is being read. Delivery moves to a core of its own.
            pinned = None if self.clock is utcnow else self.clock()
            try:
                self._delivery = DeliveryProcess(self.settings, pinned,
                                                 writer_turns(self.engine))
            except Exception as exc:  # no second process: this one delivers, as before
                log.warning("cannot start a delivery process (%s); delivering from here", exc)
                self._backlog_delivery = False
        if self._delivery is not None and self._delivery.alive:
            self._delivery.wake()
        elif self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- heartbeat ------------------------------------------------------------------
    def _beat(self, stopped: bool = False) -> None:
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
        except Exception as exc:
            log.debug("heartbeat failed: %s", exc)

    # -- once -----------------------------------------------------------------------
    async def run_once(self) -> RunSummary:
        """Process everything pending, deliver the outbox, exit (tests and cron)."""
        summary = RunSummary()
        _share_the_interpreter()
        self._backlog_delivery = True
        self._beat()
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        ingest_done = asyncio.Event()
        # Mail goes out while the backlog is still being read (the ingest thread wakes the
        # sender after every committed batch): the SMTP server's time overlaps ours.
        delivering = asyncio.create_task(self._deliver_until(ingest_done, summary))
        try:
            if self.source is not None:
                started = time.monotonic()
                summary.add_ingest(await asyncio.to_thread(self.source.sync_once, self.stop))
                log.info("intake: %d messages in %.2f s", summary.ingested + summary.duplicates
                         + summary.quarantined, time.monotonic() - started)
        except TransientError as exc:
            summary.errors.append(f"database unavailable: {exc}")
        except LeaseHeld:
            # Normal with several workers: another one is ingesting this mailbox right now.
            summary.notes.append("another desk process holds the mailbox lease: "
                                 "this run delivered and ran the clock only")
        finally:
            ingest_done.set()
            self._wake.set()
            await delivering
            if self._delivery is not None:
                summary.add_send(await asyncio.to_thread(self._delivery.finish))
                self._delivery = None
            if isinstance(self.source, ImapSource):
                await asyncio.to_thread(self._close_source)
        try:
            summary.clock = await asyncio.to_thread(self.clock_task.tick)
            summary.reports = await asyncio.to_thread(
                run_scheduled, self.factory, self.settings, self.clock())
        except Exception as exc:  # a clock failure must not stop delivery of what is queued
            if not is_transient(exc):
                log.exception("clock tick failed")
            summary.errors.append(f"clock: {exc}")
        summary.add_send(await self.sender.deliver_due())
        await self.sender.transport.close()
        self._close_journal()
        self._beat(stopped=True)
        return summary

    async def _deliver_until(self, done: asyncio.Event, summary: RunSummary) -> None:
        assert self._wake is not None
        while not done.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self._delivery is not None and self._delivery.alive:
                continue  # the delivery process has it
            try:
                summary.add_send(await self.sender.deliver_due(self.stop))
            except Exception as exc:  # the final round after the clock tries again
                if not is_transient(exc):
                    log.exception("delivery during intake failed")

    def _close_journal(self) -> None:
        if self.sender.journal is not None:
            self.sender.journal.close()

    def _close_source(self) -> None:
        assert isinstance(self.source, ImapSource)
        self.source.close()
        self.source.release_lease()

    # -- forever --------------------------------------------------------------------
    def _ingest_thread(self) -> None:
        if self.source is None:
            self.stop.wait()
            return
        if isinstance(self.source, ImapSource):
            self.source.run(self.stop)
            return
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if self.source.sync_once(self.stop):
                    self._notify_sender()
                backoff = 1.0
                self.stop.wait(MAILDIR_POLL_SECONDS)
            except TransientError as exc:
                log.warning("database unavailable (%s); retrying in %.0f s", exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
            except Exception:  # a broken file or folder must not stop intake for good
                log.exception("maildir intake failed; retrying")
                self.stop.wait(backoff)

    async def _sender_loop(self) -> None:
        assert self._wake is not None
        incident: str | None = None
        while not self.stop.is_set():
            self._wake.clear()
            try:
                report = await self.sender.deliver_due(self.stop)
                if report.sent or report.failed:
                    log.info("outbox: sent %d, failed %d, will retry %d", report.sent,
                             report.failed, report.retried)
                if incident is not None:
                    log.info("outbox: database back after: %s", incident)
                    incident = None
            except Exception as exc:  # a database hiccup must not stop delivery
                if incident is None:  # one line per incident, not one per round
                    incident = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    log.warning("outbox: cannot reach the database (%s); retrying", incident)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SENDER_IDLE_SECONDS)

    async def _clock_loop(self) -> None:
        while not self.stop.is_set():
            try:
                report = await asyncio.to_thread(self.clock_task.tick)
                reports = await asyncio.to_thread(run_scheduled, self.factory, self.settings,
                                                  self.clock())
                if reports:
                    log.info("scheduled reports: %d queued", reports)
                    self._notify_sender()
                if report.tickets:
                    log.info("clock: %d tickets, %d warnings, %d escalations, %d nudges, "
                             "%d ETA warnings", report.tickets, report.warnings,
                             report.escalations, report.nudges, report.eta_warnings)
                    self._notify_sender()
            except Exception:  # the next tick tries again
                log.exception("clock tick failed; retrying")
            await asyncio.sleep(CLOCK_SECONDS)

    async def _heartbeat_loop(self) -> None:
        while not self.stop.is_set():
            await asyncio.to_thread(self._beat)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def run_forever(self) -> None:
        _share_the_interpreter()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # Registered before any work is claimed, so other workers can tell if it dies.
        await asyncio.to_thread(self._beat)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self.request_stop)
        ingest = asyncio.create_task(asyncio.to_thread(self._ingest_thread), name="ingest")
        sender = asyncio.create_task(self._sender_loop(), name="sender")
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        clock_task = asyncio.create_task(self._clock_loop(), name="clock")
        lmtp = None
        if self.settings.intake.lmtp is not None:
            lmtp_cfg = self.settings.intake.lmtp
            lmtp = await start_lmtp(lmtp_cfg.host, lmtp_cfg.port, self.ingestor,
                                    self._notify_sender,
                                    data_size_limit=self.settings.intake.max_message_bytes * 2)
        intakes = [self.settings.mailbox.source] if self.settings.mailbox else []
        intakes += ["lmtp"] if self.settings.intake.lmtp else []
        log.info("desk %s started: %s intake, %s delivery", self.worker_id,
                 "+".join(intakes), self.settings.smtp.transport)
        stopper = asyncio.create_task(asyncio.to_thread(self.stop.wait), name="stop")
        await asyncio.wait([stopper, ingest, sender], return_when=asyncio.FIRST_COMPLETED)
        self.stop.set()
        log.info("stopping: finishing work in flight")
        # The ingest thread finishes the message it holds (a committed message is always
        # acknowledged at the source); the sender finishes the mail it is sending.
        heartbeat.cancel()
        clock_task.cancel()
        if lmtp is not None:
            lmtp.close()  # new connections refused; a delivery in progress completes
            await lmtp.wait_closed()
        _, late = await asyncio.wait([ingest, sender], timeout=30)
        for t in late:
            t.cancel()  # only after the grace period: queued mail is resent identically
        await asyncio.gather(sender, heartbeat, clock_task, stopper, return_exceptions=True)
        await self.sender.transport.close()
        self._close_journal()
        self._beat(stopped=True)
        log.info("desk %s stopped", self.worker_id)

    def request_stop(self) -> None:
        self.stop.set()
        if self._wake is not None:
            self._wake.set()
