"""IMAP intake (imapclient, blocking: runs in its own thread).

Messages are fetched by UID with BODY.PEEK[] (so fetching never marks them read),
ingested, and flagged ``\\Seen`` (or moved to ``processed_folder``) only after the
transaction that recorded them committed. Receipts keyed by
(mailbox, UIDVALIDITY, UID) make any re-fetch harmless; a UIDVALIDITY change
re-scans the folder and de-duplicates by Message-ID. The pieces live in
``desk.inbox.sources.imap``: the connection, the lease, the UID cursor, the wait for mail.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import MailboxSection
from desk.inbox.intake import INGEST_BATCH, Ingest, IngestResult, OnIngested, TransientError, ignore
from desk.inbox.sources import in_thread
from desk.inbox.sources.imap.cursor import UidCursor
from desk.inbox.sources.imap.idle import more_waiting, wait_for_mail
from desk.inbox.sources.imap.lease import LeaseHeld, MailboxLease
from desk.inbox.sources.imap.session import ConnectionErrors, ImapSession, acknowledge
from desk.periodic import Pause, Retry, repeat

log = logging.getLogger("desk.inbox")

FETCH_BATCH = 200
STANDBY_SECONDS = 5


def _trouble(exc: Exception) -> str | None:
    if isinstance(exc, TransientError):
        return f"database unavailable ({exc})"
    if isinstance(exc, ConnectionErrors):
        return f"IMAP connection lost ({exc})"
    return None  # never let intake die quietly: logged with its traceback, then reconnect


class ImapSource:
    name = "imap"

    def __init__(
        self,
        settings: MailboxSection,
        ingestor: Ingest,
        factory: sessionmaker[Session],
        *,
        worker_id: str,
        clock: Callable[[], datetime],
        on_ingested: OnIngested = ignore,
    ) -> None:
        self.s = settings
        self.ingestor = ingestor
        self.on_ingested = on_ingested
        self.key = (f"imap:{settings.username}@{settings.host}:{settings.effective_port}"
                    f"/{settings.folder}")
        self.session = ImapSession(settings)
        self.lease = MailboxLease(factory, self.key, worker_id=worker_id, clock=clock)
        self.cursor = UidCursor(factory, self.key, clock=clock)

    def sync_once(self, stop: threading.Event | None = None) -> list[IngestResult]:
        """Ingest everything pending now. Raises on connection or database trouble."""
        if not self.lease.acquire():
            raise LeaseHeld(self.key)
        client = self.session.client()
        known_validity, known_last = self.cursor.position()
        uidvalidity, uids = self.cursor.pending(client, self.s.folder)
        # After a UIDVALIDITY change the old position means nothing.
        start_uid = known_last if known_validity == uidvalidity else 0
        results: list[IngestResult] = []
        for start in range(0, len(uids), FETCH_BATCH):
            if stop is not None and stop.is_set():
                break
            batch = uids[start:start + FETCH_BATCH]
            fetched = client.fetch(batch, ["BODY.PEEK[]"])
            done: list[int] = []
            gap: int | None = None  # the first UID we could not read: never skip past it
            items: list[tuple[int, str, bytes]] = []
            for uid in batch:
                data = fetched.get(uid)
                if data is None or b"BODY[]" not in data:
                    # Expunged meanwhile, or not readable yet: look again next time.
                    log.info("%s: UID %s not fetched; will look again", self.key, uid)
                    gap = uid if gap is None else gap
                    continue
                items.append((uid, f"{self.key}:{uidvalidity}:{uid}", data[b"BODY[]"] or b""))
            fetched.clear()  # the raw mail now lives in items only: keep memory flat
            try:
                for first in range(0, len(items), INGEST_BATCH):
                    if stop is not None and stop.is_set():
                        gap = items[first][0] if gap is None else min(gap, items[first][0])
                        break
                    chunk = items[first:first + INGEST_BATCH]
                    results += self.ingestor.ingest_batch(
                        [(key, raw) for _, key, raw in chunk], source=self.name)
                    done += [uid for uid, _, _ in chunk]
                    self.on_ingested(len(chunk))  # the sender starts on this mail now
            finally:
                # Whatever committed is acknowledged at the source, even if a later
                # chunk of the batch hit a database outage.
                if done:
                    acknowledge(client, done, self.s.processed_folder)
                    high = max(done) if gap is None else min(max(done), gap - 1)
                    self.cursor.save(uidvalidity, max(high, start_uid))
                    self.on_ingested(0)
            if gap is not None:
                break  # the rest waits for the next sync, after the gap
            self.lease.acquire()  # renew during long backlogs
        if not uids:
            self.cursor.save(uidvalidity, self.cursor.position()[1])
        return results

    # -- long-running loop ----------------------------------------------------------
    def _round(self, stop: threading.Event) -> Pause:
        try:
            self.sync_once(stop)
        except LeaseHeld:
            # A standby worker: look again soon, so a dead holder is replaced quickly.
            self.session.close()
            return lambda: stop.wait(STANDBY_SECONDS)
        return lambda: self._wait_for_mail(stop)

    def _wait_for_mail(self, stop: threading.Event) -> None:
        client = self.session.client()
        if not more_waiting(client, self.cursor.position()[1]):
            wait_for_mail(client, stop, self.s)

    def _after_failure(self, exc: Exception) -> None:
        if not isinstance(exc, TransientError):  # else the connection is fine: keep it
            self.session.close()

    def run(self, stop: threading.Event) -> None:
        """Sync, wait, repeat until ``stop``; reconnects with backoff, never raises."""
        retry = Retry(self.key, first=1.0, cap=30.0, expected=_trouble)
        repeat(lambda: self._round(stop), stop, retry, log, on_failure=self._after_failure)
        self.close()

    async def start(self, stop: threading.Event) -> asyncio.Task[None]:
        return in_thread(self.run, stop, self.name)

    def close(self) -> None:
        self.session.close()
        try:
            self.lease.release()
        except Exception:  # the database may be down too: the lease expires by itself
            log.debug("could not release lease", exc_info=True)
