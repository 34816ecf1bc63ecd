"""Every daemon loop in one shape: do a round, pause, repeat until stopped.

A failed round is retried with exponential backoff. Expected trouble (a database outage,
a lost connection) is logged once when it starts and once when it is over, not once per
retry: an hour's outage is two lines, not hundreds. An unexpected error is a bug, so it
is logged with its traceback every time; it still opens an incident, so its end is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# A step may say how to wait for the next one (IMAP: IDLE until the server has mail).
Pause = Callable[[], object]


def nothing_expected(exc: Exception) -> str | None:
    return None


def headline(exc: BaseException) -> str:
    """An exception in one short line (database errors run to many lines of SQL)."""
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:200]}"


@dataclass(frozen=True, slots=True)
class Retry:
    """How a loop meets a failed round."""

    what: str  # names the loop in its log lines
    first: float = 1.0  # seconds before the first retry, doubled after each further failure
    cap: float = 60.0
    # Expected trouble -> what to call the incident; None: unexpected.
    expected: Callable[[Exception], str | None] = nothing_expected


@dataclass(frozen=True, slots=True)
class Trouble:
    what: str  # the loop: "imap support@agency.test@host:993/INBOX", "outbox"
    description: str
    since: datetime


class TroubleBoard:
    """The incidents this process is in now, so the heartbeat can put them where
    ``desk status`` reads them: a refused OAuth2 secret is otherwise only a log line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: dict[str, Trouble] = {}
        self._listeners: list[Callable[[], None]] = []

    def report(self, what: str, description: str) -> None:
        with self._lock:
            if what in self._now and self._now[what].description == description:
                return
            since = self._now[what].since if what in self._now else datetime.now(UTC)
            self._now[what] = Trouble(what, description, since)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def clear(self, what: str) -> None:
        with self._lock:
            if self._now.pop(what, None) is None:
                return
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def current(self) -> list[Trouble]:
        with self._lock:
            return sorted(self._now.values(), key=lambda t: t.since)

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` (from any thread) on every change; returns the unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe


troubles = TroubleBoard()


class Incident:
    """One loop's current trouble: what was said about it and how long to wait next."""

    def __init__(self, retry: Retry, log: logging.Logger) -> None:
        self.retry = retry
        self.log = log
        self.current: str | None = None
        self.delay = retry.first

    def over(self) -> None:
        if self.current is not None:
            self.log.info("%s: recovered after %s", self.retry.what, self.current)
            self.current = None
            troubles.clear(self.retry.what)
        self.delay = self.retry.first

    def failed(self, exc: Exception) -> float:
        """Log ``exc`` if it is news; returns the seconds to wait before the next round."""
        what = self.retry.what
        description = self.retry.expected(exc)
        if description is None:
            self.log.error("%s: unexpected error; retrying", what, exc_info=exc)
            self.current = self.current or f"unexpected {type(exc).__name__}"
            troubles.report(what, f"unexpected error ({headline(exc)})")
        elif self.current is None:
            self.log.warning("%s: %s; retrying", what, description)
            self.current = description
        if description is not None:
            # The board keeps the latest word (an endpoint that was down may now refuse
            # the secret); the log keeps one line per incident.
            troubles.report(what, description)
        delay, self.delay = self.delay, min(self.delay * 2, self.retry.cap)
        return delay


def repeat(
    step: Callable[[], Pause | None],
    stop: threading.Event,
    retry: Retry,
    log: logging.Logger,
    *,
    every: float = 0.0,
    on_failure: Callable[[Exception], None] | None = None,
) -> None:
    """Blocking, for a thread: run ``step`` until ``stop`` is set, ``every`` seconds
    apart unless the step returns its own pause. A pause that fails counts as a failed
    round. ``on_failure`` tidies up before the backoff (IMAP: drop the connection)."""
    incident = Incident(retry, log)
    while not stop.is_set():
        try:
            pause = step()
            incident.over()
            if pause is None:
                stop.wait(every)
            else:
                pause()
        except Exception as exc:  # a loop of the daemon never dies quietly: log, back off
            delay = incident.failed(exc)
            if on_failure is not None:
                on_failure(exc)
            stop.wait(delay)


async def repeat_async(
    step: Callable[[], Awaitable[object]],
    stop: threading.Event,
    retry: Retry,
    log: logging.Logger,
    *,
    every: float,
    wake: asyncio.Event | None = None,
) -> None:
    """On the event loop: run ``step`` until ``stop`` is set, ``every`` seconds apart,
    or sooner when ``wake`` is set (cleared as each round starts, so a wake-up that
    arrives during a round is not lost)."""
    incident = Incident(retry, log)
    while not stop.is_set():
        if wake is not None:
            wake.clear()
        try:
            await step()
            incident.over()
            delay = every
        except Exception as exc:  # a loop of the daemon never dies quietly: log, back off
            delay = incident.failed(exc)
        if wake is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
