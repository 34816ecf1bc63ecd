"""Shared by every command: the per-invocation context, failing, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from desk.config.settings import ConfigError, Settings, load_settings
from desk.store.db import make_engine, session_factory, transaction
from desk.store.models import utcnow


def parse_now(value: str) -> datetime:
    try:
        pinned = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--now {value!r} is not an ISO date-time", code=2)
    return pinned if pinned.tzinfo else pinned.replace(tzinfo=UTC)


class Ctx:
    def __init__(self, config: str | None, fixed_now: str | None = None) -> None:
        self.config_path = config
        self.fixed_now = parse_now(fixed_now) if fixed_now else None
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path)
            except ConfigError as exc:
                fail(str(exc), code=2)
        return self._settings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url,
                                       busy_timeout=self.settings.desk.busy_timeout_seconds)
        return self._engine

    def now(self) -> datetime:
        return self.fixed_now or utcnow()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with transaction(session_factory(self.engine)) as session:
            yield session


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"desk: {message}", err=True)
    sys.exit(code)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


pass_ctx = click.make_pass_decorator(Ctx)
