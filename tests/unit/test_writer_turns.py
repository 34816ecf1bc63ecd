"""SQLite has one write lock and waits for it by sleeping and retrying: a thread that
commits and begins again at once (the ingest of a backlog) would take it back before a
sleeping waiter (the sender) wakes. db.WriterTurns hands the lock to the longest waiter,
so mail keeps going out while a backlog is read."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from desk.store.db import make_engine


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
            from desk.store.db import is_transient
            assert is_transient(exc), exc
        else:
            raise AssertionError("got a turn while another thread held the write lock")
        assert time.monotonic() - started < 2
    finally:
        release.set()
        thread.join()
    with engine.begin() as conn:  # and the lock is usable again afterwards
        conn.execute(text("SELECT 1"))


def test_a_dead_partner_process_never_delays_a_turn(tmp_path: Path) -> None:
    """The delivery process counts itself in shared memory while it waits for or holds the
    lock. Killed in that moment, its count stays up: it must not hold the intake back."""
    import multiprocessing

    from desk.store.db import writer_turns

    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}", busy_timeout=10)
    turns = writer_turns(engine)
    assert turns is not None
    stuck = multiprocessing.get_context("spawn").RawValue("i", 1)

    turns.share_with(stuck, lambda: True)  # alive and (say) waiting: we step aside a while
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
    assert time.monotonic() - started >= 0.9

    turns.share_with(stuck, lambda: False)  # gone: its count is void
    started = time.monotonic()
    for _ in range(5):
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
    assert time.monotonic() - started < 0.5


def test_rolling_back_an_invalidated_connection_gives_the_turn_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}", busy_timeout=0.5)
    conn = engine.connect()
    conn.begin()
    conn.invalidate()
    conn.rollback()  # no error of our own on top of the original one
    conn.close()
    with engine.begin() as other:  # and the turn is free again
        other.execute(text("SELECT 1"))
