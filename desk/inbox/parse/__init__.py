"""Raw RFC 5322 bytes -> ``ParsedMessage``: the entry point, and what counts as no email."""

# The standard library does the real work (MIME structure, RFC 2047/2231 decoding,
# address grammar). The parts of this package only add what real-world mail needs on
# top: every header access is isolated so one broken header becomes a defect instead of
# a lost message (headers), undeclared 8-bit text is decoded by detection (charsets),
# format=flowed text is unwrapped (flowed), HTML is sanitised before anyone sees it and
# rendered as plain text (html), and delivery reports are taken apart for bounce handling
# (dsn), all while walking the MIME tree (mime).

from __future__ import annotations

import email

from desk.inbox.message import Address, ParsedMessage, content_message_id
from desk.inbox.parse.headers import _POLICY, _extract_message_ids, _HeaderReader
from desk.inbox.parse.html import html_to_text, sanitize_html
from desk.inbox.parse.mime import _MIB, _BodyCollector, _collect_mime_defects, _message_hint
from desk.inbox.parse.text import _dedupe

__all__ = ["ParseError", "html_to_text", "parse_message", "sanitize_html"]


class ParseError(Exception):
    """The input is not an email at all (nothing to parse)."""


def parse_message(raw: bytes, *, max_attachment_bytes: int = 10 * _MIB) -> ParsedMessage:
    """Parse one inbound email; never raises on malformed mail, only on empty input."""
    raw = bytes(raw)
    if not raw or raw.isspace():
        raise ParseError("empty message: no headers and no body")
    try:
        msg = email.message_from_bytes(raw, policy=_POLICY)
    except Exception as exc:  # the stdlib parser is lenient; anything escaping it is fatal
        raise ParseError(f"unparseable message: {exc}") from exc

    # The body is read first: what its charset turns out to be is the best guess for
    # raw 8-bit headers, which are too short to detect a charset from.
    body_defects: list[str] = []
    body = _BodyCollector(max_attachment_bytes, body_defects, hint=_message_hint(msg))
    body.visit(msg)
    defects: list[str] = []
    reader = _HeaderReader(msg, defects, body.hint)
    defects.extend(body_defects)
    _collect_mime_defects(msg, defects)

    parsed = ParsedMessage(
        message_id=_message_id(reader, raw),
        sender=_sender(reader),
        to=reader.addresses("to"),
        cc=reader.addresses("cc"),
        reply_to=reader.addresses("reply-to"),
        subject=reader.subject(),
        date=reader.date(),
        in_reply_to=reader.message_ids("in-reply-to"),
        references=reader.message_ids("references"),
        text_body=body.text(),
        html_body=body.html(),
        html_source="\n".join(body.html_parts) or None,
        attachments=body.attachments,
        headers=reader.all_headers(),
        return_path=reader.return_path(),
        dsn_original_message_id=body.dsn_message_id,
        dsn_failed_recipients=body.dsn_recipients,
        raw_size=len(raw),
    )
    parsed.defects = _dedupe(defects)
    return parsed


def _message_id(reader: _HeaderReader, raw: bytes) -> str:
    value = reader.first("message-id")
    ids = _extract_message_ids(value) if value else []
    if ids:
        return ids[0]
    reader.defects.append("no Message-ID" if not value else "unusable Message-ID")
    return content_message_id(raw)


def _sender(reader: _HeaderReader) -> Address | None:
    if not reader.raw_values("from"):
        reader.defects.append("no From header")
        return None
    addresses = reader.addresses("from")
    if not addresses:
        reader.defects.append("From header has no usable address")
        return None
    return addresses[0]
