"""desk/deferred.py writes beneath the ORM; a rolled-back savepoint must undo that as the
ORM undoes its own work: rows inserted now leave the session, values set now are read
again from the database, and deferred rows are never written."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desk.store.deferred import begin_savepoint, insert_later, insert_now, update_later
from desk.store.models import Event, Ticket, utcnow


def _ticket(session: Session) -> Ticket:
    ticket = Ticket(subject="Site down", requester_email="jo@client.test", created_at=utcnow(),
                    updated_at=utcnow())
    insert_now(session, ticket)
    return ticket


def test_a_rolled_back_savepoint_undoes_what_it_wrote_beneath_the_orm(session: Session) -> None:
    kept = _ticket(session)
    savepoint = begin_savepoint(session)
    gone = _ticket(session)
    update_later(session, kept, message_count=5)
    insert_later(session, Event.__table__, {
        "ticket_id": kept.id, "at": utcnow(), "kind": "note", "detail": "x", "actor": "desk",
        "data": None})
    assert kept.message_count == 5
    savepoint.rollback()

    assert gone not in session
    assert session.get(Ticket, gone.id) is None
    assert kept.message_count == 0  # read again: the deferred UPDATE never ran
    session.commit()
    assert session.scalar(select(func.count()).select_from(Event)) == 0
    assert session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_what_a_committed_savepoint_wrote_stays(session: Session) -> None:
    kept = _ticket(session)
    savepoint = begin_savepoint(session)
    update_later(session, kept, message_count=2)
    savepoint.commit()
    session.commit()
    session.expire_all()
    assert session.get(Ticket, kept.id).message_count == 2  # type: ignore[union-attr]
