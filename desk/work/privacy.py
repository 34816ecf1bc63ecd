"""One person's personal data (UK GDPR / GDPR): finding it (``Person``, ``message_relations``,
used by ``desk privacy export`` too) and erasing it (``erase``, ``desk privacy erase``).

Erasing keeps the desk's records countable and its decisions explainable: ticket rows,
times, tiers, ratings, estimate decisions and events stay; what identifies the person is
removed (their mail's bodies, attachments and raw bytes) or replaced by a stable
pseudonym, so one person's tickets still belong together after the erasure.

Identifiers the machinery depends on are kept as they are: Message-IDs (threading),
de-duplication keys and receipts (a re-delivered mail must not come back as new),
outbox event keys (one event, one mail). None of them is an address.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import getaddresses
from functools import cached_property
from typing import Any
from typing import cast as cast_type

from sqlalchemy import (
    JSON,
    ColumnElement,
    Engine,
    Executable,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import QueryableAttribute, Session

from desk.store.models import (
    OPEN_STATUSES,
    Attachment,
    Base,
    Client,
    Contact,
    Feedback,
    Message,
    Outbox,
    OutboxStatus,
    Quarantine,
    QuarantineStatus,
    RawMessage,
    Staff,
    Ticket,
    table,
)
from desk.store.search import forget_removed_text

Column = ColumnElement[Any] | QueryableAttribute[Any]
ERASED_DOMAIN = "erased.invalid"
ERASED_NAME = "Erased person"

# Columns never rewritten: identifiers the desk's exactly-once and threading rules rest on.
KEPT_COLUMNS = frozenset({
    ("messages", "message_id"), ("messages", "dedupe_key"), ("messages", "in_reply_to"),
    ("messages", "references"), ("outbox", "event_key"), ("outbox", "message_id"),
    ("receipts", "source_key"), ("receipts", "dedupe_key"), ("estimates", "message_id"),
    ("estimates", "decision_message_id"), ("feedback", "message_id"),
    ("quarantine", "source_key"),
})
# Tables holding no personal data: the daemon's own bookkeeping.
SKIPPED_TABLES = frozenset({"mailbox_state", "workers"})

_BATCH = 200  # rows of raw bytes read at a time: big mail must not fill the memory
_LOCAL = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~.-"  # what may stand next to an address inside one


def pseudonym(address: str, secret: str) -> str:
    """The same address always gives the same pseudonym (with the same secret), so a
    person's tickets stay together; without the secret it cannot be turned back."""
    digest = hmac.new(secret.encode(), address.strip().lower().encode(), hashlib.sha256)
    return f"erased-{digest.hexdigest()[:12]}@{ERASED_DOMAIN}"


def is_pseudonym(address: str) -> bool:
    return address.strip().lower().endswith("@" + ERASED_DOMAIN)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Person:
    """Who is looked for: the address (any case) and the names they were seen under."""

    address: str
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, address: str, names: Iterable[str] = ()) -> Person:
        # A name of one or two letters would match inside unrelated words.
        kept = {n.strip() for n in names if len(n.strip()) >= 3 and n.strip() != ERASED_NAME}
        return cls(address.strip().lower(), tuple(sorted(kept, key=lambda n: (-len(n), n))))

    @cached_property  # looked for in every row of a scan
    def _address_re(self) -> re.Pattern[str]:
        # Not inside a longer address: bob@x.test is not in jimbob@x.test or bob@x.test.uk.
        return re.compile(rf"(?<![{_LOCAL}]){re.escape(self.address)}(?![A-Za-z0-9-]|\.\w)",
                          re.IGNORECASE)

    @property
    def full_names(self) -> tuple[str, ...]:
        """Names specific enough to look for on their own (first and last name)."""
        return tuple(n for n in self.names if " " in n)

    def _names_re(self, names: tuple[str, ...]) -> re.Pattern[str] | None:
        if not names:
            return None
        return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)",
                          re.IGNORECASE)

    def mentioned_in(self, text: str | None) -> bool:
        return bool(text) and self._address_re.search(text or "") is not None

    def named_in(self, text: str | None) -> bool:
        pattern = self._names_re(self.full_names)
        return bool(text) and pattern is not None and pattern.search(text or "") is not None

    def mentioned_in_bytes(self, data: bytes | None) -> bool:
        """Raw mail: the address as written, or quoted-printable (``=40`` for ``@``)."""
        if not data:
            return False
        lowered = data.lower()
        needle = self.address.encode("utf-8", "replace")
        return needle in lowered or needle.replace(b"@", b"=40") in lowered

    def like_address(self, column: Column) -> ColumnElement[bool]:
        """SQL's rough cut (case-insensitive substring); ``mentioned_in`` decides."""
        return column.ilike(_like(self.address), escape="\\")

    def like_any(self, column: Column) -> ColumnElement[bool]:
        return or_(self.like_address(column),
                   *[column.ilike(_like(n), escape="\\") for n in self.full_names])

    def scrub(self, text: str, replacement: str) -> str:
        """The address replaced by ``replacement``, and the names by ``ERASED_NAME``: all
        of them where the address appears, else only full names."""
        mentioned = self.mentioned_in(text)
        text = self._address_re.sub(replacement, text)
        pattern = self._names_re(self.names if mentioned else self.full_names)
        return pattern.sub(ERASED_NAME, text) if pattern is not None else text

    def scrub_value(self, value: Any, replacement: str) -> Any:
        """A JSON value with every string in it scrubbed."""
        if isinstance(value, str):
            return self.scrub(value, replacement)
        if isinstance(value, list):
            return [self.scrub_value(v, replacement) for v in value]
        if isinstance(value, dict):
            return {k: self.scrub_value(v, replacement) for k, v in value.items()}
        return value


