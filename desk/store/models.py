"""Typed SQLAlchemy 2 models: the desk's whole persistent state.

Schema changes go through Alembic (``desk/store/migrations``); ``desk init`` applies them.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite has no time zones, PostgreSQL would
    otherwise convert to the session zone. One representation everywhere."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


def table(model: type[Base]) -> Table:
    """A model's table, for writes beneath the ORM (``desk/store/deferred.py``); typed as
    the ``Table`` it is, which ``__table__``'s declared type does not say."""
    return cast(Table, model.__table__)


class Tier(enum.StrEnum):
    retainer = "retainer"
    project = "project"
    post_project = "post_project"
    hosting = "hosting"
    hosting_sla = "hosting_sla"
    support_sla = "support_sla"


class Role(enum.StrEnum):
    account_manager = "account_manager"
    project_manager = "project_manager"
    senior_engineer = "senior_engineer"
    junior_engineer = "junior_engineer"


class Status(enum.StrEnum):
    new = "new"
    open = "open"
    waiting = "waiting"  # on the customer: SLA clocks pause
    awaiting_approval = "awaiting_approval"  # costing/estimate not yet signed off
    resolved = "resolved"
    closed = "closed"
    # Auto-generated mail (an out-of-office, a robot's notice) that threads into nothing:
    # kept where an admin can see it, with no owner and no clock, until a person promotes it.
    auto = "auto"


OPEN_STATUSES = (Status.new, Status.open, Status.waiting, Status.awaiting_approval)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    tier: Mapped[str] = mapped_column(String(20))
    timezone: Mapped[str | None] = mapped_column(String(64))
    hours_per_month: Mapped[float | None] = mapped_column(Float)
    account_manager: Mapped[str | None] = mapped_column(String(320))
    project_manager: Mapped[str | None] = mapped_column(String(320))
    backup: Mapped[str | None] = mapped_column(String(320))
    # Per-client overrides of the tier's SLA policy and settings (later issues).
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    domains: Mapped[list[ClientDomain]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="ClientDomain.domain"
    )
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="Contact.email"
    )


class ClientDomain(Base):
    __tablename__ = "client_domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    client: Mapped[Client] = relationship(back_populates="domains")


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    bouncing: Mapped[bool] = mapped_column(Boolean, default=False)
    client: Mapped[Client] = relationship(back_populates="contacts")


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(30))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    capacity: Mapped[int | None] = mapped_column(Integer)
    away_from: Mapped[date | None] = mapped_column(Date)
    away_until: Mapped[date | None] = mapped_column(Date)
    # Round-robin pools hand the next ticket to whoever was assigned least recently.
    last_assigned_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def is_away(self, on: date) -> bool:
        if self.away_from is None and self.away_until is None:
            return False
        start = self.away_from or date.min
        end = self.away_until or date.max
        return start <= on <= end


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status", "status"),
        Index("ix_tickets_client", "client_id"),
        Index("ix_tickets_owner_status", "owner_id", "status"),
        # The clock task reads only rows whose next deadline is due.
        Index("ix_tickets_next_clock_at", "next_clock_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=Status.new)
    priority: Mapped[str] = mapped_column(String(2), default="P3")
    tier: Mapped[str | None] = mapped_column(String(20))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    requester_email: Mapped[str] = mapped_column(String(320))
    requester_name: Mapped[str] = mapped_column(String(200), default="")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    eta: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column()
    last_client_message_at: Mapped[datetime | None] = mapped_column()
    last_public_reply_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    # Stored SLA deadlines (recomputed on every event) and the earliest of them.
    first_response_due: Mapped[datetime | None] = mapped_column()
    next_update_due: Mapped[datetime | None] = mapped_column()
    resolution_due: Mapped[datetime | None] = mapped_column()
    next_clock_at: Mapped[datetime | None] = mapped_column()
    # The SLA policy in force (tier default or the client's override) and pauses while
    # the ticket waits on the customer, in business minutes.
    sla_policy: Mapped[str | None] = mapped_column(String(60))
    paused_since: Mapped[datetime | None] = mapped_column()
    paused_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    resumed_at: Mapped[datetime | None] = mapped_column()
    # The clock task's memory: actions already handled (warnings, ladder steps, ETA
    # warnings; keys from desk.sla.schedule) and the time it last looked.
    clock_done: Mapped[list[str] | None] = mapped_column(JSON)
    clock_checked_at: Mapped[datetime | None] = mapped_column()
    message_count: Mapped[int] = mapped_column(Integer, default=0)

    client: Mapped[Client | None] = relationship()
    owner: Mapped[Staff | None] = relationship(foreign_keys=[owner_id])
    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", foreign_keys="Message.ticket_id"
    )
    events: Mapped[list[Event]] = relationship(back_populates="ticket", order_by="Event.id")
    participants: Mapped[list[Participant]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan", order_by="Participant.id"
    )
    workers: Mapped[list[Staff]] = relationship(secondary="ticket_workers", order_by="Staff.id")

    @property
    def ref(self) -> str:
        return str(self.id)


