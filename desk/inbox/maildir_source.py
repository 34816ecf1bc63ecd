"""Local Maildir intake: each file in new/ is ingested, then moved to cur/ (flag S).

The move happens only after the transaction that recorded the message committed; a
crash in between leaves the file in new/, and the receipt makes the retry a no-op.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from desk.inbox.ingest import Ingestor, IngestResult

log = logging.getLogger("desk.inbox")


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
        for name in self.pending():
            if stop is not None and getattr(stop, "is_set", lambda: False)():
                break
            src = self.path / "new" / name
            try:
                raw = src.read_bytes()
            except FileNotFoundError:
                continue  # another process took it
            result = self.ingestor.ingest(self._key(name), raw, source=self.name)
            base = name.split(":", 1)[0]
            os.replace(src, self.path / "cur" / f"{base}:2,S")
            results.append(result)
        return results