def names_of(session: Session, address: str) -> set[str]:
    """Every name the address was stored with: directory, tickets, mail, quarantine."""
    address = address.strip().lower()
    names: set[str] = set()
    for stmt in (select(Contact.name).where(func.lower(Contact.email) == address),
                 select(Staff.name).where(func.lower(Staff.email) == address),
                 select(Ticket.requester_name).where(
                     func.lower(Ticket.requester_email) == address).distinct(),
                 select(Message.from_name).where(
                     func.lower(Message.from_addr) == address).distinct()):
        names.update(n for n in session.scalars(stmt) if n)
    for sender in session.scalars(select(Quarantine.sender).where(
            Quarantine.sender.ilike(_like(address), escape="\\"))):
        names.update(name for name, addr in getaddresses([sender])
                     if name and addr.lower() == address)
    return names


def requested_tickets(session: Session, person: Person) -> set[int]:
    return set(session.scalars(select(Ticket.id).where(
        func.lower(Ticket.requester_email) == person.address)))


def message_relations(session: Session, person: Person) -> dict[int, str]:
    """Message id -> how the message concerns the person: ``from``, ``to``, ``cc`` (their
    mail and the mail we sent them), ``their ticket`` (anything else on a ticket they
    opened: the notices that carried their words to staff, notes about their request) or
    ``mentions`` (elsewhere, the text names their address or full name)."""
    theirs = requested_tickets(session, person)
    columns = (Message.from_addr, Message.to_addrs, Message.cc_addrs, Message.body_text,
               Message.body_html)
    rows = session.execute(select(Message.id, Message.ticket_id, *columns).where(or_(
        Message.ticket_id.in_(theirs), *[person.like_any(c) for c in columns]))
        .order_by(Message.id))
    found: dict[int, str] = {}
    for mid, tid, sender, to, cc, text, html in rows:
        if (sender or "").strip().lower() == person.address:
            found[mid] = "from"
        elif person.mentioned_in(to):
            found[mid] = "to"
        elif person.mentioned_in(cc):
            found[mid] = "cc"
        elif tid in theirs:
            found[mid] = "their ticket"
        elif any(person.mentioned_in(t) or person.named_in(t) for t in (text, html)):
            found[mid] = "mentions"
    return found


def _batches(session: Session, tbl: Table, columns: list[str]
             ) -> Iterator[list[tuple[Any, ...]]]:
    """Every row of ``tbl`` (its id and ``columns``), a batch at a time, in id order."""
    last = 0
    id_col = tbl.c.id
    while True:
        rows = list(session.execute(
            select(id_col, *[tbl.c[c] for c in columns]).where(id_col > last)
            .order_by(id_col).limit(_BATCH)))
        if not rows:
            return
        yield [tuple(r) for r in rows]
        last = rows[-1][0]


@dataclass
class Erasure:
    """What ``erase`` changed (or, on a dry run, would change), kind by kind."""

    address: str
    pseudonym: str
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, n: int) -> None:
        if n:
            self.counts[kind] = self.counts.get(kind, 0) + n

    @property
    def found(self) -> bool:
        return bool(self.counts)


