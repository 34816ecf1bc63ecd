"""Raw bytes from any source -> one committed outcome, exactly once.

The caller (IMAP, Maildir, LMTP) acknowledges the message at its source only after
``ingest`` returned, i.e. after our transaction committed. If ``ingest`` raises
``TransientError`` nothing was recorded and the source must keep the message.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import IntakeSection, Settings
from desk.inbox.intake import IngestResult, TransientError  # defined where sources see them
from desk.inbox.message import ParsedMessage
from desk.inbox.parse import ParseError, parse_message
from desk.store.db import is_transient, transaction
from desk.store.deferred import begin_savepoint, insert_later, query
from desk.store.directory import forget_cached
from desk.store.models import Message, Quarantine, QuarantineStatus, RawMessage, Receipt, table
from desk.work.pipeline import NO_SENDER, Unprocessable, process

log = logging.getLogger("desk.inbox")


# The raw bytes are written beneath the ORM: only their id is needed, never the object.
_INSERT_RAW = table(RawMessage).insert().returning(table(RawMessage).c.id)
_SEEN = select(Message.id).where(Message.dedupe_key == bindparam("key"))
_RECEIPTS = table(Receipt)


def _receipt(session: Session, source_key: str, dedupe_key: str, outcome: str, now: datetime,
             *, message_pk: int | None = None, quarantine_id: int | None = None) -> None:
    # Deferred with the message's events: one INSERT fewer of its own per message.
    insert_later(session, _RECEIPTS, {
        "source_key": source_key, "dedupe_key": dedupe_key, "outcome": outcome,
        "message_pk": message_pk, "quarantine_id": quarantine_id, "created_at": now})


def _late_duplicate(session: Session, source_key: str, dedupe_key: str, now: datetime
                    ) -> IngestResult:
    """Another worker recorded the same Message-ID (or source position) first."""
    if session.get(Receipt, source_key) is None:
        _receipt(session, source_key, dedupe_key, "duplicate", now)
    return IngestResult("duplicate", reason=f"Message-ID <{dedupe_key}> seen")


def _too_big(raw: bytes, limits: IntakeSection) -> str:
    # Kept whole: raising the cap and `desk quarantine retry` must give the real mail.
    return (f"message is {len(raw):,} bytes, over the {limits.max_message_bytes:,} byte cap "
            "([intake] max_message_bytes)")


def _summary(raw: bytes) -> tuple[str, str]:
    """Best-effort subject and sender for the quarantine list, never raising."""
    return _header(raw, "Subject"), _header(raw, "From")


def _header(raw: bytes, name: str) -> str:
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
        return str(headers.get(name, ""))[:300]
    except Exception:  # only a summary for the list: the raw message is kept whole anyway
        return ""


# The receipt of a message quarantined by its headers alone: it is still at its source,
# unacknowledged, and `desk quarantine retry` fetches it from there.
LEFT_AT_SOURCE = "left_at_source"


def _left_key(headers: bytes, source_key: str) -> str:
    # By Message-ID where there is one: after a UIDVALIDITY change the folder is read
    # again and the same message, at its new position, must find its entry.
    message_id = _header(headers, "Message-ID").strip().strip("<>")
    return f"{LEFT_AT_SOURCE}:{message_id or source_key}"[:998]


class Ingestor:
    def __init__(
        self, factory: sessionmaker[Session], settings: Settings, clock: Callable[[], datetime]
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.clock = clock

    @property
    def max_message_bytes(self) -> int:
        return self.settings.intake.max_message_bytes

    def ingest(self, source_key: str, raw: bytes, *, source: str) -> IngestResult:
        """One message (LMTP, or a batch being sorted out): a batch of one."""
        return self.ingest_batch([(source_key, raw)], source=source)[0]

    def _record(self, source_key: str, raw: bytes, msg: ParsedMessage, source: str) -> IngestResult:
        with transaction(self.factory) as session:
            return self._record_in(session, source_key, raw, msg, source, self.clock())

    def _record_in(self, session: Session, source_key: str, raw: bytes, msg: ParsedMessage,
                   source: str, now: datetime) -> IngestResult:
        # Inbound messages are written at once (never deferred): nothing pending matters.
        existing = query(session, _SEEN, {"key": msg.message_id}, sees_deferred=False).scalar()
        if existing is not None:
            _receipt(session, source_key, msg.message_id, "duplicate", now, message_pk=existing)
            return IngestResult("duplicate", reason=f"Message-ID <{msg.message_id}> seen")
        raw_id = session.connection().execute(_INSERT_RAW, {"data": raw}).scalar_one()
        outcome = process(session, msg, self.settings, now=now, source=source, raw_id=raw_id)
        _receipt(session, source_key, msg.message_id, "ticketed", now)
        return IngestResult("ticketed", ticket_id=outcome.ticket_id,
                            new_ticket=outcome.new_ticket, acknowledged=outcome.acknowledged)

    # -- several messages, one transaction ----------------------------------------------
    def ingest_batch(self, items: Sequence[tuple[str, bytes]], *, source: str
                     ) -> list[IngestResult]:
        """Ingest ``(source_key, raw)`` pairs in one transaction. The caller acknowledges
        the whole batch at the source after we return (committed) and nothing of it when
        we raise ``TransientError``.

        One commit per batch instead of per message is what a backlog needs; the exactly-
        once rules are unchanged, as receipts and source acknowledgement still go together.
        Several messages run without savepoints, so their deferred rows go in together at
        the commit (desk/deferred.py); if one fails, the batch is rolled back and ingested
        one message per transaction, where a message that fails is rolled back alone (a
        savepoint) and quarantined. Unparseable or oversized mail and mail without a
        sender never fail: they are quarantined in place.
        """
        try:
            with transaction(self.factory) as session:
                done = set(session.scalars(select(Receipt.source_key).where(
                    Receipt.source_key.in_([key for key, _ in items]))))
                alone = len(items) == 1
                return [IngestResult("already") if key in done
                        else self._one_of_batch(session, key, raw, source, alone=alone)
                        for key, raw in items]
        except TransientError:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise TransientError(str(exc)) from exc
            # Nothing was recorded. One transaction per message sorts out which one is at
            # fault, and that one is quarantined on its own.
            if len(items) > 1:
                log.warning("batch of %d failed (%s: %s); ingesting one by one", len(items),
                            type(exc).__name__, exc)
                return [self.ingest(key, raw, source=source) for key, raw in items]
            key, raw = items[0]
            reason = f"{type(exc).__name__}: {exc}"
            log.exception("quarantining %s: %s", key, reason)
            return [self.quarantine(key, raw, reason, traceback.format_exc())]

    def _one_of_batch(self, session: Session, key: str, raw: bytes, source: str, *,
                      alone: bool) -> IngestResult:
        now = self.clock()
        limits = self.settings.intake
        if len(raw) > limits.max_message_bytes:
            return self._quarantine_in(session, key, raw, now, _too_big(raw, limits))
        try:
            msg = parse_message(raw, max_attachment_bytes=limits.max_attachment_bytes)
        except ParseError as exc:
            return self._quarantine_in(session, key, raw, now, f"cannot parse: {exc}")
        if not alone:
            if msg.sender is None:  # refused before anything is written: no rollback needed
                return self._quarantine_in(session, key, raw, now, NO_SENDER)
            return self._record_in(session, key, raw, msg, source, now)
        savepoint = begin_savepoint(session)
        try:
            result = self._record_in(session, key, raw, msg, source, now)
            savepoint.commit()
            return result
        except Exception as exc:
            savepoint.rollback()
            forget_cached(session)  # objects the savepoint touched are stale now
            if is_transient(exc):
                raise
            if isinstance(exc, IntegrityError):
                return _late_duplicate(session, key, msg.message_id, now)
            if isinstance(exc, Unprocessable):
                return self._quarantine_in(session, key, raw, now, str(exc))
            reason = f"{type(exc).__name__}: {exc}"
            log.exception("quarantining %s: %s", key, reason)
            return self._quarantine_in(session, key, raw, now, reason, traceback.format_exc())

    def _record_duplicate(self, source_key: str, dedupe_key: str) -> IngestResult:
        with transaction(self.factory) as session:
            return _late_duplicate(session, source_key, dedupe_key, self.clock())

    def quarantine(
        self, source_key: str, raw: bytes, reason: str, detail: str = ""
    ) -> IngestResult:
        try:
            with transaction(self.factory) as session:
                if session.get(Receipt, source_key) is not None:
                    return IngestResult("already")
                return self._quarantine_in(session, source_key, raw, self.clock(), reason,
                                           detail)
        except Exception as exc:
            # Not even the quarantine row could be written: the source keeps the message.
            raise TransientError(f"cannot quarantine: {exc}") from exc

    def _quarantine_in(self, session: Session, source_key: str, raw: bytes, now: datetime,
                       reason: str, detail: str = "") -> IngestResult:
        subject, sender = _summary(raw)
        row = Quarantine(source_key=source_key, raw=raw, reason=reason[:2000],
                         detail=detail[-20000:], subject=subject, sender=sender, created_at=now)
        session.add(row)
        session.flush()
        _receipt(session, source_key, f"quarantine:{row.id}", "quarantined", now,
                 quarantine_id=row.id)
        log.warning("quarantined %s as #%s: %s", source_key, row.id, reason)
        return IngestResult("quarantined", quarantine_id=row.id, reason=reason)

    # -- too big to download -------------------------------------------------------------
    def quarantine_unfetched(self, source_key: str, headers: bytes, size: int
                             ) -> IngestResult:
        """A message over the cap that its source did not download: its headers and size
        are quarantined and its position recorded (so it is not handed over again), and
        the source leaves it unacknowledged for `desk quarantine retry` to fetch."""
        try:
            with transaction(self.factory) as session:
                return self._record_left(session, source_key, headers, size)
        except Exception as exc:
            # Nothing recorded: the source lists the message again next time.
            raise TransientError(f"cannot quarantine: {exc}") from exc

    def _record_left(self, session: Session, source_key: str, headers: bytes, size: int
                    ) -> IngestResult:
        if session.get(Receipt, source_key) is not None:
            return IngestResult("already")
        now, dedupe = self.clock(), _left_key(headers, source_key)
        moved = session.scalar(
            select(Quarantine).join(Receipt, Receipt.quarantine_id == Quarantine.id)
            .where(Receipt.dedupe_key == dedupe, Receipt.outcome == LEFT_AT_SOURCE,
                   Quarantine.status == QuarantineStatus.held).limit(1))
        if moved is not None:
            # The folder was numbered anew: the entry follows its message to the new UID.
            log.info("quarantine #%s is now at %s", moved.id, source_key)
            moved.source_key = source_key
            _receipt(session, source_key, dedupe, LEFT_AT_SOURCE, now, quarantine_id=moved.id)
            return IngestResult("already", quarantine_id=moved.id)
        cap = self.settings.intake.max_message_bytes
        reason = (f"message is {size:,} bytes, over the {cap:,} byte cap ([intake] "
                  "max_message_bytes): left on the server unread, headers kept; raise the "
                  "cap, then `desk quarantine retry` fetches it")
        subject, sender = _summary(headers)
        row = Quarantine(source_key=source_key, raw=headers, reason=reason, subject=subject,
                         sender=sender, created_at=now)
        session.add(row)
        session.flush()
        _receipt(session, source_key, dedupe, LEFT_AT_SOURCE, now, quarantine_id=row.id)
        log.warning("quarantined %s as #%s: %s", source_key, row.id, reason)
        return IngestResult("quarantined", quarantine_id=row.id, reason=reason)

    def left_at_source(self, quarantine_id: int) -> str | None:
        """Where a held entry's message still is, when only its headers were kept (the
        source key to fetch it by); None when the entry holds the whole message."""
        with self.factory() as session:
            row = session.get(Quarantine, quarantine_id)
            if row is None or row.status != QuarantineStatus.held:
                raise LookupError(f"no held quarantine entry {quarantine_id}")
            left = session.scalar(select(Receipt.source_key).where(
                Receipt.quarantine_id == quarantine_id, Receipt.outcome == LEFT_AT_SOURCE,
                Receipt.source_key == row.source_key))
            return row.source_key if left is not None else None

    def retry_quarantined(self, quarantine_id: int, raw: bytes | None = None) -> IngestResult:
        """Run the pipeline again on a quarantined message (after a fix or a config change);
        ``raw``: the message as fetched again from its source, when only its headers were
        kept."""
        with self.factory() as session:
            row = session.get(Quarantine, quarantine_id)
            if row is None or row.status != QuarantineStatus.held:
                raise LookupError(f"no held quarantine entry {quarantine_id}")
            raw = row.raw if raw is None else raw
        cap = self.settings.intake.max_message_bytes
        if len(raw) > cap:
            raise Unprocessable(f"still {len(raw):,} bytes, over the {cap:,} byte cap")
        msg = parse_message(raw, max_attachment_bytes=self.settings.intake.max_attachment_bytes)
        key = f"quarantine:{quarantine_id}"
        try:
            result = self._record(key, raw, msg, "quarantine")
        except IntegrityError:
            result = self._record_duplicate(key, msg.message_id)
        with transaction(self.factory) as session:
            row = session.get(Quarantine, quarantine_id)
            assert row is not None
            row.status = QuarantineStatus.retried
            row.resolved_at = self.clock()
        return result