class TicketWorker(Base):
    """Staff working a ticket beside its client-facing owner (e.g. a senior on a P1)."""

    __tablename__ = "ticket_workers"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True, index=True)


class Participant(Base):
    """Who may write into a ticket by subject reference and who receives relayed replies."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("ticket_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(20))  # requester | cc | worker
    ticket: Mapped[Ticket] = relationship(back_populates="participants")


class RawMessage(Base):
    """The exact bytes as received: kept for audit, re-processing and quarantine retry."""

    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_message_id", "message_id"),
        Index("ix_messages_ticket", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    # Inbound only: the de-duplication key (Message-ID, or a content hash). Unique so two
    # workers racing on the same mail cannot both record it.
    dedupe_key: Mapped[str | None] = mapped_column(String(998), unique=True)
    message_id: Mapped[str] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[str | None] = mapped_column(Text)
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to_addrs: Mapped[str] = mapped_column(Text, default="")
    cc_addrs: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None] = mapped_column()
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_generated: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(20), default="")
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages", foreign_keys=[ticket_id])
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", cascade="all, delete-orphan"
    )


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(Text, default="")
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text, default="")
    # Its Content-ID, and whether the message's HTML shows it as an image where it stands
    # (notices keep it there; `desk tickets show` says so).
    content_id: Mapped[str | None] = mapped_column(String(998))
    inline: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """The ticket's decision log: why it was classified, threaded, assigned, escalated."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_ticket", "ticket_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(320), default="desk")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ticket: Mapped[Ticket] = relationship(back_populates="events")


class Receipt(Base):
    """One row per message seen at a source position: (mailbox, UIDVALIDITY, UID) or a
    Maildir file name. Lets a re-delivered message be acknowledged at the source without
    being processed again."""

    __tablename__ = "receipts"

    source_key: Mapped[str] = mapped_column(String(1200), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(998), index=True)
    # ticketed | duplicate | quarantined | left_at_source (over the size cap, not fetched)
    outcome: Mapped[str] = mapped_column(String(20))
    message_pk: Mapped[int | None] = mapped_column(Integer)
    quarantine_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MailboxState(Base):
    """Sync position of one IMAP mailbox plus the lease that lets exactly one worker
    ingest it at a time."""

    __tablename__ = "mailbox_state"

    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(Integer)
    last_uid: Mapped[int] = mapped_column(Integer, default=0)
    lease_holder: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    last_ingest_at: Mapped[datetime | None] = mapped_column()


class EstimateStatus(enum.StrEnum):
    held = "held"  # a junior's, awaiting review before the client sees it
    pending = "pending"  # with the client
    approved = "approved"
    declined = "declined"
    superseded = "superseded"  # a newer estimate replaced it


class QuarantineStatus(enum.StrEnum):
    held = "held"
    retried = "retried"
    dropped = "dropped"