def erase(session: Session, address: str, secret: str, now: datetime) -> Erasure:
    """Remove one person's personal data in the caller's transaction (roll it back for a
    dry run). Erasing twice finds nothing the second time."""
    address = address.strip().lower()
    person = Person.of(address, names_of(session, address))
    done = Erasure(address, pseudonym(address, secret))
    if session.get_bind().dialect.name == "sqlite":
        # Freed pages are zeroed, not left readable in the database file.
        session.connection().exec_driver_sql("PRAGMA secure_delete = ON")
    message_ids = _erase_mail(session, person, done)
    _erase_raw(session, person, done, message_ids)
    _erase_quarantine(session, person, done, now)
    _erase_outbox(session, person, done, message_ids)
    _erase_directory(session, person, done)
    _replace_everywhere(session, person, done)
    forget_removed_text(session)  # the search index's entries of the removed text, too
    still_open = session.execute(select(Ticket.id, Ticket.status).where(
        Ticket.requester_email == done.pseudonym, Ticket.status.in_(OPEN_STATUSES)))
    done.notes += [f"ticket #{tid} is still {status}; the desk can no longer write to its "
                   "requester" for tid, status in still_open]
    managed = session.scalars(select(Client.name).where(or_(
        Client.account_manager == done.pseudonym, Client.project_manager == done.pseudonym,
        Client.backup == done.pseudonym)).order_by(Client.name)).all()
    if managed:
        done.notes.append(f"{', '.join(managed)} had them as a manager: name someone else "
                          "(desk client add NAME --account-manager ...)")
    session.expire_all()  # everything was changed beneath the ORM
    return done


def _erase_mail(session: Session, person: Person, done: Erasure) -> list[int]:
    """Their mail (from, to or copied to them) and the messages of the tickets they
    opened: bodies and attachments' content. Returns the ids of every message concerning
    them, whose raw bytes go next (bytes cannot be scrubbed)."""
    relations = message_relations(session, person)
    # Someone else's mail that only names them keeps its text, scrubbed of who they are
    # (``_replace_everywhere``): it is that other person's mail.
    ids = [mid for mid, relation in relations.items() if relation != "mentions"]
    msgs, atts = table(Message), table(Attachment)
    for chunk in _chunks(ids):
        bodies = update(msgs).where(
            msgs.c.id.in_(chunk), or_(msgs.c.body_text != "", msgs.c.body_html.is_not(None)))
        done.add("message bodies removed",
                 _count(session, bodies.values(body_text="", body_html=None)))
        files = update(atts).where(atts.c.message_pk.in_(chunk), atts.c.content.is_not(None))
        done.add("attachments' content removed", _count(session, files.values(content=None)))
    return list(relations)


def _count(session: Session, stmt: Executable) -> int:
    """Rows an UPDATE or DELETE touched."""
    result = session.execute(stmt)
    return cast_type(CursorResult[Any], result).rowcount


