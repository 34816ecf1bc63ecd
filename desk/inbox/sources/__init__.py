"""What the daemon knows of a source of mail (IMAP, Maildir, LMTP): this, and no more.

Pull sources (IMAP, Maildir) block, in a thread of their own, in ``run(stop)``; a push
source (LMTP) listens on the event loop. ``start`` hides the difference, so the daemon
starts every configured intake the same way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Protocol

from desk.inbox.intake import IngestResult


class SourceBusy(Exception):
    """Another desk process takes mail from this source right now (normal with several
    workers): this one leaves it alone."""


class Source(Protocol):
    name: str

    async def start(self, stop: threading.Event) -> asyncio.Task[None]:
        """Start taking mail; return once it is being taken, with the task that ends
        after ``stop`` is set and the message in hand is recorded and acknowledged."""
        ...

    def sync_once(self, stop: threading.Event | None = None) -> list[IngestResult]:
        """Take what is waiting now, then return (``desk run --once``). Raises
        ``TransientError`` when the database is unavailable, ``SourceBusy``, or the
        source's own trouble."""
        ...

    def close(self) -> None:
        """Let go of connections and claims on the source; never raises."""
        ...


def in_thread(run: Callable[[threading.Event], None], stop: threading.Event,
              name: str) -> asyncio.Task[None]:
    """A pull source's ``run(stop)`` as a task: imapclient and the pipeline block, so
    intake needs a thread of its own while the event loop delivers mail."""
    return asyncio.create_task(asyncio.to_thread(run, stop), name=f"intake:{name}")
