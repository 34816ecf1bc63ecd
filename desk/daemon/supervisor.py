"""The daemon: its loops, the intake it starts, and how it stops (``desk run``)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.daemon.heartbeat import Heartbeat
from desk.daemon.intakes import make_sources
from desk.daemon.once import RunSummary, sync_sources
from desk.inbox.intake import INGEST_BATCH
from desk.outbound.delivery_process import DeliveryProcess
from desk.outbound.sender import Sender
from desk.outbound.transport import make_transport
from desk.periodic import Retry, headline, repeat_async
from desk.reports.scheduler import run_scheduled
from desk.store.db import (
    current_revision,
    head_revision,
    is_transient,
    make_engine,
    session_factory,
    writer_turns,
)
from desk.store.models import utcnow
from desk.work.escalation import Clock
from desk.work.ingest import Ingestor
from desk.work.notice_summary import send_due_summaries
from desk.work.retention import PruneReport, prune_raw_mail

log = logging.getLogger("desk.daemon")

SENDER_IDLE_SECONDS = 5.0
CLOCK_SECONDS = 30.0
# Raw mail ages in days: looking once an hour is plenty, and costs next to nothing.
RETENTION_SECONDS = 3600.0


def _share_the_interpreter() -> None:
    """The ingest thread is busy Python; the event loop (sender, LMTP, clock) mostly waits
    on sockets and then needs the interpreter back. The default 5 ms between handovers
    costs the loop up to 5 ms at every SMTP reply, which during a backlog left nearly all
    mail to go out after the intake. 1 ms keeps delivery moving alongside."""
    sys.setswitchinterval(0.001)


class SchemaOutOfDate(Exception):
    pass


def _outbox_trouble(exc: Exception) -> str:
    # Whatever failed, delivery pauses and tries again: one line per incident, no traceback.
    return f"cannot reach the database ({headline(exc)})"


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
        self.heartbeat = Heartbeat(self.factory, self.worker_id, clock)
        self.stop = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backlog_delivery = False  # run --once may deliver from a second process
        self._delivery: DeliveryProcess | None = None
        self.sources = make_sources(settings, self.ingestor, self.factory,
                                    worker_id=self.worker_id, clock=clock,
                                    on_ingested=self._notify_sender)
        self.clock_task = Clock(self.factory, settings, clock)
        self.sender = Sender(
            self.factory, make_transport(settings.smtp), worker_id=self.worker_id, clock=clock,
            retry_for=timedelta(hours=settings.smtp.retry_for_hours),
            journal_dir=Path(settings.smtp.journal_dir),
        )

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

    # -- once -----------------------------------------------------------------------
    async def run_once(self) -> RunSummary:
        """Process everything pending, deliver the outbox, exit (tests and cron)."""
        summary = RunSummary()
        _share_the_interpreter()
        self._backlog_delivery = True
        self.heartbeat.beat()
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        ingest_done = asyncio.Event()
        # Mail goes out while the backlog is still being read (the ingest thread wakes the
        # sender after every committed batch): the SMTP server's time overlaps ours.
        delivering = asyncio.create_task(self._deliver_until(ingest_done, summary))
        try:
            await sync_sources(self.sources, self.stop, summary)
        finally:
            ingest_done.set()
            self._wake.set()
            await delivering
            if self._delivery is not None:
                summary.add_send(await asyncio.to_thread(self._delivery.finish))
                self._delivery = None
            for source in self.sources:
                await asyncio.to_thread(source.close)
        try:
            summary.clock = await asyncio.to_thread(self.clock_task.tick)
            summary.reports = await asyncio.to_thread(
                run_scheduled, self.factory, self.settings, self.clock())
        except Exception as exc:  # a clock failure must not stop delivery of what is queued
            if not is_transient(exc):
                log.exception("clock tick failed")
            summary.errors.append(f"clock: {exc}")
        try:
            # Notices that waited for a summary (a flood) go now: no loop of this run will
            # be there when their window ends (desk/work/notice_summary.py). After the clock:
            # the notices its tick held back (assignments on escalation) go too.
            summary.summaries = await asyncio.to_thread(
                send_due_summaries, self.factory, self.settings, self.clock(), everything=True)
        except Exception as exc:  # they keep waiting for the next run
            if not is_transient(exc):
                log.exception("notice summaries failed")
            summary.errors.append(f"notice summaries: {exc}")
        try:
            summary.pruned = (await asyncio.to_thread(self._prune)).total
        except Exception as exc:  # neither may pruning: the bytes wait for the next run
            if not is_transient(exc):
                log.exception("pruning raw mail failed")
            summary.errors.append(f"retention: {exc}")
        summary.add_send(await self.sender.deliver_due())
        await self.sender.transport.close()
        self._close_journal()
        self.heartbeat.beat(stopped=True)
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

    # -- forever --------------------------------------------------------------------
    async def _deliver_round(self) -> None:
        report = await self.sender.deliver_due(self.stop)
        if report.sent or report.failed:
            log.info("outbox: sent %d, failed %d, will retry %d", report.sent,
                     report.failed, report.retried)

    async def _clock_round(self) -> None:
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
        # Last, so that trouble here never holds up the SLA clock: the notices of windows
        # that have ended, which waited for their summary (desk/work/notice_summary.py).
        if summaries := await asyncio.to_thread(send_due_summaries, self.factory,
                                                self.settings, self.clock()):
            log.info("notice floods: %d summaries queued", summaries)
            self._notify_sender()

    def _prune(self) -> PruneReport:
        return prune_raw_mail(self.factory, self.settings, self.clock(), stop=self.stop.is_set)

    async def _retention_round(self) -> None:
        report = await asyncio.to_thread(self._prune)
        if report.total:
            log.info("retention: deleted the raw bytes of %d received and %d sent mails "
                     "(tickets closed over %d days ago)", report.raw_messages,
                     report.sent_mail, self.settings.retention.raw_mail_days)

    def _loops(self, wake: asyncio.Event) -> list[asyncio.Task[None]]:
        # The sender waits at most SENDER_IDLE_SECONDS, and less when woken (new mail
        # committed, a stop): also after a failure, so no backoff beyond that.
        sender = repeat_async(
            self._deliver_round, self.stop,
            Retry("outbox", SENDER_IDLE_SECONDS, SENDER_IDLE_SECONDS, _outbox_trouble), log,
            every=SENDER_IDLE_SECONDS, wake=wake)
        clock = repeat_async(self._clock_round, self.stop,
                             Retry("clock", CLOCK_SECONDS, CLOCK_SECONDS), log,
                             every=CLOCK_SECONDS)
        retention = repeat_async(self._retention_round, self.stop,
                                 Retry("retention", CLOCK_SECONDS, RETENTION_SECONDS), log,
                                 every=RETENTION_SECONDS)
        return [asyncio.create_task(sender, name="sender"),
                asyncio.create_task(self.heartbeat.run(self.stop), name="heartbeat"),
                asyncio.create_task(clock, name="clock"),
                asyncio.create_task(retention, name="retention")]

    async def run_forever(self) -> None:
        _share_the_interpreter()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # Registered before any work is claimed, so other workers can tell if it dies.
        await asyncio.to_thread(self.heartbeat.beat)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self.request_stop)
        sender, heartbeat, clock_task, retention = self._loops(self._wake)
        try:
            intakes = [await source.start(self.stop) for source in self.sources]
        except BaseException:
            self.stop.set()  # an intake that cannot start (port taken): the others stop too
            raise
        log.info("desk %s started: %s intake, %s delivery", self.worker_id,
                 "+".join(source.name for source in self.sources), self.settings.smtp.transport)
        stopper = asyncio.create_task(asyncio.to_thread(self.stop.wait), name="stop")
        await asyncio.wait([stopper, sender, *intakes], return_when=asyncio.FIRST_COMPLETED)
        self.stop.set()
        log.info("stopping: finishing work in flight")
        # Each intake finishes the message it holds (a committed message is always
        # acknowledged at the source; LMTP refuses new connections but completes a
        # delivery in progress); the sender finishes the mail it is sending.
        heartbeat.cancel()
        clock_task.cancel()
        retention.cancel()
        _, late = await asyncio.wait([*intakes, sender], timeout=30)
        for t in late:
            t.cancel()  # only after the grace period: queued mail is resent identically
        await asyncio.gather(*intakes, sender, heartbeat, clock_task, retention, stopper,
                             return_exceptions=True)
        await self.sender.transport.close()
        self._close_journal()
        self.heartbeat.beat(stopped=True)
        log.info("desk %s stopped", self.worker_id)

    def request_stop(self) -> None:
        self.stop.set()
        if self._wake is not None:
            self._wake.set()
