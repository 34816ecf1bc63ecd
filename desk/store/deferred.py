"""How the pipeline writes: few statements, and no unit-of-work flush for a new ticket.

A new ticket writes four or five events, a copy of every mail it queues, the outbox rows
and a receipt; nothing reads them back before the next query. Each statement costs far
more in the database layer than in the database, so such rows wait in the session
(``insert_later``, ``update_later``) and are written as one multi-row statement per
table just before anything could see they are missing: before any query through the
session, before a flush and before a commit (a savepoint's too). A rollback drops them
with the rest of the transaction. Only for rows whose id nobody needs and that refer to
rows already written, and for setting columns to known values.

``insert_now`` is the other half: a new ticket or message whose id is needed at once is
written with one INSERT ... RETURNING and joins the session as if it had been loaded,
instead of going through the unit of work's flush (a quarter of a new ticket's cost).
``query`` runs the per-message reads as prebuilt Core statements.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Executable, Result, Table, bindparam, event, inspect, update
from sqlalchemy.orm import MANYTOONE, Session, SessionTransaction, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

_PENDING = "desk.deferred"
_TOUCHED = "desk.touched"  # [(transaction, object, updated keys or None if inserted)]


def insert_later(session: Session, table: Table, row: dict[str, Any]) -> None:
    """Queue ``row`` (every column of a given table always named, the same set each time)."""
    session.info.setdefault(_PENDING, {}).setdefault(table, []).append(row)


def execute_later(session: Session, statement: Executable, params: dict[str, Any]) -> None:
    """Queue one execution of ``statement`` (a module-level constant, so that executions
    of it are grouped); only for statements whose order among each other is free."""
    session.info.setdefault(_PENDING, {}).setdefault(statement, []).append(params)


def update_later(session: Session, obj: Any, **values: Any) -> None:
    """Set columns of a persistent object with a deferred UPDATE instead of marking the
    object changed (which would cost a flush of its own); the object shows the new values
    at once. Objects not yet written, or with other changes to these columns, are changed
    the ordinary way."""
    state = inspect(obj)
    if not state.persistent or any(state.attrs[k].history.has_changes() for k in values):
        for key, value in values.items():
            setattr(obj, key, value)
        return
    for key, value in values.items():
        set_committed_value(obj, key, value)
    _touched(session, obj, tuple(values))
    statement = _update_by_id(state.mapper.local_table, tuple(sorted(values)))
    execute_later(session, statement, {"row_id": state.identity[0],
                                       **{f"new_{k}": v for k, v in values.items()}})


@lru_cache(maxsize=64)
def _update_by_id(table: Table, keys: tuple[str, ...]) -> Executable:
    return (update(table).where(table.c.id == bindparam("row_id"))
            .values({k: bindparam(f"new_{k}") for k in keys}))


def insert_now(session: Session, obj: Any, *, ordered_by: str | None = None) -> None:
    """Write a new ORM object with one INSERT ... RETURNING and attach it to the session
    as persistent, as if loaded: its id (and every column default) is known on return.

    Many-to-one references set on the object are written as their ids. Collections set on
    it are taken as they are and not written: those rows are the caller's to insert.
    ``ordered_by``: a column (``ticket_id``) within which ids must follow the order the
    program made the rows in; deferred rows of the table that share its value go first."""
    state = inspect(obj)
    mapper = state.mapper
    table = mapper.local_table
    values = {prop.key: state.dict[prop.key] for prop in mapper.column_attrs
              if prop.key in state.dict}
    for rel in mapper.relationships:
        if rel.direction is MANYTOONE and rel.key in state.dict:
            target = state.dict[rel.key]
            for local, remote in rel.local_remote_pairs:
                values[local.key] = getattr(target, remote.key) if target is not None else None
    if ordered_by is not None and any(
            row.get(ordered_by) == values.get(ordered_by) for row in pending(session, table)):
        write_deferred(session)
    row = session.connection().execute(_insert_returning(table), values).one()._mapping
    for prop in mapper.column_attrs:  # as stored, defaults included
        set_committed_value(obj, prop.key, row[table.c[prop.key]])
    make_transient_to_detached(obj)
    session.add(obj)
    _touched(session, obj, None)


def _touched(session: Session, obj: Any, keys: tuple[str, ...] | None) -> None:
    # The ORM does not know what was written here: if this (sub)transaction rolls back,
    # an object inserted now must leave the session and values set now must be read
    # again, as the ORM does with its own new and changed objects.
    session.info.setdefault(_TOUCHED, []).append((_innermost(session), obj, keys))


def _innermost(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


def _within(transaction: SessionTransaction | None, outer: Any) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


@lru_cache(maxsize=64)
def _insert_returning(table: Table) -> Executable:
    return table.insert().returning(*table.c)


def write_deferred(session: Session) -> None:
    waiting: dict[Table | Executable, list[dict[str, Any]]] | None = \
        session.info.pop(_PENDING, None)
    if not waiting:
        return
    connection = session.connection()
    for target, rows in waiting.items():  # in the order they were first used
        connection.execute(target.insert() if isinstance(target, Table) else target, rows)


def query(session: Session, statement: Executable, params: dict[str, Any], *,
          sees_deferred: bool = True) -> Result[Any]:
    """Run a prebuilt Core query (a module-level constant with bound parameters) on the
    session's connection. It sees everything the transaction wrote or deferred, as an ORM
    query would with autoflush, at a fraction of the cost: an ORM execution of a query
    built on each call spends most of its time building and looking up the statement.

    ``sees_deferred=False``: the caller knows nothing pending can change the answer (the
    table is never written later, or ``pending`` is consulted too), so rows keep waiting:
    a backlog's rows then go in once per batch instead of once per message."""
    if sees_deferred and session.autoflush:
        session.flush()
        write_deferred(session)
    return session.connection().execute(statement, params)


def pending(session: Session, table: Table) -> list[dict[str, Any]]:
    """Rows of ``table`` queued with ``insert_later`` and not written yet."""
    return list(session.info.get(_PENDING, {}).get(table, ()))


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
    # What a committing savepoint wrote now belongs to the enclosing transaction.
    if touched := session.info.get(_TOUCHED):
        ending = _innermost(session)
        parent = ending.parent if ending is not None else None
        session.info[_TOUCHED] = [(parent if tx is ending else tx, obj, keys)
                                  for tx, obj, keys in touched
                                  if tx is not ending or parent is not None]


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous: Any) -> None:
    # A savepoint or the whole transaction rolled back: what it deferred is gone with it,
    # and so is what it wrote now (savepoints inside it ended with it, without an event).
    discard_deferred(session)
    kept = []
    for tx, obj, keys in session.info.pop(_TOUCHED, ()):
        if not _within(tx, previous):
            kept.append((tx, obj, keys))
        elif obj in session:
            if keys is None:
                session.expunge(obj)
            else:
                session.expire(obj, list(keys))
    if kept:
        session.info[_TOUCHED] = kept
