"""LMTP intake: a mail server delivers straight to the desk.

The reply is 250 only after the transaction that recorded the message committed; a
database that is locked or down gets 451, so the sending server keeps the message and
retries. Never 250-then-lose.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from desk.inbox.intake import Ingest, IngestResult, OnIngested, TransientError, ignore

log = logging.getLogger("desk.inbox")


class LmtpHandler:
    def __init__(self, ingestor: Ingest, on_ingested: OnIngested) -> None:
        self.ingestor = ingestor
        self.on_ingested = on_ingested
        # The pipeline is one writer; serialising here keeps SQLite free of lock contention.
        self._lock = asyncio.Lock()

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw: bytes | str = envelope.original_content or b""  # typed bytes, checked anyway
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        # A retried delivery carries the same bytes: the same key makes it a no-op.
        key = f"lmtp:{hashlib.sha256(raw).hexdigest()}"
        try:
            async with self._lock:
                result = await asyncio.to_thread(self.ingestor.ingest, key, raw, source="lmtp")
        except TransientError as exc:
            log.warning("LMTP: deferring a message, the database is unavailable: %s", exc)
            status = "451 4.3.0 Temporarily unable to record the message, try again later"
        except Exception:  # defer rather than accept and lose: the sender will retry
            log.exception("LMTP: deferring a message after an unexpected error")
            status = "451 4.3.0 Temporary failure, try again later"
        else:
            status = f"250 2.0.0 OK {result.outcome}"
            self.on_ingested(1)
        # LMTP answers once per accepted recipient (RFC 2033).
        return "\r\n".join([status] * max(1, len(envelope.rcpt_tos)))


async def start_lmtp(
    host: str, port: int, ingestor: Ingest, on_ingested: OnIngested = ignore,
    *, data_size_limit: int = 33554432,
) -> asyncio.Server:
    handler = LmtpHandler(ingestor, on_ingested)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: LMTP(handler, data_size_limit=data_size_limit, enable_SMTPUTF8=True,
                     decode_data=False, hostname="desk"),
        host=host, port=port,
    )
    log.info("LMTP intake listening on %s:%s", host, port)
    return server


class LmtpSource:
    """The LMTP server as a source like the others. Mail is pushed: there is nothing to
    fetch for ``run --once``, and the server lives on the event loop, not in a thread."""

    name = "lmtp"

    def __init__(self, host: str, port: int, ingestor: Ingest, on_ingested: OnIngested = ignore,
                 *, data_size_limit: int = 33554432) -> None:
        self.host = host
        self.port = port
        self.ingestor = ingestor
        self.on_ingested = on_ingested
        self.data_size_limit = data_size_limit

    async def start(self, stop: threading.Event) -> asyncio.Task[None]:
        # Listening before this returns: the daemon says "started" only once mail is taken.
        server = await start_lmtp(self.host, self.port, self.ingestor, self.on_ingested,
                                  data_size_limit=self.data_size_limit)
        return asyncio.create_task(self._serve(server, stop), name=f"intake:{self.name}")

    async def _serve(self, server: asyncio.Server, stop: threading.Event) -> None:
        try:
            await asyncio.to_thread(stop.wait)
        finally:
            server.close()  # new connections refused; a delivery in progress completes
            await server.wait_closed()

    def sync_once(self, stop: threading.Event | None = None) -> list[IngestResult]:
        return []

    def close(self) -> None:
        """Nothing held between deliveries."""
