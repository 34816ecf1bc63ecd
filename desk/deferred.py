"""Append-only rows written together: one multi-row INSERT per table instead of one
statement per row.

A new ticket writes four or five events, a copy of every mail it queues and a receipt;
nothing reads them back before the next query. Each statement costs far more in the
database layer than in the database, so such rows wait in the session and are written
just before anything could see they are missing: before any query through the session,
before a flush and before a commit (a savepoint's too). A rollback drops them with the
rest of the transaction.

Only for rows whose id nobody needs and that refer to rows already written, and for
counter increments (which commute).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Executable, Table, event
from sqlalchemy.orm import Session, SessionTransaction

_PENDING = "desk.deferred"


def insert_later(session: Session, table: Table, row: dict[str, Any]) -> None:
    """Queue ``row`` (every column of a given table always named, the same set each time)."""
    session.info.setdefault(_PENDING, {}).setdefault(table, []).append(row)


def execute_later(session: Session, statement: Executable, params: dict[str, Any]) -> None:
    """Queue one execution of ``statement`` (a module-level constant, so that executions
    of it are grouped); only for statements whose order among each other is free."""
    session.info.setdefault(_PENDING, {}).setdefault(statement, []).append(params)


def write_deferred(session: Session) -> None:
    pending: dict[Table | Executable, list[dict[str, Any]]] | None = \
        session.info.pop(_PENDING, None)
    if not pending:
        return
    connection = session.connection()
    for target, rows in pending.items():  # in the order they were first used
        connection.execute(target.insert() if isinstance(target, Table) else target, rows)


def begin_savepoint(session: Session) -> SessionTransaction:
    """A savepoint with nothing of the enclosing transaction still waiting: rolling the
    savepoint back must not take rows of its parent with it."""
    write_deferred(session)
    return session.begin_nested()


def discard_deferred(session: Session) -> None:
    session.info.pop(_PENDING, None)


@event.listens_for(Session, "after_transaction_create")
def _no_rows_across_savepoints(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested and session.info.get(_PENDING):
        raise RuntimeError("rows still deferred when a savepoint began: "
                           "use deferred.begin_savepoint")


@event.listens_for(Session, "do_orm_execute")
def _before_query(state: Any) -> None:
    # Like the ORM's autoflush, and off with it: under ``no_autoflush`` the caller says
    # the query cannot depend on what is pending.
    if state.session.autoflush:
        write_deferred(state.session)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    write_deferred(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_deferred(session)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    # A savepoint or the whole transaction rolled back: what it deferred is gone with it.
    discard_deferred(session)
