"""SQLite has one write lock and waits for it by sleeping and retrying: a thread that
commits and begins again at once (the ingest of a backlog) would take it back before a
sleeping waiter (the sender) wakes. db.WriterTurns hands the lock to the longest waiter,
so mail keeps going out while a backlog is read."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from desk.db import make_engine


def test_a_waiting_writer_gets_its_turn_between_a_busy_writers_transactions(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}", busy_timeout=10)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (who TEXT)"))
    stop = threading.Event()

    def busy_writer() -> None:
        while not stop.is_set():
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES ('busy')"))
                time.sleep(0.05)  # a batch of messages being processed

    busy = threading.Thread(target=busy_writer)
    busy.start()
    try:
        time.sleep(0.2)
        waits = []
        for _ in range(5):
            started = time.monotonic()
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES ('waiter')"))
            waits.append(time.monotonic() - started)
    finally:
        stop.set()
        busy.join()
    # Each turn comes after at most one of the busy writer's transactions (50 ms).
    assert max(waits) < 0.5, waits


def test_a_turn_not_handed_over_in_time_fails_like_a_locked_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}", busy_timeout=0.2)
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(5)
    try:
        started = time.monotonic()
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            from desk.db import is_transient
            assert is_transient(exc), exc
        else:
            raise AssertionError("got a turn while another thread held the write lock")
        assert time.monotonic() - started < 2
    finally:
        release.set()
        thread.join()
    with engine.begin() as conn:  # and the lock is usable again afterwards
        conn.execute(text("SELECT 1"))
