"""IMAP intake (imapclient, blocking: runs in its own thread).

Messages are fetched by UID with BODY.PEEK[] (so fetching never marks them read),
ingested, and flagged ``\\Seen`` (or moved to ``processed_folder``) only after the
transaction that recorded them committed. Receipts keyed by
(mailbox, UIDVALIDITY, UID) make any re-fetch harmless; a UIDVALIDITY change
re-scans the folder and de-duplicates by Message-ID.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from desk.config import MailboxSection
from desk.store.db import transaction
from desk.store.deferred import begin_savepoint
from desk.store.models import MailboxState
from desk.store.workers import is_dead
from desk.work.ingest import Ingestor, IngestResult, TransientError

log = logging.getLogger("desk.inbox")

FETCH_BATCH = 200
# Messages per ingest transaction: a commit per message is most of the cost of a backlog,
# and a longer transaction would keep other writers (the sender, the CLI) waiting.
INGEST_BATCH = 50
# RFC 2177 allows servers to drop IDLE after 30 min; re-issuing every 5 min also catches
# connections that died silently (no FIN) and mail a server forgot to announce.
IDLE_REISSUE_SECONDS = 5 * 60
LEASE_SECONDS = 60
STANDBY_SECONDS = 5

ConnectionErrors = (IMAPClientError, OSError, socket.error, ssl.SSLError, EOFError)


class ConnectionLost(IMAPClientError):
    """The server said BYE or closed the socket while we were idling."""


class LeaseHeld(Exception):
    """Another worker ingests this mailbox right now."""


class ImapSource:
    name = "imap"

    def __init__(
        self,
        settings: MailboxSection,
        ingestor: Ingestor,
        factory: sessionmaker[Session],
        *,
        worker_id: str,
        clock: Callable[[], datetime],
        on_ingested: Callable[[int], None] = lambda count: None,
    ) -> None:
        self.s = settings
        self.ingestor = ingestor
        self.factory = factory
        self.worker_id = worker_id
        self.clock = clock
        self.on_ingested = on_ingested
        self.key = (f"imap:{settings.username}@{settings.host}:{settings.effective_port}"
                    f"/{settings.folder}")
        self._client: IMAPClient | None = None

    # -- network seam ---------------------------------------------------------------
    def connect(self) -> IMAPClient:
        s = self.s
        context = ssl.create_default_context() if s.tls else None
        # A short timeout: a server that accepts but never greets must not stall recovery.
        client = IMAPClient(s.host, port=s.effective_port, ssl=s.tls, ssl_context=context,
                            timeout=15)
        client.login(s.username, s.resolved_password())
        # Keepalive probes notice a peer that vanished without closing the connection.
        client.socket().setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return client

    def _conn(self) -> IMAPClient:
        if self._client is None:
            self._client = self.connect()
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # The connection may already be dead: closing it must never raise.
            with contextlib.suppress(Exception):
                client.logout()

    # -- lease ----------------------------------------------------------------------
    def acquire_lease(self) -> bool:
        now = self.clock()
        with transaction(self.factory) as session:
            state = session.get(MailboxState, self.key)
            if state is None:
                try:
                    with begin_savepoint(session):
                        session.add(MailboxState(key=self.key, last_uid=0))
                except IntegrityError:
                    pass  # another worker created it a moment ago
            elif state.lease_holder and state.lease_holder != self.worker_id and \
                    is_dead(state.lease_holder):
                log.info("%s: taking over the lease of %s (process gone)", self.key,
                         state.lease_holder)
                state.lease_expires_at = now  # expired: the update below takes it
            result = session.execute(
                update(MailboxState)
                .where(
                    MailboxState.key == self.key,
                    or_(
                        MailboxState.lease_holder.is_(None),
                        MailboxState.lease_holder == self.worker_id,
                        MailboxState.lease_expires_at <= now,
                    ),
                )
                .values(lease_holder=self.worker_id,
                        lease_expires_at=now + timedelta(seconds=LEASE_SECONDS))
            )
            return bool(result.rowcount)

    def release_lease(self) -> None:
        with transaction(self.factory) as session:
            session.execute(
                update(MailboxState)
                .where(MailboxState.key == self.key, MailboxState.lease_holder == self.worker_id)
                .values(lease_holder=None, lease_expires_at=None)
            )

    def _state(self) -> tuple[int | None, int]:
        with self.factory() as session:
            st = session.get(MailboxState, self.key)
            return (st.uidvalidity, st.last_uid) if st else (None, 0)

    def _save_state(self, uidvalidity: int, last_uid: int) -> None:
        with transaction(self.factory) as session:
            st = session.get(MailboxState, self.key)
            assert st is not None
            st.uidvalidity = uidvalidity
            st.last_uid = max(last_uid, 0)
            st.last_ingest_at = self.clock()

    # -- sync -----------------------------------------------------------------------
    def _pending_uids(self, client: IMAPClient) -> tuple[int, list[int]]:
        info = client.select_folder(self.s.folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        known_validity, last_uid = self._state()
        if known_validity is None:
            # First contact: old mail that people already read is history, not requests.
            uids = client.search(["UNSEEN"])
        elif known_validity != uidvalidity:
            log.warning("%s: UIDVALIDITY changed %s -> %s, re-scanning (duplicates are "
                        "skipped by Message-ID)", self.key, known_validity, uidvalidity)
            uids = client.search(["NOT", "DELETED"])
        else:
            uids = [u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid]
        return uidvalidity, sorted(uids)

    def sync_once(self, stop: threading.Event | None = None) -> list[IngestResult]:
        """Ingest everything pending now. Raises on connection or database trouble."""
        if not self.acquire_lease():
            raise LeaseHeld(self.key)
        client = self._conn()
        known_validity, known_last = self._state()
        uidvalidity, uids = self._pending_uids(client)
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
                    self._acknowledge(client, done)
                    high = max(done) if gap is None else min(max(done), gap - 1)
                    self._save_state(uidvalidity, max(high, start_uid))
                    self.on_ingested(0)
            if gap is not None:
                break  # the rest waits for the next sync, after the gap
            self.acquire_lease()  # renew during long backlogs
        if not uids:
            self._save_state(uidvalidity, self._state()[1])
        return results

    def _acknowledge(self, client: IMAPClient, uids: list[int]) -> None:
        target = self.s.processed_folder
        if not target:
            client.add_flags(uids, [b"\\Seen"], silent=True)
            return
        client.add_flags(uids, [b"\\Seen"], silent=True)
        if client.has_capability("MOVE"):
            client.move(uids, target)
        else:
            client.copy(uids, target)
            client.delete_messages(uids, silent=True)
            client.uid_expunge(uids) if client.has_capability("UIDPLUS") else client.expunge()

    # -- long-running loop ----------------------------------------------------------
    def more_waiting(self) -> bool:
        """Did mail arrive while we were busy? Its EXISTS may have come as an untagged reply
        to our own commands, which the server will not repeat once we IDLE: only a
        search after the last command sees it for sure."""
        client = self._conn()
        last = self._state()[1]
        return any(u > last for u in client.search(["UID", f"{last + 1}:*"]))

    def wait_for_mail(self, stop: threading.Event) -> None:
        """Block until the server reports new mail, ``poll_seconds`` pass, or stop is set."""
        client = self._conn()
        if not (self.s.idle and client.has_capability("IDLE")):
            stop.wait(self.s.poll_seconds)
            return
        client.idle()
        started = time.monotonic()
        instant_empty = 0
        # Re-issue at least every poll_seconds: a safety net should a notification be lost.
        reissue = min(IDLE_REISSUE_SECONDS, self.s.poll_seconds)
        try:
            while not stop.is_set() and time.monotonic() - started < reissue:
                t0 = time.monotonic()
                responses = client.idle_check(timeout=1)
                if any(_is_bye(r) for r in responses):
                    raise ConnectionLost("server said BYE")
                if any(_is_new_mail(r) for r in responses):
                    return
                # imapclient swallows EOF inside idle_check: a readable socket that yields
                # nothing, again and again, is a closed connection.
                instant_empty = instant_empty + 1 if time.monotonic() - t0 < 0.5 else 0
                if instant_empty >= 3:
                    raise ConnectionLost("server closed the connection")
        finally:
            with contextlib.suppress(*ConnectionErrors):
                client.idle_done()

    def run(self, stop: threading.Event) -> None:
        """Sync, wait, repeat until ``stop``; reconnects with backoff, never raises."""
        backoff = 1.0
        incident: str | None = None
        while not stop.is_set():
            try:
                self.sync_once(stop)
                if incident:
                    log.info("%s: recovered after %s", self.key, incident)
                    incident = None
                backoff = 1.0
                if not self.more_waiting():
                    self.wait_for_mail(stop)
            except LeaseHeld:
                # A standby worker: look again soon, so a dead holder is replaced quickly.
                self.close()
                stop.wait(STANDBY_SECONDS)
            except TransientError as exc:
                incident = _once(incident, f"database unavailable ({exc})", self.key)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except ConnectionErrors as exc:
                incident = _once(incident, f"IMAP connection lost ({exc})", self.key)
                self.close()
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception as exc:  # never let intake die quietly: log, back off, go on
                log.exception("%s: unexpected error, reconnecting", self.key)
                incident = incident or f"unexpected {type(exc).__name__}"
                self.close()
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        self.close()
        try:
            self.release_lease()
        except Exception:  # the database may be down too: the lease expires by itself
            log.debug("could not release lease", exc_info=True)


def _is_bye(response: object) -> bool:
    return isinstance(response, tuple) and len(response) >= 1 and response[0] == b"BYE"


def _is_new_mail(response: Iterable[object] | object) -> bool:
    return isinstance(response, tuple) and len(response) >= 2 and response[1] in (
        b"EXISTS", b"RECENT")


def _once(current: str | None, incident: str, key: str) -> str:
    """Log one line per incident, not one per retry."""
    if current is None:
        log.warning("%s: %s; retrying with backoff", key, incident)
        return incident
    return current
