"""The MIME tree walk: body text, HTML, attachments, forwarded mail, size and depth limits."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import HeaderParser

from desk.inbox.message import Attachment
from desk.inbox.parse.charsets import CharsetHint, _known_charset
from desk.inbox.parse.dsn import _block_value, _dsn_address, _status_blocks
from desk.inbox.parse.flowed import unflow
from desk.inbox.parse.headers import _first_id, _HeaderReader
from desk.inbox.parse.html import sanitised_html_to_text, sanitize_html
from desk.inbox.parse.parts import (
    _children,
    _content_type,
    _disposition,
    _filename,
    _param,
    _part_text,
    _payload_bytes,
)
from desk.inbox.parse.text import _clean_body, _dedupe
from desk.inbox.parse.uuencode import _extract_uuencoded

_MIB = 1024 * 1024
# Forwarded-in-forwarded-in-... mail is legitimate a few levels deep; hundreds of levels
# is an attack on our recursion, not a message.
_MAX_DEPTH = 40
_NESTED = "attached message: "
# Re-serialising a forwarded message: compat32 writes stored header values back verbatim
# instead of re-folding them through the strict header registry (which can raise).
_RAW_POLICY = policy.compat32.clone(max_line_length=None)


def _human_size(size: int) -> str:
    return f"{size / _MIB:.1f} MB"


def _describe_defect(defect: object) -> str:
    name = type(defect).__name__.removesuffix("Defect")
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()
    detail = str(defect)
    return f"MIME: {words}" + (f" ({detail})" if detail and detail != name else "")


def _collect_mime_defects(msg: Message, defects: list[str]) -> None:
    for part in _walk(msg):
        defects.extend(_describe_defect(d) for d in getattr(part, "defects", []))


def _message_hint(msg: Message) -> CharsetHint:
    """The first real charset a text part declares: the message's own word on what its
    undeclared parts and raw 8-bit headers are written in. Attached messages were
    written by someone else and have their own."""
    stack = [msg]
    while stack:
        part = stack.pop()
        ctype = _content_type(part)
        if ctype.startswith("text/"):
            codec = _known_charset(_param(part, "charset"))
            if codec and codec != "ascii":
                return CharsetHint(declared=codec)
        elif not ctype.startswith("message/"):
            stack.extend(reversed(_children(part)))
    return CharsetHint()


def _walk(msg: Message) -> Iterable[Message]:
    stack = [msg]
    while stack:
        part = stack.pop()
        yield part
        stack.extend(reversed(_children(part)))


@dataclass
class _BodyCollector:
    """Walks the MIME tree once, sorting parts into body text, HTML and attachments."""

    max_attachment_bytes: int
    defects: list[str]
    plain: list[str] = field(default_factory=list)
    html_parts: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    dsn_message_id: str | None = None
    dsn_recipients: list[str] = field(default_factory=list)
    hint: CharsetHint = field(default_factory=CharsetHint)

    _sanitized: str | None = None

    def text(self) -> str:
        own = "\n\n".join(part.strip("\n") for part in self.plain if part.strip())
        if not own and (html := self.html()):
            own = sanitised_html_to_text(html)
        if not own.strip() and self.forwarded:
            own = "\n\n".join(self.forwarded)
        return _clean_body(own)

    def html(self) -> str | None:
        if self._sanitized is None and self.html_parts:
            self._sanitized = sanitize_html("\n".join(self.html_parts))
        return self._sanitized

    def visit(
        self, part: Message, depth: int = 0, *, want_plain: bool = True, in_report: bool = False
    ) -> None:
        if depth > _MAX_DEPTH:
            self.defects.append("MIME nesting too deep; inner parts ignored")
            return
        ctype = _content_type(part)
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            self._delivery_status(part)
        elif ctype.startswith("message/") and _children(part):
            self._forwarded(part, ctype, depth, in_report=in_report)
        elif ctype == "text/rfc822-headers" and in_report:
            self._returned_headers(part)
            self._attachment(part, ctype)
        elif part.is_multipart():
            self._multipart(part, ctype, depth, want_plain=want_plain, in_report=in_report)
        else:
            self._leaf(part, ctype, want_plain=want_plain)

    def _multipart(
        self, part: Message, ctype: str, depth: int, *, want_plain: bool, in_report: bool
    ) -> None:
        children = _children(part)
        if ctype == "multipart/report" and _param(part, "report-type") == "delivery-status":
            in_report = True
        if ctype != "multipart/alternative":
            for child in children:
                self.visit(child, depth + 1, want_plain=want_plain, in_report=in_report)
            return
        # Alternatives are the same content twice: take one text/plain rendering, and
        # visit the others only for their HTML and inline images.
        chosen = next(
            (
                c
                for c in children
                if _content_type(c) == "text/plain" and not self._is_attachment(c, "text/plain")
            ),
            None,
        )
        for child in children:
            self.visit(
                child, depth + 1, want_plain=want_plain and child is chosen, in_report=in_report
            )

    def _is_attachment(self, part: Message, ctype: str) -> bool:
        if _disposition(part) == "attachment" or _filename(part):
            return True
        return ctype not in ("text/plain", "text/html") and not ctype.startswith("multipart/")

    def _leaf(self, part: Message, ctype: str, *, want_plain: bool) -> None:
        if self._is_attachment(part, ctype):
            self._attachment(part, ctype)
            return
        if ctype == "text/html":
            self.html_parts.append(_part_text(part, self.defects, self.hint))
            return
        if not want_plain:
            return
        if ctype.startswith("multipart/"):
            self.defects.append(f"{ctype} part without usable boundary; kept as text")
        text, files = _extract_uuencoded(_part_text(part, self.defects, self.hint))
        if ctype == "text/plain" and _param(part, "format") == "flowed":
            text = unflow(text, delsp=_param(part, "delsp") == "yes")
        self.plain.append(text)
        for name, data in files:
            guessed = mimetypes.guess_type(name, strict=False)[0]
            self._store(name, guessed or "application/octet-stream", data)

    def _attachment(self, part: Message, ctype: str) -> None:
        self._store(_filename(part), ctype, _payload_bytes(part), _content_id(part))

    def _store(self, filename: str, ctype: str, data: bytes, content_id: str = "") -> None:
        size = len(data)
        if size <= self.max_attachment_bytes:
            self.attachments.append(Attachment(filename, ctype, size, data,
                                               content_id=content_id))
            return
        note = (
            f"not stored: {_human_size(size)} is over the "
            f"{_human_size(self.max_attachment_bytes)} attachment cap"
        )
        self.attachments.append(Attachment(filename, ctype, size, None, note, content_id))

    def _forwarded(self, part: Message, ctype: str, depth: int, *, in_report: bool) -> None:
        inner = _children(part)[0]
        nested = _BodyCollector(self.max_attachment_bytes, [], hint=_message_hint(inner))
        nested.visit(inner, depth + 1)
        self.defects.extend(d if d.startswith(_NESTED) else f"{_NESTED}{d}" for d in nested.defects)
        if text := nested.text():
            self.forwarded.append(text)
        inner_headers = _HeaderReader(inner, [], nested.hint)
        if in_report and self.dsn_message_id is None:
            self.dsn_message_id = _first_id(inner_headers.first("message-id"))
        subject = inner_headers.subject()
        filename = _filename(part) or _eml_name(subject)
        self._store(filename, ctype, _message_bytes(inner, self.defects))

    def _returned_headers(self, part: Message) -> None:
        text = _part_text(part, self.defects, self.hint)
        try:
            headers = HeaderParser(policy=policy.compat32).parsestr(text)
        except Exception:  # not even a header block: nothing to learn from it
            return
        if self.dsn_message_id is None:
            self.dsn_message_id = _first_id(headers.get("message-id"))

    def _delivery_status(self, part: Message) -> None:
        for block in _status_blocks(part, self.defects):
            action = (_block_value(block, "action") or "").strip().lower()
            if not action.startswith("failed"):
                continue
            recipient = _block_value(block, "original-recipient") or _block_value(
                block, "final-recipient"
            )
            if recipient and (addr := _dsn_address(recipient)):
                self.dsn_recipients = _dedupe([*self.dsn_recipients, addr])


def _content_id(part: Message) -> str:
    # The HTML shows an inline image where it says cid:<this>.
    try:
        value = str(part.get("Content-ID") or "")
    except Exception:  # a header the parser could not read: no id
        return ""
    return value.strip().strip("<>").strip()[:998]


def _eml_name(subject: str) -> str:
    stem = re.sub(r"[/\\]", "-", subject).strip() or "forwarded message"
    return f"{stem[:150]}.eml"


def _message_bytes(inner: Message, defects: list[str]) -> bytes:
    serialisers: list[Callable[[], bytes]] = [
        lambda: inner.as_bytes(policy=_RAW_POLICY),
        lambda: inner.as_bytes(),
    ]
    for serialise in serialisers:
        try:
            return serialise()
        except Exception:  # the generator can choke on what the parser accepted
            continue
    defects.append("forwarded message could not be re-serialised")
    return b""
