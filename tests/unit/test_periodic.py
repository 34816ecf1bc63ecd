"""desk.periodic, the shape of every daemon loop: backoff on failure, one log line when
trouble starts and one when it is over, unexpected errors with their traceback."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from desk.periodic import Pause, Retry, repeat, repeat_async, troubles

log = logging.getLogger("test.periodic")


class Recorder(threading.Event):
    """A stop event that records every wait instead of sleeping, and is set after
    ``rounds`` waits."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if len(self.waits) >= self.rounds:
            self.set()
        return self.is_set()


def outage(exc: Exception) -> str | None:
    return f"database unavailable ({exc})" if isinstance(exc, ConnectionError) else None


def run(outcomes: list[Exception | None], retry: Retry) -> Recorder:
    stop = Recorder(len(outcomes))

    def step() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    repeat(step, stop, retry, log, every=1.0)
    return stop


def test_expected_trouble_is_one_line_with_backoff_and_one_when_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "test.periodic")
    down = ConnectionError("down")
    stop = run([down, down, down, down, None, down, None],
               Retry("intake", first=1.0, cap=4.0, expected=outage))
    assert stop.waits == [1.0, 2.0, 4.0, 4.0, 1.0, 1.0, 1.0]  # doubled, capped, reset
    assert [r.getMessage() for r in caplog.records] == [
        "intake: database unavailable (down); retrying",
        "intake: recovered after database unavailable (down)",
        "intake: database unavailable (down); retrying",
        "intake: recovered after database unavailable (down)",
    ]


def test_an_unexpected_error_is_logged_with_its_traceback_every_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "test.periodic")
    stop = run([KeyError("x"), KeyError("x"), None],
               Retry("clock", first=30.0, cap=30.0, expected=outage))
    assert stop.waits == [30.0, 30.0, 1.0]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(r.exc_info for r in errors)
    assert caplog.records[-1].getMessage() == "clock: recovered after unexpected KeyError"


def test_a_step_may_bring_its_own_pause_and_a_failing_pause_is_a_failed_round() -> None:
    stop = Recorder(3)
    paused: list[str] = []

    def idle() -> None:
        paused.append("idle")
        raise ConnectionError("BYE")

    def step() -> Pause:
        return idle

    failures: list[Exception] = []
    repeat(step, stop, Retry("imap", first=1.0, cap=30.0, expected=outage), log,
           on_failure=failures.append)
    assert paused == ["idle"] * 3
    # Only the backoffs: the pause was the step's own. The step itself went well each time
    # (the IMAP sync before IDLE), so the backoff starts again from the first.
    assert stop.waits == [1.0, 1.0, 1.0]
    assert [str(f) for f in failures] == ["BYE"] * 3


def test_a_wake_up_cuts_the_async_wait_short() -> None:
    async def scenario() -> list[float]:
        stop, wake = threading.Event(), asyncio.Event()
        rounds: list[float] = []

        async def step() -> None:
            rounds.append(time.monotonic())
            if len(rounds) == 3:
                stop.set()
                wake.set()  # as Daemon.request_stop does

        loop = asyncio.create_task(repeat_async(step, stop, Retry("outbox"), log,
                                                every=60.0, wake=wake))
        for _ in range(2):
            await asyncio.sleep(0.05)
            wake.set()
        await asyncio.wait_for(loop, 5)
        return rounds

    rounds = asyncio.run(scenario())
    assert len(rounds) == 3 and rounds[-1] - rounds[0] < 5  # not 60 s apart


def test_the_trouble_board_holds_an_incident_until_it_is_over() -> None:
    seen: list[list[str]] = []

    def step_outcomes() -> None:
        seen.append([f"{t.what}: {t.description}" for t in troubles.current()
                     if t.what == "board-test"])  # other tests' loops share the board

    unsubscribe = troubles.listen(step_outcomes)
    try:
        down = ConnectionError("down")
        run([down, down, None], Retry("board-test", first=1.0, cap=4.0, expected=outage))
    finally:
        unsubscribe()
    # told once when it began (a repeat of the same words is no news), once when over
    assert seen == [["board-test: database unavailable (down)"], []]
    assert all(t.what != "board-test" for t in troubles.current())
