"""LMTP intake: a mail server delivers straight to the desk.

The reply is 250 only after the transaction that recorded the message committed; a
database that is locked or down gets 451, so the sending server keeps the message and
retries. Never 250-then-lose.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from desk.work.ingest import Ingestor, TransientError

log = logging.getLogger("desk.inbox")


class LmtpHandler:
    def __init__(self, ingestor: Ingestor, on_ingested: Callable[[], None]) -> None:
        self.ingestor = ingestor
        self.on_ingested = on_ingested
        # The pipeline is one writer; serialising here keeps SQLite free of lock contention.
        self._lock = asyncio.Lock()

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
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
            self.on_ingested()
        # LMTP answers once per accepted recipient (RFC 2033).
        return "\r\n".join([status] * max(1, len(envelope.rcpt_tos)))


async def start_lmtp(
    host: str, port: int, ingestor: Ingestor, on_ingested: Callable[[], None] = lambda: None,
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
