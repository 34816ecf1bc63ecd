"""The desk installation the integration tests start from.

- `make_env` (factory): ``make_env(name="desk", **options)`` builds a DeskEnv under
  ``tmp_path / name`` (config written; unless ``seed=False``, ``desk init`` run and staff
  and clients seeded) and closes it after the test. The keyword arguments are DeskEnv's
  (mailbox, smtp, database_url, extra, seed). Call it again with another name for a
  second installation in the same test.
- `env`: the plain installation, ``make_env()``: local maildir in, maildir out, SQLite.

A module whose installation differs overrides `env` with its own call to the factory,
asking for the server fixtures it wires in before `make_env`, so the installation is
closed before those servers stop::

    @pytest.fixture
    def env(imap: Dovecot, smtp_capture: SmtpCapture, make_env: EnvFactory) -> DeskEnv:
        return make_env(mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture))
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import DeskEnv, EnvFactory


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[EnvFactory]:
    made: list[DeskEnv] = []

    def factory(name: str = "desk", *, mailbox: dict[str, Any] | bool | None = None,
                smtp: dict[str, Any] | None = None, database_url: str | None = None,
                extra: dict[str, dict[str, Any]] | None = None, seed: bool = True) -> DeskEnv:
        env = DeskEnv(tmp_path / name, mailbox=mailbox, smtp=smtp, database_url=database_url,
                      extra=extra, seed=seed)
        made.append(env)
        return env

    yield factory
    for env in reversed(made):
        env.close()


@pytest.fixture
def env(make_env: EnvFactory) -> DeskEnv:
    return make_env()
