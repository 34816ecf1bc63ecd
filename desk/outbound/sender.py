"""Delivers outbox rows: claim, send, journal the server's acceptance, mark sent.

The only way a client can get a mail twice is a crash between the server's 250 and the
journal's fsync; then the retry sends the identical bytes with the same Message-ID.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, exists, false, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from desk.outbound.journal import SentJournal, orphaned_journals, read_ids
from desk.outbound.transport import PermanentFailure, TemporaryFailure, Transport
from desk.periodic import troubles
from desk.store.db import is_postgres, transaction
from desk.store.models import Event, Outbox, OutboxStatus
from desk.store.workers import dead_workers, is_dead

log = logging.getLogger("desk.outbound")

CLAIM_SECONDS = 300
MARK_BATCH = 50

# A client's "was this resolved?" must never arrive before the reply that resolved the
# ticket: it is not claimed while a staff reply to the same person on the same ticket is
# still to be delivered (pending, whoever holds its claim or is retrying it, or held for
# approval). A worker marks what it sent before its next claim, so whichever worker or
# process claims the request does so after the reply was accepted. An indexed probe
# (recipient, kind) for these rare rows only: the claim of other mail pays nothing.
_REPLY = aliased(Outbox)
_NOT_OVERTAKING = or_(Outbox.kind != "feedback_request", ~exists().where(
    _REPLY.recipient == Outbox.recipient, _REPLY.kind == "relay",
    _REPLY.ticket_id == Outbox.ticket_id,
    _REPLY.status.in_((OutboxStatus.pending, OutboxStatus.held))))


def backoff_seconds(attempts: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: 30 s, 1 min, 2 min ... capped at 1 h."""
    base = min(3600.0, 30.0 * 2.0 ** max(0, attempts - 1))
    return base / 2 + (rng.uniform(0, base / 2) if rng else random.uniform(0, base / 2))


@dataclass(slots=True)
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


