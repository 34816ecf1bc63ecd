"""Raw mail is kept only as long as a conversation can need it (``[retention]``).

The exact bytes of a mail (``RawMessage``, and the outbox's copy of what we sent) serve
audit, re-processing and a byte-identical resend. Once a ticket is closed or resolved
and nothing has happened on it for ``raw_mail_days``, none of that can still be needed:
the bytes go, the parsed messages, events and reports stay. A quarantined mail's bytes go
``raw_mail_days`` after an admin retried or dropped it (one still held waits for a
decision: it may be the only copy of a client's mail). The daemon runs this about hourly
(``desk run --once`` each time); ``oldest_raw_mail`` feeds ``desk status``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.store.db import transaction
from desk.store.models import (
    Event,
    Message,
    Outbox,
    OutboxStatus,
    Quarantine,
    QuarantineStatus,
    RawMessage,
    Status,
    Ticket,
    table,
)

# Rows per transaction: with SQLite the ingest waits while we hold the write lock.
BATCH = 200


@dataclass(slots=True)
class PruneReport:
    raw_messages: int = 0  # received mail whose bytes were deleted
    sent_mail: int = 0  # outbox rows whose bytes were emptied
    quarantined: int = 0  # settled quarantine entries whose bytes were emptied

    @property
    def total(self) -> int:
        return self.raw_messages + self.sent_mail + self.quarantined


def finished_before(cutoff: datetime) -> ColumnElement[bool]:
    """Tickets closed, or resolved and not reopened, with no event and no mail since
    ``cutoff``. The newest event is never older than the closing itself, so this errs
    towards keeping: a ticket's last word (feedback, a late note) restarts the wait."""
    return and_(
        Ticket.status.in_((Status.closed, Status.resolved)),
        or_(Ticket.resolved_at.is_(None), Ticket.resolved_at < cutoff),
        Ticket.created_at < cutoff,
        # correlate_except: the outer query may read messages too, these are others.
        ~select(Event.id).where(Event.ticket_id == Ticket.id, Event.at >= cutoff)
        .correlate_except(Event).exists(),
        ~select(Message.id).where(Message.ticket_id == Ticket.id, Message.created_at >= cutoff)
        .correlate_except(Message).exists(),
    )


def _prune_received(session: Session, cutoff: datetime) -> int:
    rows = session.execute(
        select(Message.id, Message.raw_id).join(Ticket, Message.ticket_id == Ticket.id)
        .where(Message.raw_id.is_not(None), finished_before(cutoff)).limit(BATCH)).all()
    if not rows:
        return 0
    msgs, raws = table(Message), table(RawMessage)
    session.execute(update(msgs).where(msgs.c.id.in_([mid for mid, _ in rows]))
                    .values(raw_id=None))
    session.execute(delete(raws).where(raws.c.id.in_([rid for _, rid in rows])))
    return len(rows)


def _prune_sent(session: Session, cutoff: datetime) -> int:
    # Only mail that went out: a failed row may still be retried by the admin, unchanged.
    # Mail of no ticket (reports, digests) belongs to no conversation: its age decides.
    quiet = select(Ticket.id).where(finished_before(cutoff))
    ids = list(session.scalars(select(Outbox.id).where(
        Outbox.status == OutboxStatus.sent, func.length(Outbox.raw) > 0,
        or_(Outbox.ticket_id.in_(quiet),
            and_(Outbox.ticket_id.is_(None), Outbox.created_at < cutoff))).limit(BATCH)))
    if ids:
        out = table(Outbox)
        session.execute(update(out).where(out.c.id.in_(ids)).values(raw=b""))
    return len(ids)


def _prune_quarantine(session: Session, cutoff: datetime) -> int:
    # The reason, sender and subject stay: `desk quarantine list` still tells what it was.
    ids = list(session.scalars(select(Quarantine.id).where(
        Quarantine.status != QuarantineStatus.held, func.length(Quarantine.raw) > 0,
        func.coalesce(Quarantine.resolved_at, Quarantine.created_at) < cutoff).limit(BATCH)))
    if ids:
        q = table(Quarantine)
        session.execute(update(q).where(q.c.id.in_(ids)).values(raw=b""))
    return len(ids)


def _in_batches(factory: sessionmaker[Session], prune: Callable[[Session, datetime], int],
                cutoff: datetime, stop: Callable[[], bool]) -> int:
    total = 0
    while not stop():
        with transaction(factory) as session:
            n = prune(session, cutoff)
        total += n
        if n < BATCH:
            break
    return total


def prune_raw_mail(factory: sessionmaker[Session], settings: Settings, now: datetime,
                   *, stop: Callable[[], bool] = lambda: False) -> PruneReport:
    """Delete the raw bytes that are past ``[retention] raw_mail_days``, a batch per
    transaction, until none are left (or ``stop`` says so: the daemon is stopping)."""
    cutoff = now - timedelta(days=settings.retention.raw_mail_days)
    return PruneReport(raw_messages=_in_batches(factory, _prune_received, cutoff, stop),
                       sent_mail=_in_batches(factory, _prune_sent, cutoff, stop),
                       quarantined=_in_batches(factory, _prune_quarantine, cutoff, stop))


def oldest_raw_mail(session: Session) -> datetime | None:
    """When the oldest raw mail still kept came in (or went out)."""
    received = session.scalar(select(func.min(Message.created_at)).where(
        Message.raw_id.is_not(None)))
    sent = session.scalar(select(func.min(Outbox.created_at)).where(
        func.length(Outbox.raw) > 0))
    quarantined = session.scalar(select(func.min(Quarantine.created_at)).where(
        func.length(Quarantine.raw) > 0))
    found = [t for t in (received, sent, quarantined) if t is not None]
    return min(found) if found else None
