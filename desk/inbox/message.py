"""The typed message that every stage after parsing works on.

Parsing (``desk.inbox.parse``) turns raw RFC 5322 bytes into a ``ParsedMessage``;
nothing downstream touches ``email.message`` objects, so stages stay pure and
testable with plain constructors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: display name plus lower-cased address."""

    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    # None when the part was over the configured cap: metadata only.
    content: bytes | None = None
    # Why the content was not kept (e.g. "over the 10 MB attachment cap").
    note: str = ""
    # Its Content-ID without angle brackets: the HTML shows it where it says cid:<id>.
    content_id: str = ""


@dataclass(slots=True)
class ParsedMessage:
    """Everything the desk needs from one inbound email."""

    message_id: str  # angle brackets stripped; synthesised from a content hash if missing
    sender: Address | None  # From (None when From is missing or unparseable)
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    subject: str = ""
    date: datetime | None = None  # timezone-aware when the header had a zone
    in_reply_to: list[str] = field(default_factory=list)  # Message-IDs without brackets
    references: list[str] = field(default_factory=list)
    text_body: str = ""  # plain text; derived from HTML when there is no text/plain part
    html_body: str | None = None  # sanitised HTML, never the raw HTML
    # The HTML as the sender wrote it, never shown: only where quoted history and the
    # signature start can be read from it (sanitising removes the classes that mark them).
    html_source: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    # Lower-cased header name -> list of (decoded) values, for screening and auth checks.
    headers: dict[str, list[str]] = field(default_factory=dict)
    # Non-fatal oddities met while parsing (bad charset, missing Date...), shown on the ticket.
    defects: list[str] = field(default_factory=list)
    # Envelope sender (Return-Path) when present: "" means the null sender <>.
    return_path: str | None = None
    # For multipart/report delivery notifications: the Message-ID of the mail that bounced
    # and the recipients that failed.
    dsn_original_message_id: str | None = None
    dsn_failed_recipients: list[str] = field(default_factory=list)
    raw_size: int = 0

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def recipients(self) -> list[str]:
        """Every address the mail was sent to (Delivered-To covers Bcc delivery)."""
        return [a.email for a in (*self.to, *self.cc)] + [
            v.strip().strip("<>").lower() for v in self.headers.get("delivered-to", [])]


def content_message_id(raw: bytes) -> str:
    """A stable Message-ID for mail that has none, so re-delivery is still de-duplicated."""
    return f"sha256-{hashlib.sha256(raw).hexdigest()[:40]}@desk.invalid"
