"""Local Maildir intake: each file in new/ is ingested, then moved to cur/ (flag S).

The move happens only after the transaction that recorded the message committed; a
crash in between leaves the file in new/, and the receipt makes the retry a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

from desk.inbox.intake import INGEST_BATCH, Ingest, IngestResult, OnIngested, TransientError, ignore
from desk.inbox.sources import in_thread
from desk.periodic import Retry, repeat

log = logging.getLogger("desk.inbox")

POLL_SECONDS = 1.0


def _trouble(exc: Exception) -> str | None:
    # Anything else (a broken file or folder) is unexpected, and must not stop intake for good.
    return f"database unavailable ({exc})" if isinstance(exc, TransientError) else None


class MaildirSource:
    name = "maildir"

    def __init__(self, path: Path, ingestor: Ingest, on_ingested: OnIngested = ignore) -> None:
        self.path = path.resolve()
        self.ingestor = ingestor
        self.on_ingested = on_ingested
        for sub in ("new", "cur", "tmp"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    def _key(self, filename: str) -> str:
        # The unique part of a Maildir name is before the ":2,flags" suffix.
        return f"maildir:{self.path}:{filename.split(':', 1)[0]}"

    def pending(self) -> list[str]:
        return sorted(n for n in os.listdir(self.path / "new") if not n.startswith("."))

    def sync_once(self, stop: threading.Event | None = None) -> list[IngestResult]:
        results: list[IngestResult] = []
        names = self.pending()
        for first in range(0, len(names), INGEST_BATCH):
            if stop is not None and stop.is_set():
                break
            items: list[tuple[str, bytes]] = []
            files: list[str] = []
            for name in names[first:first + INGEST_BATCH]:
                try:
                    items.append((self._key(name), (self.path / "new" / name).read_bytes()))
                except FileNotFoundError:
                    continue  # another process took it
                files.append(name)
            # One transaction for the chunk; files move only once it committed.
            results += self.ingestor.ingest_batch(items, source=self.name)
            for name in files:
                base = name.split(":", 1)[0]
                os.replace(self.path / "new" / name, self.path / "cur" / f"{base}:2,S")
        return results

    def _round(self, stop: threading.Event) -> None:
        if self.sync_once(stop):
            self.on_ingested(0)

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop``; backs off while the database is unavailable, never raises."""
        retry = Retry(f"maildir {self.path}", first=1.0, cap=60.0, expected=_trouble)
        repeat(lambda: self._round(stop), stop, retry, log, every=POLL_SECONDS)

    async def start(self, stop: threading.Event) -> asyncio.Task[None]:
        return in_thread(self.run, stop, self.name)

    def close(self) -> None:
        """Nothing held: files are claimed by moving them."""
