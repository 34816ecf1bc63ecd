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
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session

from desk.config.settings import ConfigError, Settings, hide_secrets_of, load_settings
from desk.logs import mask_secrets
from desk.store.db import (
    display_url,
    make_engine,
    session_factory,
    transaction,
)
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
            hide_secrets_of(self._settings)
        return self._settings

    def database_shown(self) -> str:
        """The database as a message may name it (password masked)."""
        return display_url(self.settings.database_url)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = make_engine(self.settings.database_url,
                                           busy_timeout=self.settings.desk.busy_timeout_seconds)
            except (ArgumentError, NoSuchModuleError, ValueError) as exc:
                fail(f"desk.database_url {self.database_shown()} is not a database URL desk "
                     f"can use: {one_line(exc)}", code=2)
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


# The same words for the same option everywhere.
JSON_HELP = "Print JSON instead of text (for scripts)."


def fail(message: str, code: int = 1) -> NoReturn:
    # Messages often carry an exception's text, and drivers put URLs into theirs.
    click.echo(f"desk: {mask_secrets(message)}", err=True)
    sys.exit(code)


def one_line(exc: BaseException) -> str:
    """A database error without SQLAlchemy's link and line breaks."""
    text = str(exc).split("(Background on this error at:")[0]
    return " ".join(text.split())[:500]


class DeskGroup(click.Group):
    """The root group: a database that is down, refuses the login or has no such driver
    ends any command with one line naming it (password masked), not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (OperationalError, InterfaceError, NoSuchModuleError) as exc:
            shown = c.database_shown() if (c := ctx.find_object(Ctx)) else "(unknown)"
            fail(f"cannot use the database {shown}: {one_line(exc)}")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


pass_ctx = click.make_pass_decorator(Ctx)