class Sender:
    def __init__(
        self,
        factory: sessionmaker[Session],
        transport: Transport,
        *,
        worker_id: str,
        clock: Callable[[], datetime],
        retry_for: timedelta = timedelta(hours=48),
        batch: int = 200,
        journal_dir: Path | None = None,
    ) -> None:
        self.factory = factory
        self.transport = transport
        self.worker_id = worker_id
        self.clock = clock
        self.retry_for = retry_for
        self.batch = batch
        # While the server is unwell, delivery as a whole waits (backoff with jitter)
        # instead of trying every queued mail against it.
        self.paused_until: datetime | None = None
        self.incident: str | None = None
        self._failures = 0
        self.journal = SentJournal(journal_dir, worker_id) if journal_dir else None

    def recover(self) -> int:
        """Rows that dead workers (this one's predecessor, after a crash) had handed to the
        server but not yet marked sent: mark them now, so they are not sent again."""
        if self.journal is None:
            return 0
        paths = orphaned_journals(self.journal.directory, self.journal.path,
                                  is_dead)
        marked = 0
        for path in paths:
            ids = read_ids(path)
            if ids:
                with transaction(self.factory) as session:
                    marked += cast("CursorResult[Any]", session.execute(
                        update(Outbox).where(Outbox.id.in_(ids),
                                             Outbox.status == OutboxStatus.pending)
                        .values(status=OutboxStatus.sent, sent_at=self.clock(),
                                claimed_until=None))).rowcount
            path.unlink(missing_ok=True)
        if marked:
            log.info("outbox: %d mails a crashed worker had delivered are marked sent", marked)
        return marked

    def _claim(self) -> list[Outbox]:
        # Every round, not once: a worker can die while this one runs (a delivery process
        # of a backlog, another desk on the same database) and leave a journal behind.
        self.recover()
        now = self.clock()
        with transaction(self.factory) as session:
            dead = dead_workers(session, now)
            # A worker can be killed after claiming but before its first heartbeat row
            # was written; its claims name a process on this host that is gone.
            dead += [w for w in session.scalars(
                select(Outbox.claimed_by).where(Outbox.status == OutboxStatus.pending,
                                                Outbox.claimed_until >= now).distinct())
                if w and w not in dead and is_dead(w)]
            q = (
                select(Outbox)
                .where(
                    Outbox.status == OutboxStatus.pending,
                    Outbox.next_attempt_at <= now,
                    # A claim by a killed worker is void at once: its mail may have been
                    # accepted already, so it goes again as the identical message.
                    or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now,
                        Outbox.claimed_by.in_(dead) if dead else false()),
                    _NOT_OVERTAKING,
                )
                .order_by(Outbox.id)
                .limit(self.batch)
            )
            if is_postgres(session.get_bind()):  # type: ignore[arg-type]
                q = q.with_for_update(skip_locked=True)
            rows = list(session.scalars(q))
            for row in rows:
                row.claimed_by = self.worker_id
                row.claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
            return rows

    def _mark_sent(self, row_ids: list[int]) -> None:
        with transaction(self.factory) as session:
            session.execute(
                update(Outbox)
                .where(Outbox.id.in_(row_ids))
                .values(status=OutboxStatus.sent, sent_at=self.clock(), claimed_until=None,
                        last_error=None)
            )

    def _mark_failed(self, row: Outbox, error: str, permanent: bool) -> bool:
        """Returns True when the row is now failed for good."""
        now = self.clock()
        with transaction(self.factory) as session:
            live = session.get(Outbox, row.id)
            assert live is not None
            live.attempts += 1
            live.last_error = error[:2000]
            live.claimed_until = None
            expired = now - live.created_at >= self.retry_for
            if permanent or expired:
                live.status = OutboxStatus.failed
                if live.ticket_id is not None:
                    why = "refused permanently" if permanent else "retries exhausted"
                    session.add(Event(
                        ticket_id=live.ticket_id, at=now, kind="delivery_failed",
                        detail=f"{live.kind} mail to {', '.join(live.rcpt_to)} {why}: {error}",
                        data={"outbox_id": live.id},
                    ))
                return True
            live.next_attempt_at = now + timedelta(seconds=backoff_seconds(live.attempts))
            return False

    async def deliver_due(self, stop: threading.Event | None = None) -> SendReport:
        """Send everything due now; returns counts. Loops until nothing is due, or until
        ``stop`` is set (checked between messages, never in the middle of one)."""
        report = SendReport()
        if self.paused_until is not None and self.clock() < self.paused_until:
            return report
        while stop is None or not stop.is_set():
            rows = self._claim()
            if not rows:
                break
            pending = list(rows)
            try:
                keep_going = await self._send_rows(pending, report, stop)
            finally:
                if pending:  # not attempted (stop, server trouble, or an error): unclaim
                    self._release(pending)
            if not keep_going:
                break
        return report

    async def _send_rows(
        self, pending: list[Outbox], report: SendReport, stop: threading.Event | None
    ) -> bool:
        """Send rows from the front of ``pending``, removing each once it is settled.
        Returns False when this round should end early."""
        accepted: list[int] = []  # journaled, not yet marked sent in the database
        try:
            return await self._send_each(pending, report, stop, accepted)
        finally:
            if accepted:
                self._mark_sent(accepted)  # if this raises, the journal keeps the ids
            if self.journal is not None:
                self.journal.forget()

    async def _send_each(self, pending: list[Outbox], report: SendReport,
                         stop: threading.Event | None, accepted: list[int]) -> bool:
        while pending:
            if stop is not None and stop.is_set():
                return False
            row = pending[0]
            try:
                await self.transport.send(row.mail_from, list(row.rcpt_to), row.raw)
            except (TemporaryFailure, PermanentFailure) as exc:
                permanent = isinstance(exc, PermanentFailure)
                pending.pop(0)
                if self._mark_failed(row, str(exc), permanent):
                    report.failed += 1
                    log.warning("outbox %s to %s failed for good: %s", row.id, row.recipient, exc)
                else:
                    report.retried += 1
                if not permanent:
                    self._server_unwell(str(exc))
                    return False  # leave the rest queued
                continue
            pending.pop(0)
            report.sent += 1
            self._server_well()
            if self.journal is None:
                self._mark_sent([row.id])
                continue
            # Durable in one fsync, before any lock wait. With the journal behind them,
            # rows are marked sent in groups: one commit per MARK_BATCH mails, not per mail.
            self.journal.record(row.id)
            accepted.append(row.id)
            if len(accepted) >= MARK_BATCH:
                self._mark_sent(accepted)
                accepted.clear()
        return True

    def _server_unwell(self, error: str) -> None:
        self._failures += 1
        wait = backoff_seconds(self._failures) / 2  # quicker first retries than per mail
        self.paused_until = self.clock() + timedelta(seconds=wait)
        if self.incident is None:
            self.incident = error
            log.warning("mail server unavailable (%s); delivery paused, retrying with backoff",
                        error)
        troubles.report("outbox", f"mail server unavailable ({error})")

    def _server_well(self) -> None:
        if self.incident is not None:
            log.info("mail server back after: %s", self.incident)
            troubles.clear("outbox")
        self.incident, self.paused_until, self._failures = None, None, 0

    def _release(self, rows: list[Outbox]) -> None:
        ids = [r.id for r in rows]
        with transaction(self.factory) as session:
            session.execute(
                update(Outbox)
                .where(Outbox.id.in_(ids), Outbox.status == OutboxStatus.pending,
                       Outbox.claimed_by == self.worker_id)
                .values(claimed_until=None)
            )