# What an entry of a ticket's event log records; `desk tickets show` prints them.
EventKind = Literal[
    "ack_suppressed",
    "auto_reply",
    "acknowledged",
    "allowance_alert",
    "approved",
    "assigned",
    "attachment_not_stored",
    "bounce",
    "classified",
    "command_refused",
    "costing_signed_off",
    "decision_confirmed",
    "decision_refused",
    "decision_unconfirmed",
    "delivery_retry",
    "escalated",
    "estimate",
    "estimate_approved",
    "estimate_declined",
    "estimate_reminder",
    "eta",
    "eta_warning",
    "feedback",
    "feedback_alert",
    "feedback_requested",
    "first_response",
    "held",
    "linked",
    "note",
    "nudged",
    "parse_note",
    "participant",
    "priority",
    "rejected",
    "reopened",
    "replied",
    "scope_change",
    "sla_breached",
    "sla_warning",
    "spoofed_staff",
    "notice_summarised",
    "promoted",
    "status",
    "status_update",
    "thread_refused",
    "threaded",
    "time",
]


class OutboxStatus(enum.StrEnum):
    pending = "pending"
    held = "held"  # waiting for an approval (junior replies)
    sent = "sent"
    failed = "failed"  # permanent failure, or retries exhausted
    # A staff notice over [notices] max_per_staff: never sent alone; its window's summary
    # mail lists it, and then it is summarised (work/notice_summary.py).
    waiting = "waiting"
    summarised = "summarised"


class Outbox(Base):
    """Every email the desk sends, written in the same transaction as the change that
    caused it, as the exact bytes to deliver (so a resend is byte-identical)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_recipient_kind", "recipient", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(30))  # ack | notice | relay | escalation | ...
    # The event this mail answers ("ack:ticket:12"): unique, so one event never yields two mails.
    event_key: Mapped[str] = mapped_column(String(300), unique=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))  # primary recipient, for rate caps
    rcpt_to: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Held replies (junior engineers): who wrote it; approval requests point at the held row.
    author_staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id", name="fk_outbox_author_staff_id_staff"))
    approval_of_id: Mapped[int | None] = mapped_column(Integer, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class TimeEntry(Base):
    """Time spent on a ticket (``#time 1h30m`` or ``desk time add``)."""

    __tablename__ = "time_entries"
    __table_args__ = (Index("ix_time_entries_ticket", "ticket_id"),
                      Index("ix_time_entries_client_at", "client_id", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    # Denormalised so monthly retainer sums need no join.
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    minutes: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(10), default="spent")  # spent | planned
    at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(20), default="email")


class Estimate(Base):
    """A change request's estimate, sent to the client to approve or decline by email.
    Its decision (who, when, the exact words, the message) is the traceable record."""

    __tablename__ = "estimates"
    __table_args__ = (Index("ix_estimates_ticket_status", "ticket_id", "status"),
                      Index("ix_estimates_client", "client_id", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    minutes: Mapped[int] = mapped_column(Integer)
    cost: Mapped[str | None] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text, default="")
    author_staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id", name="fk_estimates_author_staff_id_staff"))
    status: Mapped[str] = mapped_column(String(12), default=EstimateStatus.pending)
    message_id: Mapped[str | None] = mapped_column(String(998))  # the estimate mail we sent
    outbox_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decision_words: Mapped[str | None] = mapped_column(Text)
    decision_message_id: Mapped[str | None] = mapped_column(String(998))


class Feedback(Base):
    """A client's answer to "Was this resolved? How did we do, 1 to 10?"."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_client_at", "client_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    resolved: Mapped[bool | None] = mapped_column(Boolean)
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    message_id: Mapped[str | None] = mapped_column(String(998))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Quarantine(Base):
    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_key: Mapped[str] = mapped_column(String(1200))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str] = mapped_column(String(998), default="")
    status: Mapped[str] = mapped_column(String(10), default=QuarantineStatus.held)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()


class Worker(Base):
    """Heartbeat of each running daemon, for `desk status`."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_ingest_at: Mapped[datetime | None] = mapped_column()
    stopped_at: Mapped[datetime | None] = mapped_column()
    # The connection incident the daemon is in now (a rejected OAuth2 secret, a mailbox that
    # refuses it), cleared when the connection works again; shown by `desk status`.
    trouble: Mapped[str | None] = mapped_column(Text)
    trouble_since: Mapped[datetime | None] = mapped_column()
