"""Fixtures that start real servers on loopback (see tests/servers.py).

- `dovecot` (session): one Dovecot with IMAP + LMTP and the users in DEFAULT_USERS. Before
  every test that uses it, the users' mailboxes are emptied (INBOX/Sent/Trash, other folders
  deleted), default passwords restored, and the server brought back if a test stopped it.
- `imap`: the same Dovecot, spelled as "I want a clean mail store for this test".
- `smtp_capture`: a fresh SMTP sink process per test (new port, so a daemon left over from
  an earlier test can never deliver into this one; ~0.15 s each).
- `postgres` (session, started only if some test asks for it) and `pg_url`: a new empty
  database per test, dropped afterwards.

Tests using any of these are marked `integration` automatically (`-m "not integration"`
runs the unit tests alone). Servers are stopped at session end by the finalizers below,
by an atexit hook in servers.py if pytest dies, and by PDEATHSIG if it is killed.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import DEFAULT_USERS, Dovecot, Postgres, SmtpCapture, make_root

SERVER_FIXTURES = frozenset({"dovecot", "imap", "smtp_capture", "postgres", "pg_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # fixturenames is the transitive closure, so a `daemon` fixture built on `dovecot`
    # marks its tests too
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def server_root() -> Iterator[Path]:
    """0755 dir under /tmp: Dovecot and PostgreSQL drop privileges and pytest's tmp is 0700.

    Set DESK_KEEP_TEST_SERVERS=1 to keep it (configs, logs, mail) for a post-mortem.
    """
    root = make_root("desk-test-")
    yield root
    if not os.environ.get("DESK_KEEP_TEST_SERVERS"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot(server_root: Path) -> Iterator[Dovecot]:
    server = Dovecot().start(server_root / "dovecot")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _clean_mail_store(request: pytest.FixtureRequest) -> None:
    # autouse + lookup instead of putting this into `dovecot`: a session fixture cannot run
    # per test, and this way tests that name `dovecot` directly get a clean store too.
    if "dovecot" not in request.fixturenames:
        return
    server: Dovecot = request.getfixturevalue("dovecot")
    if not server.running:
        server.start()
    for user, password in DEFAULT_USERS.items():
        if server.users.get(user) != password:
            server.add_user(user, password)
    for user in server.users:
        # users no test ever logged in as have no mail store: skip the needless login
        if server.maildir(user).exists():
            server.reset_user(user)


@pytest.fixture
def imap(dovecot: Dovecot) -> Dovecot:
    """The session Dovecot with every known user's mailboxes emptied for this test."""
    return dovecot


@pytest.fixture
def smtp_capture(tmp_path: Path) -> Iterator[SmtpCapture]:
    server = SmtpCapture().start(tmp_path / "smtp")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres(server_root: Path) -> Iterator[Postgres]:
    server = Postgres().start(server_root / "postgres")
    try:
        yield server
    finally:
        server.stop()


_db_numbers = itertools.count(1)


@pytest.fixture
def pg_url(postgres: Postgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a brand-new database owned by `desk`, for this test only."""
    if not postgres.running:
        postgres.start()
    slug = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())
    name = f"t{next(_db_numbers)}_{slug}"[:63]
    url = postgres.create_database(name)
    yield url
    # an outage test may have left the server down
    if not postgres.running:
        postgres.start()
    postgres.drop_database(name)
