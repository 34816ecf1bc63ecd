"""Local Maildir intake: each file in new/ is ingested, then moved to cur/ (flag S).

The move happens only after the transaction that recorded the message committed; a
crash in between leaves the file in new/, and the receipt makes the retry a no-op.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from desk.work.ingest import Ingestor, IngestResult

log = logging.getLogger("desk.inbox")

BATCH = 50  # messages per transaction, as for IMAP


class MaildirSource:
    name = "maildir"

    def __init__(self, path: Path, ingestor: Ingestor) -> None:
        self.path = path.resolve()
        self.ingestor = ingestor
        for sub in ("new", "cur", "tmp"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    def _key(self, filename: str) -> str:
        # The unique part of a Maildir name is before the ":2,flags" suffix.
        return f"maildir:{self.path}:{filename.split(':', 1)[0]}"

    def pending(self) -> list[str]:
        return sorted(n for n in os.listdir(self.path / "new") if not n.startswith("."))

    def sync_once(self, stop: object | None = None) -> list[IngestResult]:
        results: list[IngestResult] = []
        names = self.pending()
        for first in range(0, len(names), BATCH):
            if stop is not None and getattr(stop, "is_set", lambda: False)():
                break
            items: list[tuple[str, bytes]] = []
            files: list[str] = []
            for name in names[first:first + BATCH]:
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
