"""A tiny write-ahead record of "the server accepted this": written (and fsynced) right
after the SMTP server's 250, before the database learns the mail was sent.

Marking a row sent in the database may have to wait for the write lock (SQLite) or the
network (PostgreSQL); a crash in that wait would resend the mail. The journal shrinks
that window to one fsync: a restarted desk reads the journals of dead workers and marks
their rows sent before claiming anything.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("desk.outbound")


class SentJournal:
    def __init__(self, directory: Path, worker_id: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"sent-{encode_worker(worker_id)}.log"
        self._fh = self.path.open("a", encoding="ascii")

    def record(self, outbox_id: int) -> None:
        self._fh.write(f"{outbox_id}\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def forget(self) -> None:
        """Everything recorded is now in the database too."""
        self._fh.truncate(0)
        self._fh.seek(0)

    def close(self) -> None:
        """Gone if everything it recorded is marked in the database (``forget``); kept
        otherwise, so whoever claims next marks those rows sent instead of resending."""
        self._fh.close()
        if self.path.exists() and self.path.stat().st_size == 0:
            self.path.unlink(missing_ok=True)


def encode_worker(worker_id: str) -> str:
    """host:pid:nonce -> a file-name-safe form that decodes back exactly."""
    return worker_id.replace("%", "%25").replace(":", "%3A").replace("/", "%2F")


def decode_worker(name: str) -> str:
    return name.replace("%2F", "/").replace("%3A", ":").replace("%25", "%")


def read_ids(path: Path) -> list[int]:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return []
    # A torn last line (crash mid-write) is simply not a record: only whole lines count,
    # or "12" of a torn "123" would mark the wrong mail sent.
    return [int(line) for line in text.split("\n")[:-1] if line.strip().isdigit()]


def orphaned_journals(directory: Path, own: Path, is_dead: object) -> list[Path]:
    """Journals of workers that are gone (their file names carry the worker id)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.glob("sent-*.log"):
        if path == own:
            continue
        worker = decode_worker(path.name.removeprefix("sent-").removesuffix(".log"))
        if is_dead(worker):  # type: ignore[operator]
            found.append(path)
    return found
