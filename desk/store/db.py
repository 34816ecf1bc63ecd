"""Engine and session factory; schema creation and upgrades through Alembic."""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from desk.logs import hide, mask_secrets, url_passwords

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, busy_ms: int) -> None:
    # Let SQLAlchemy own transaction boundaries (pysqlite's implicit BEGIN breaks
    # SAVEPOINT semantics: releasing one would commit).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL: readers never block the single writer; NORMAL is durable across process
    # crashes (only an OS crash can lose the last commits).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={busy_ms}")
    cur.close()


class WriterTurns:
    """First come, first served turns at SQLite's single write lock among the threads of
    one process.

    SQLite's own wait is a sleep-and-retry loop: a thread that commits and at once begins
    again (the ingest of a backlog, batch after batch) takes the lock back before a
    sleeping waiter (the sender, wanting to claim or mark mail) wakes, so the waiter can
    starve until the whole backlog is read. Here the lock is handed to the longest waiter.

    Across processes the same holds for SQLite's sleeping waiters; for the delivery
    process of a backlog (outbound/delivery_process.py) the two share a counter in shared
    memory of the other process's writers waiting for or holding the lock:
    ``others_waiting`` (ours to read) and ``announce`` (ours to write). A turn here
    starts only once that is zero (or a second went by), so neither side sleeps in
    SQLite's retry loop. Any other process meets SQLite's busy timeout as before."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._holder: Any = None
        self.others_waiting: Any = None  # a multiprocessing RawValue("i"), when shared
        self._others_alive: Callable[[], bool] | None = None
        self.announce: Any = None

    def share_with(self, others_waiting: Any, alive: Callable[[], bool] | None) -> None:
        """Take the other process's writers into account (None: stop)."""
        self.others_waiting, self._others_alive = others_waiting, alive

    def _let_others_in(self) -> None:
        if self.others_waiting is None or self.others_waiting.value <= 0:
            return
        if self._others_alive is not None and not self._others_alive():
            self.share_with(None, None)  # died holding or wanting the lock: its count is void
            return
        deadline = time.monotonic() + 1.0
        while self.others_waiting.value > 0 and time.monotonic() < deadline:
            time.sleep(0.0005)

    def take(self, holder: Any) -> None:
        """Our turn (waiting behind earlier takers), then the other process's writers let
        through; given back by ``give_back`` whatever happens after."""
        self._take_in_process(holder)
        if self.announce is not None:
            self.announce.value += 1  # until give_back: waiting, then holding
        try:
            self._let_others_in()
        except BaseException:
            self.give_back(holder)
            raise

    def _take_in_process(self, holder: Any) -> None:
        with self._mutex:
            if self._holder is None and not self._waiters:
                self._holder = holder
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if not turn.acquire(timeout=self.timeout):
            with self._mutex:
                if turn in self._waiters:  # not handed over: give up like SQLite would
                    self._waiters.remove(turn)
                    raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(
                        "database is locked (waited for a turn)"))
        with self._mutex:
            self._holder = holder

    def give_back(self, holder: Any) -> None:
        with self._mutex:
            if self._holder is not holder:
                return  # not ours (ended twice, or never taken)
            if self.announce is not None:
                self.announce.value -= 1
            self._holder = None
            if self._waiters:
                # Handed over: nobody can barge in between.
                self._holder = _HANDED_OVER
                self._waiters.popleft().release()


_HANDED_OVER = object()


def _dbapi_of(conn: Any) -> Any:
    # An invalidated connection has none (asking raises): the pool's "invalidate" event
    # gives its turn back instead.
    return None if conn.invalidated else conn.connection.dbapi_connection


def _take_turn_and_begin(turns: WriterTurns, conn: Any) -> None:
    dbapi = conn.connection.dbapi_connection
    turns.take(dbapi)
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        turns.give_back(dbapi)
        raise


_TURNS: weakref.WeakKeyDictionary[Engine, WriterTurns] = weakref.WeakKeyDictionary()


def writer_turns(engine: Engine) -> WriterTurns | None:
    """The turns at the write lock of a SQLite engine (None for other databases)."""
    return _TURNS.get(engine)


def make_engine(url: str, *, busy_timeout: float = 30.0, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout}, **kwargs)
        busy_ms = int(busy_timeout * 1000)
        event.listen(engine, "connect", lambda c, r: _sqlite_pragmas(c, r, busy_ms))
        # IMMEDIATE: take the write lock at the start, so a transaction that read first never
        # fails to upgrade when another thread wrote meanwhile; writers queue on busy_timeout
        # and WAL readers are never blocked.
        turns = _TURNS[engine] = WriterTurns(busy_timeout)
        event.listen(engine, "begin", lambda conn: _take_turn_and_begin(turns, conn))
        # Every way a transaction ends gives the turn back: commit, rollback, and the
        # pool's reset of a connection returned (or invalidated) with one still open.
        event.listen(engine, "commit", lambda conn: turns.give_back(_dbapi_of(conn)))
        event.listen(engine, "rollback", lambda conn: turns.give_back(_dbapi_of(conn)))
        event.listen(engine.pool, "reset",
                     lambda dbapi, _record, _reset_state: turns.give_back(dbapi))
        event.listen(engine.pool, "invalidate",
                     lambda dbapi, _record, _exception: turns.give_back(dbapi))
        event.listen(engine.pool, "close", lambda dbapi, _record: turns.give_back(dbapi))
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def display_url(url: str) -> str:
    """The database URL as it may be shown: ``postgresql://desk:***@host/db``."""
    # Not SQLAlchemy's own rendering: it splits a password holding a raw "@" at the first
    # one and would show the rest.
    return mask_secrets(url)


def hide_url_password(url: str) -> None:
    """Keep the URL's password out of every log line and error, wherever it shows up:
    as written, and decoded (%40 -> @) as the driver sees it."""
    try:
        decoded = make_url(url).password
    except (ArgumentError, ValueError):
        decoded = None  # unreadable: desk cannot connect with it either
    hide(*url_passwords(url), str(decoded) if decoded is not None else None)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def is_transient(exc: BaseException) -> bool:
    """Database unavailable or locked: retry later rather than quarantine the message."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> str | None:
    """Create or upgrade the schema to the newest revision; safe to run repeatedly.
    Returns the revision now in force."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
