"""IMAP intake (imapclient, blocking: runs in its own thread).

Messages are fetched by UID with BODY.PEEK[] (so fetching never marks them read),
ingested, and flagged ``\\Seen`` (or moved to ``processed_folder``) only after the
transaction that recorded them committed. Their RFC822.SIZE is asked first: one over
``[intake] max_message_bytes`` is not downloaded but quarantined by its headers and left
on the server, unflagged, for `desk quarantine retry` (``refetch.py``) to fetch.
Receipts keyed by (mailbox, UIDVALIDITY, UID) make any re-fetch harmless; a UIDVALIDITY
change re-scans the folder and de-duplicates by Message-ID. The pieces live in
``desk.inbox.sources.imap``: the connection, the lease, the UID cursor, the wait for mail.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import MailboxSection
from desk.credentials import TokenRejected, TokenUnavailable
from desk.inbox.intake import INGEST_BATCH, Ingest, IngestResult, OnIngested, TransientError, ignore
from desk.inbox.sources import in_thread
from desk.inbox.sources.imap.cursor import Position, UidCursor, mailbox_key
from desk.inbox.sources.imap.idle import more_waiting, wait_for_mail
from desk.inbox.sources.imap.lease import LeaseHeld, MailboxLease
from desk.inbox.sources.imap.session import ConnectionErrors, ImapSession, acknowledge
from desk.periodic import Pause, Retry, repeat

log = logging.getLogger("desk.inbox")

FETCH_BATCH = 200
STANDBY_SECONDS = 5


class _Taken:
    """What a batch committed: ``recorded`` may move the cursor, ``ingested`` (not the
    messages left at the source) are acknowledged at the source."""

    def __init__(self) -> None:
        self.recorded: set[int] = set()
        self.ingested: list[int] = []

    def add(self, uids: list[int], *, ingested: bool) -> None:
        self.recorded.update(uids)
        if ingested:
            self.ingested += uids


def _read_through(batch: list[int], recorded: set[int]) -> int:
    """The last UID before the first one not recorded (0: the first is not): the cursor
    never moves past a message that could not be read."""
    high = 0
    for uid in batch:
        if uid not in recorded:
            break
        high = uid
    return high


def _trouble(exc: Exception) -> str | None:
    if isinstance(exc, TransientError):
        return f"database unavailable ({exc})"
    # Said apart from a lost connection: these need the admin, not patience.
    if isinstance(exc, TokenRejected):
        return f"OAuth2 login refused: {exc}"
    if isinstance(exc, TokenUnavailable):
        return f"no OAuth2 token ({exc})"
    if isinstance(exc, LoginError):
        return f"IMAP login refused ({exc})"
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
        self.key = mailbox_key(settings)
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
            taken = _Taken()
            try:
                results += self._take(client, batch, uidvalidity, taken, stop)
            finally:
                # Whatever committed is acknowledged at the source, even if a later
                # chunk of the batch hit a database outage.
                if taken.ingested:
                    acknowledge(client, taken.ingested, self.s.processed_folder)
                if taken.recorded:
                    high = _read_through(batch, taken.recorded)
                    self.cursor.save(uidvalidity, max(high, start_uid))
                    self.on_ingested(0)
            if not taken.recorded.issuperset(batch):
                break  # the rest waits for the next sync, after the gap
            self.lease.acquire()  # renew during long backlogs
        if not uids:
            self.cursor.save(uidvalidity, self.cursor.position()[1])
        return results

    def _take(self, client: IMAPClient, batch: list[int], uidvalidity: int, taken: _Taken,
              stop: threading.Event | None) -> list[IngestResult]:
        # Sizes first: a message over the cap is never downloaded, whatever its size.
        sizes = {uid: int(data[b"RFC822.SIZE"]) for uid, data in
                 client.fetch(batch, ["RFC822.SIZE"]).items() if b"RFC822.SIZE" in data}
        cap = self.ingestor.max_message_bytes
        results = self._leave_at_source(
            client, [u for u in batch if sizes.get(u, 0) > cap], sizes, uidvalidity, taken)
        wanted = [u for u in batch if u in sizes and sizes[u] <= cap]
        fetched = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        small = set(wanted)  # looked up once per message of the batch
        items: list[tuple[int, str, bytes]] = []
        for uid in batch:
            data = fetched.get(uid)
            if uid in small and data is not None and b"BODY[]" in data:
                items.append((uid, Position(self.key, uidvalidity, uid).key,
                              data[b"BODY[]"] or b""))
            elif uid not in taken.recorded:
                # Expunged meanwhile, or not readable yet: look again next time.
                log.info("%s: UID %s not fetched; will look again", self.key, uid)
        fetched.clear()  # the raw mail now lives in items only: keep memory flat
        for first in range(0, len(items), INGEST_BATCH):
            if stop is not None and stop.is_set():
                break
            chunk = items[first:first + INGEST_BATCH]
            results += self.ingestor.ingest_batch(
                [(key, raw) for _, key, raw in chunk], source=self.name)
            taken.add([uid for uid, _, _ in chunk], ingested=True)
            self.on_ingested(len(chunk))  # the sender starts on this mail now
        return results

    def _leave_at_source(self, client: IMAPClient, big: list[int], sizes: dict[int, int],
                         uidvalidity: int, taken: _Taken) -> list[IngestResult]:
        """Messages over the cap stay on the server, unread and unflagged: their headers
        go to the quarantine, and their receipts keep them from being handed over again."""
        if not big:
            return []
        fetched = client.fetch(big, ["BODY.PEEK[HEADER]"])
        results: list[IngestResult] = []
        for uid in big:
            headers = (fetched.get(uid) or {}).get(b"BODY[HEADER]")
            if headers is None:
                continue  # gone meanwhile: logged with the other gaps
            results.append(self.ingestor.quarantine_unfetched(
                Position(self.key, uidvalidity, uid).key, headers, sizes[uid]))
            taken.add([uid], ingested=False)
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