def _chunks(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _erase_raw(session: Session, person: Person, done: Erasure, message_ids: list[int]) -> None:
    """Raw bytes of their messages, and any other raw mail naming them (a staff reply
    quoting them, a mail copying them)."""
    raw_ids: set[int] = set()
    for chunk in _chunks(message_ids):
        raw_ids.update(session.scalars(select(Message.raw_id).where(
            Message.id.in_(chunk), Message.raw_id.is_not(None))))
    for rows in _batches(session, table(RawMessage), ["data"]):
        raw_ids.update(rid for rid, data in rows if person.mentioned_in_bytes(data))
    msgs, raws = table(Message), table(RawMessage)
    for chunk in _chunks(sorted(raw_ids)):
        session.execute(update(msgs).where(msgs.c.raw_id.in_(chunk)).values(raw_id=None))
        done.add("raw messages deleted",
                 _count(session, delete(raws).where(raws.c.id.in_(chunk))))


def _erase_quarantine(session: Session, person: Person, done: Erasure, now: datetime) -> None:
    """Quarantined mail from or naming them: its bytes go; the entry stays, dropped."""
    q = table(Quarantine)
    hits: list[int] = []
    for rows in _batches(session, q, ["sender", "subject", "raw"]):
        hits += [qid for qid, sender, subject, raw in rows if raw and (
            person.mentioned_in(sender) or person.mentioned_in(subject)
            or person.mentioned_in_bytes(raw))]
    for chunk in _chunks(hits):
        session.execute(update(q).where(q.c.id.in_(chunk), q.c.status == QuarantineStatus.held)
                        .values(status=QuarantineStatus.dropped, resolved_at=now))
        done.add("quarantined mail's bytes removed",
                 _count(session, update(q).where(q.c.id.in_(chunk)).values(raw=b"")))


def _erase_outbox(session: Session, person: Person, done: Erasure,
                  message_ids: list[int]) -> None:
    """Mail we sent (or were to send) them, about them or on their tickets: the stored
    bytes go. What was not sent yet never will be: its recipient is erased, or its
    content would be."""
    out = table(Outbox)
    theirs: set[str] = set()
    for chunk in _chunks(message_ids):
        theirs.update(session.scalars(select(Message.message_id).where(Message.id.in_(chunk))))
    tickets = requested_tickets(session, person)
    hits: list[int] = []
    for rows in _batches(session, out, ["ticket_id", "message_id", "recipient", "rcpt_to",
                                        "subject", "raw"]):
        hits += [oid for oid, tid, mid, recipient, rcpt_to, subject, raw in rows if raw and (
            tid in tickets or mid in theirs or person.mentioned_in(recipient)
            or any(person.mentioned_in(r) for r in rcpt_to or [])
            or person.mentioned_in(subject) or person.mentioned_in_bytes(raw))]
    unsent = (OutboxStatus.pending, OutboxStatus.held)
    for chunk in _chunks(hits):
        cancel = update(out).where(out.c.id.in_(chunk), out.c.status.in_(unsent)).values(
            status=OutboxStatus.failed, claimed_until=None,
            last_error="not sent: personal data erased (desk privacy erase)")
        done.add("unsent mail cancelled", _count(session, cancel))
        done.add("outbox mail's bytes removed",
                 _count(session, update(out).where(out.c.id.in_(chunk)).values(raw=b"")))


def _erase_directory(session: Session, person: Person, done: Erasure) -> None:
    """Records that are the person: names go, the address becomes the pseudonym. Their
    feedback keeps its rating, not their words."""
    new = done.pseudonym
    contacts, staff = table(Contact), table(Staff)
    for cid in session.scalars(select(Contact.id).where(
            func.lower(Contact.email) == person.address)).all():
        if session.scalar(select(Contact.id).where(Contact.email == new)) is not None:
            # Erased before under this pseudonym (then added again): one record is enough.
            session.execute(delete(contacts).where(contacts.c.id == cid))
        else:
            session.execute(update(contacts).where(contacts.c.id == cid)
                            .values(email=new, name=ERASED_NAME))
        done.add("contacts", 1)
    for sid in session.scalars(select(Staff.id).where(
            func.lower(Staff.email) == person.address)).all():
        taken = session.scalar(select(Staff.id).where(Staff.email == new)) is not None
        # Staff rows are referenced by tickets and time: kept, under a pseudonym of their own.
        email = new.replace("@", f"-{sid}@") if taken else new
        # An erased person cannot be reached: never assigned again.
        session.execute(update(staff).where(staff.c.id == sid)
                        .values(email=email, name=ERASED_NAME, active=False))
        done.add("staff", 1)
    tickets, msgs, fb = table(Ticket), table(Message), table(Feedback)
    session.execute(update(tickets).where(func.lower(tickets.c.requester_email) == person.address)
                    .values(requester_name=ERASED_NAME))
    session.execute(update(msgs).where(func.lower(msgs.c.from_addr) == person.address)
                    .values(from_name=ERASED_NAME))
    words = update(fb).where(func.lower(fb.c.from_addr) == person.address, fb.c.comment != "")
    done.add("feedback comments removed", _count(session, words.values(comment="")))


def _text_columns(tbl: Table) -> list[str]:
    return [c.name for c in tbl.columns
            if isinstance(c.type, String | JSON) and (tbl.name, c.name) not in KEPT_COLUMNS]


def _replace_everywhere(session: Session, person: Person, done: Erasure) -> None:
    """Every other column that can hold text: the address becomes the pseudonym, the
    names "Erased person". Driven by the schema, so a column added later is covered."""
    for tbl in Base.metadata.sorted_tables:
        columns = _text_columns(tbl)
        if tbl.name in SKIPPED_TABLES or not columns:
            continue
        keys = list(tbl.primary_key.columns)

        def text_of(name: str, tbl: Table = tbl) -> ColumnElement[Any]:
            column = tbl.c[name]
            return cast(column, Text) if isinstance(column.type, JSON) else column

        rows = session.execute(select(*keys, *[tbl.c[c] for c in columns]).where(
            or_(*[person.like_any(text_of(c)) for c in columns]))).all()
        stmt = update(tbl).where(and_(*[k == bindparam(f"key_{k.name}") for k in keys]))
        changed = 0
        for row in rows:
            key, values = row[:len(keys)], row[len(keys):]
            new = {}
            for name, value in zip(columns, values, strict=True):
                scrubbed = person.scrub_value(value, done.pseudonym)
                if scrubbed != value:
                    new[name] = scrubbed
            if new:
                session.execute(stmt.values(**new), {
                    f"key_{k.name}": v for k, v in zip(keys, key, strict=True)})
                changed += 1
        done.add(f"{tbl.name}: address or name replaced", changed)


def settle_sqlite(engine: Engine) -> None:
    """After a committed erasure on SQLite: move the write-ahead log into the database
    file and empty it, so the erased bytes survive in neither (best effort: a reader
    holding an old snapshot delays that to a later checkpoint)."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()
