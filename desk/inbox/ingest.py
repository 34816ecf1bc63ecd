"""Raw bytes from any source -> one committed outcome, exactly once.

The caller (IMAP, Maildir, LMTP) acknowledges the message at its source only after
``ingest`` returned, i.e. after our transaction committed. If ``ingest`` raises
``TransientError`` nothing was recorded and the source must keep the message.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from desk.config import Settings
from desk.db import is_transient, transaction
from desk.inbox.message import ParsedMessage
from desk.inbox.parse import ParseError, parse_message
from desk.models import Message, Quarantine, RawMessage, Receipt
from desk.pipeline import Unprocessable, process

log = logging.getLogger("desk.inbox")


class TransientError(Exception):
    """The database is locked or unreachable: keep the message at the source, retry."""


@dataclass(slots=True)
class IngestResult:
    outcome: str  # ticketed | duplicate | quarantined | already
    ticket_id: int | None = None
    quarantine_id: int | None = None
    new_ticket: bool = False
    acknowledged: bool = False
    reason: str = ""


def _summary(raw: bytes) -> tuple[str, str]:
    """Best-effort subject and sender for the quarantine list, never raising."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
        return str(headers.get("Subject", ""))[:300], str(headers.get("From", ""))[:300]
    except Exception:  # only a summary for the list: the raw message is kept whole anyway
        return "", ""


class Ingestor:
    def __init__(
        self, factory: sessionmaker[Session], settings: Settings, clock: Callable[[], datetime]
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.clock = clock

    def ingest(self, source_key: str, raw: bytes, *, source: str) -> IngestResult:
        try:
            return self._ingest(source_key, raw, source)
        except TransientError:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise TransientError(str(exc)) from exc
            reason = f"{type(exc).__name__}: {exc}"
            log.exception("quarantining %s: %s", source_key, reason)
            return self.quarantine(source_key, raw, reason, traceback.format_exc())

    def _ingest(self, source_key: str, raw: bytes, source: str) -> IngestResult:
        limits = self.settings.intake
        if len(raw) > limits.max_message_bytes:
            # Kept whole: raising the cap and `desk quarantine retry` must give the real mail.
            return self.quarantine(
                source_key, raw,
                f"message is {len(raw):,} bytes, over the {limits.max_message_bytes:,} byte cap "
                "([intake] max_message_bytes)",
            )
        with self.factory() as session:
            if session.get(Receipt, source_key) is not None:
                return IngestResult("already")
        try:
            msg = parse_message(raw, max_attachment_bytes=limits.max_attachment_bytes)
        except ParseError as exc:
            return self.quarantine(source_key, raw, f"cannot parse: {exc}")
        try:
            return self._record(source_key, raw, msg, source)
        except Unprocessable as exc:
            return self.quarantine(source_key, raw, str(exc))
        except IntegrityError:
            # Another worker recorded the same Message-ID (or source position) first.
            return self._record_duplicate(source_key, msg.message_id)

    def _record(self, source_key: str, raw: bytes, msg: ParsedMessage, source: str) -> IngestResult:
        now = self.clock()
        with transaction(self.factory) as session:
            existing = session.scalar(
                select(Message.id).where(Message.dedupe_key == msg.message_id)
            )
            if existing is not None:
                session.add(Receipt(source_key=source_key, dedupe_key=msg.message_id,
                                    outcome="duplicate", message_pk=existing, created_at=now))
                return IngestResult("duplicate", reason=f"Message-ID <{msg.message_id}> seen")
            raw_row = RawMessage(data=raw)
            session.add(raw_row)
            session.flush()
            outcome = process(session, msg, self.settings, now=now, source=source,
                              raw_id=raw_row.id)
            session.add(Receipt(source_key=source_key, dedupe_key=msg.message_id,
                                outcome="ticketed", created_at=now))
            return IngestResult("ticketed", ticket_id=outcome.ticket_id,
                                new_ticket=outcome.new_ticket, acknowledged=outcome.acknowledged)

    def _record_duplicate(self, source_key: str, dedupe_key: str) -> IngestResult:
        with transaction(self.factory) as session:
            if session.get(Receipt, source_key) is None:
                session.add(Receipt(source_key=source_key, dedupe_key=dedupe_key,
                                    outcome="duplicate", created_at=self.clock()))
        return IngestResult("duplicate", reason=f"Message-ID <{dedupe_key}> seen")

    def quarantine(
        self, source_key: str, raw: bytes, reason: str, detail: str = ""
    ) -> IngestResult:
        subject, sender = _summary(raw)
        now = self.clock()
        try:
            with transaction(self.factory) as session:
                if session.get(Receipt, source_key) is not None:
                    return IngestResult("already")
                row = Quarantine(source_key=source_key, raw=raw, reason=reason[:2000],
                                 detail=detail[-20000:], subject=subject, sender=sender,
                                 created_at=now)
                session.add(row)
                session.flush()
                session.add(Receipt(source_key=source_key, dedupe_key=f"quarantine:{row.id}",
                                    outcome="quarantined", quarantine_id=row.id, created_at=now))
                qid = row.id
        except Exception as exc:
            # Not even the quarantine row could be written: the source keeps the message.
            raise TransientError(f"cannot quarantine: {exc}") from exc
        log.warning("quarantined %s as #%s: %s", source_key, qid, reason)
        return IngestResult("quarantined", quarantine_id=qid, reason=reason)

    def retry_quarantined(self, quarantine_id: int) -> IngestResult:
        """Run the pipeline again on a quarantined message (after a fix or a config change)."""
        with self.factory() as session:
            row = session.get(Quarantine, quarantine_id)
            if row is None or row.status != "held":
                raise LookupError(f"no held quarantine entry {quarantine_id}")
            raw = row.raw
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
            row.status = "retried"
            row.resolved_at = self.clock()
        return result
