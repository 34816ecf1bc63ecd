"""Raw RFC 5322 bytes -> ``ParsedMessage``.

The standard library does the real work (MIME structure, RFC 2047/2231 decoding,
address grammar). This module only adds what real-world mail needs on top: every
header access is isolated so one broken header becomes a defect instead of a lost
message, undeclared 8-bit text is decoded by a small guess, HTML is sanitised before
anyone sees it, and delivery reports are taken apart for bounce handling.
"""

from __future__ import annotations

import binascii
import email
import mimetypes
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors as email_errors
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from html.parser import HTMLParser

import nh3

from desk.inbox.message import Address, Attachment, ParsedMessage, content_message_id

__all__ = ["ParseError", "html_to_text", "parse_message", "sanitize_html"]

_MIB = 1024 * 1024
# Forwarded-in-forwarded-in-... mail is legitimate a few levels deep; hundreds of levels
# is an attack on our recursion, not a message.
_MAX_DEPTH = 40


class _Registry(HeaderRegistry):
    # The stdlib registry creates a new class on every lookup (type(...) per header):
    # one class per kind of header is all it needs.
    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        if (cls := self._classes.get(key)) is None:
            cls = self._classes[key] = super().__getitem__(key)
        return cls


_REGISTRY = _Registry()


@lru_cache(maxsize=256)
def _header(name: str, value: str) -> BaseHeader:
    # The default policy parses a header anew each time it is read, and reading a message
    # asks for its Content-Type about seven times. Parsed headers are immutable str
    # objects, so one per (name, value) is shared: within a message and across a backlog.
    # Small: a parsed header keeps its parse tree (~12 KB), and the ones worth keeping
    # (MIME headers) repeat; a From or Message-ID is read once and passes through.
    return _REGISTRY(name, value)


_POLICY = policy.default.clone(header_factory=_header)
_NESTED = "attached message: "
# Re-serialising a forwarded message: compat32 writes stored header values back verbatim
# instead of re-folding them through the strict header registry (which can raise).
_RAW_POLICY = policy.compat32.clone(max_line_length=None)
# Headers the registry gives a structure (addresses, dates, MIME parameters).
_STRUCTURED = frozenset(name for name, cls in _REGISTRY.registry.items()
                        if not issubclass(cls, UnstructuredHeader))
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def _as_written(value: str) -> str | None:
    """Plain ASCII with no encoded words has nothing to decode: unfolded, it is the text.
    The header registry would return the same, and is the costliest step of reading a
    message. None: the value needs the registry."""
    if value.isascii() and "=?" not in value:
        return _LINE_BREAKS.sub("", value)
    return None


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

    defects: list[str] = []
    reader = _HeaderReader(msg, defects)
    body = _BodyCollector(max_attachment_bytes, defects)
    body.visit(msg)
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
        attachments=body.attachments,
        headers=reader.all_headers(),
        return_path=reader.return_path(),
        dsn_original_message_id=body.dsn_message_id,
        dsn_failed_recipients=body.dsn_recipients,
        raw_size=len(raw),
    )
    parsed.defects = _dedupe(defects)
    return parsed


# --------------------------------------------------------------------------- text helpers

_C0_EXCEPT_NL_TAB = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ALL_C0 = re.compile(r"[\x00-\x1f\x7f]")
_WS_RUN = re.compile(r"\s+")


def _clean_line(value: str) -> str:
    """One-line text safe to put back into a header: no CR/LF, no controls, single spaces."""
    return _WS_RUN.sub(" ", _ALL_C0.sub(" ", value)).strip()


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _clean_body(text: str) -> str:
    text = _C0_EXCEPT_NL_TAB.sub("", _normalise_newlines(text))
    # Leading blank lines and trailing whitespace are noise; indentation of the first
    # real line is kept because it can matter (code, tables).
    return re.sub(r"\A(?:[ \t]*\n)+", "", text).rstrip()


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _human_size(size: int) -> str:
    return f"{size / _MIB:.1f} MB"


# ---------------------------------------------------------------------------- charsets

# Labels that mail software uses for a narrower charset than it actually sends; decoding
# with the superset is what every mail client does (and what WHATWG specifies).
_CHARSET_SUPERSETS = {
    "ascii": "ascii",
    "us-ascii": "ascii",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
}
# Labels that say "we don't know" and must not be looked up as codecs.
_NO_CHARSET = frozenset({"", "unknown-8bit", "x-unknown", "unknown", "default", "charset"})

# The most frequent Russian letters: decoding Cyrillic bytes with the wrong one of the two
# common single-byte Cyrillic charsets yields mostly rare letters instead.
_COMMON_CYRILLIC = frozenset("оеаинтсрвлОЕАИНТСРВЛ")
_HIGH_BYTE_RUN = re.compile(rb"[\xc0-\xff]{3,}")
_HIGH_BYTES = bytes(range(0x80, 0x100))
_GUESS_SAMPLE = 64 * 1024  # enough text to tell scripts apart, cheap on huge bodies


def _charset_label(charset: str | None) -> str:
    label = (charset or "").strip().strip("\"'").lower()
    if label in _NO_CHARSET:
        return ""
    return _CHARSET_SUPERSETS.get(label, label)


def _guess_single_byte(data: bytes) -> str:
    """Pick a legacy charset for 8-bit text that is not UTF-8 and declares nothing.

    Western European text has accented letters scattered between ASCII letters, while
    Cyrillic (the other big source of undeclared 8-bit mail) is runs of high bytes.
    """
    sample = data[:_GUESS_SAMPLE]
    high = len(sample) - len(sample.translate(None, _HIGH_BYTES))
    in_runs = sum(len(run) for run in _HIGH_BYTE_RUN.findall(sample))
    if in_runs * 2 < high:
        return "cp1252"
    scores = {
        codec: sum(ch in _COMMON_CYRILLIC for ch in sample.decode(codec, errors="replace"))
        for codec in ("koi8_r", "cp1251")
    }
    best = max(scores, key=lambda codec: scores[codec])
    return best if scores[best] * 3 >= in_runs else "cp1252"


def _mostly_utf8(data: bytes) -> bool:
    """More well-formed UTF-8 multi-byte characters than broken bytes."""
    text = data[:_GUESS_SAMPLE].decode("utf-8", errors="replace")
    broken = text.count("\ufffd")
    return len(text) - len(text.encode("ascii", errors="ignore")) - broken > broken


def _decode_bytes(data: bytes, charset: str | None, defects: list[str], where: str) -> str:
    """Declared charset, then UTF-8, then a single-byte guess; never raises."""
    if not data:
        return ""
    label = _charset_label(charset)
    if label:
        try:
            return data.decode(label)
        except LookupError:
            defects.append(f"{where}: unknown charset {charset!r}")
        except ValueError:  # UnicodeDecodeError, or a codec that rejects the input
            defects.append(f"{where}: text is not valid {charset!r}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if _mostly_utf8(data):
        # A few broken bytes in UTF-8 text: keep the good text, mark the bad bytes.
        defects.append(f"{where}: invalid UTF-8 bytes replaced")
        return data.decode("utf-8", errors="replace")
    guess = _guess_single_byte(data)
    if not label:
        defects.append(f"{where}: 8-bit text without a charset, read as {guess}")
    return data.decode(guess, errors="replace")


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _repair_8bit(value: str, defects: list[str], where: str) -> str:
    """Header values from message_from_bytes carry raw 8-bit bytes as surrogate escapes.

    The header registry would turn those into U+FFFD; decoding them ourselves first keeps
    e.g. an undeclared KOI8-R subject readable.
    """
    if not _has_surrogates(value):
        return value
    data = value.encode("utf-8", errors="surrogateescape")
    return _decode_bytes(data, None, defects, where)


_FOLD = re.compile(r"\r?\n")  # unfolding is just deleting the line breaks (RFC 5322 2.2.3)


def _unfold(value: str) -> str:
    return _FOLD.sub("", value)


def _decode_words(value: str) -> str:
    """RFC 2047 decoding through the most forgiving header class (unstructured text)."""
    try:
        return str(_POLICY.header_factory("x-desk-unstructured", _unfold(value)))
    except Exception:  # a decoding bug in the stdlib must not cost us the text
        return _unfold(value)


# ---------------------------------------------------------------------------- headers

_MSG_ID = re.compile(r"<\s*([^<>\s]+?)\s*>")


def _extract_message_ids(value: str) -> list[str]:
    ids = _MSG_ID.findall(value)
    if not ids:
        # Broken clients send bare ids; only accept tokens that look like one.
        ids = [tok.strip("<>") for tok in value.split() if "@" in tok and "<" not in tok[1:]]
    return _dedupe(ids)


# What is left of an address after parsing must at least not contain syntax characters;
# a bare local part (MAILER-DAEMON) is kept because screening needs to see it.
_PLAUSIBLE_ADDRESS = re.compile(r'^[^\s<>(),;:"\\]+$')


class _HeaderReader:
    """Header access where each header is decoded in isolation and failures are defects."""

    def __init__(self, msg: Message, defects: list[str]) -> None:
        self.defects = defects
        self._raw: list[tuple[str, str]] = [
            (name, _repair_8bit(value, defects, f"{name} header"))
            for name, value in _raw_items(msg)
        ]

    def raw_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._raw if key.lower() == wanted]

    def first(self, name: str) -> str | None:
        values = self.raw_values(name)
        return _unfold(values[0]) if values else None

    def _parsed(self, name: str, value: str, *, note: bool = False) -> str:
        if name.lower() not in _STRUCTURED and (text := _as_written(value)) is not None:
            return text
        try:
            return str(_POLICY.header_fetch_parse(name, value))
        except Exception:  # any stdlib header-class failure: fall back to plain decoding
            if note:
                self.defects.append(f"{name.title()} header could not be parsed")
            return _decode_words(value)

    def all_headers(self) -> dict[str, list[str]]:
        """Every header as text for screening and lookups. Addresses, dates and subject
        have their own readers; here plain ASCII is kept as written, structured or not."""
        out: dict[str, list[str]] = {}
        for name, value in self._raw:
            text = _as_written(value)
            if text is None:
                text = self._parsed(name, value)
            out.setdefault(name.lower(), []).append(_clean_line(text))
        return out

    def subject(self) -> str:
        value = self.first("subject")
        return "" if value is None else _clean_line(self._parsed("subject", value, note=True))

    def addresses(self, name: str) -> list[Address]:
        out: list[Address] = []
        for value in self.raw_values(name):
            pairs = self._registry_addresses(name, value)
            if not pairs and value.strip():
                pairs = _fallback_addresses(value)
            for display, addr in pairs:
                addr = addr.strip().lower()
                if _PLAUSIBLE_ADDRESS.match(addr):
                    out.append(Address(name=_clean_line(display), email=addr))
        return out

    def _registry_addresses(self, name: str, value: str) -> list[tuple[str, str]]:
        try:
            header = _POLICY.header_fetch_parse(name, value)
            pairs = [(a.display_name, a.addr_spec) for a in header.addresses]
        except Exception:  # e.g. IndexError/HeaderParseError deep in the address grammar
            self.defects.append(f"{name.title()} header is not a valid address list")
            return []
        if any(isinstance(d, email_errors.InvalidHeaderDefect) for d in header.defects):
            self.defects.append(f"{name.title()} header is not a valid address list")
        return pairs

    def date(self) -> datetime | None:
        value = self.first("date")
        if value is None or not value.strip():
            self.defects.append("no Date header")
            return None
        when = self._registry_date(value) or _loose_date(value)
        if when is None:
            self.defects.append(f"unparseable Date header: {_clean_line(value)[:80]!r}")
            return None
        # "-0000" (and a missing zone) means "UTC, local zone unknown" (RFC 5322 3.3).
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    def _registry_date(self, value: str) -> datetime | None:
        try:
            when = _POLICY.header_fetch_parse("date", value).datetime
        except Exception:  # bad dates raise in some stdlib versions, return None in others
            return None
        return when if isinstance(when, datetime) else None

    def message_ids(self, name: str) -> list[str]:
        ids: list[str] = []
        for value in self.raw_values(name):
            ids.extend(_extract_message_ids(_unfold(value)))
        return _dedupe(ids)

    def return_path(self) -> str | None:
        value = self.first("return-path")
        if value is None:
            return None
        value = value.strip()
        match = re.search(r"<([^<>]*)>", value)
        addr = match.group(1) if match else value
        return _clean_line(addr).lower()


def _raw_items(msg: Message) -> list[tuple[str, str]]:
    try:
        return [(str(name), str(value)) for name, value in msg.raw_items()]
    except Exception:  # raw_items only reads stored strings, but stay total
        return []


# A run of RFC 2047 encoded words, optionally inside (non-standard) quotes.
_ENCODED_RUN = re.compile(r'"?((?:=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=[ \t]*)+)"?')


def _quote_encoded_words(value: str) -> str:
    """Decode encoded words into quoted strings so the old address parser can cope.

    Decoded names may contain ``:``, ``,``, ``@`` or CR/LF, which the legacy parser
    would read as address syntax; inside a quoted string they are just a name.
    """

    def quoted(match: re.Match[str]) -> str:
        text = _clean_line(_decode_words(match.group(1)))
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '" '

    return _ENCODED_RUN.sub(quoted, value)


def _fallback_addresses(value: str) -> list[tuple[str, str]]:
    try:
        pairs = getaddresses([_quote_encoded_words(_unfold(value))])
    except Exception:  # getaddresses can trip on pathological input too
        return []
    return [(_decode_words(display), addr) for display, addr in pairs]


def _loose_date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


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


def _describe_defect(defect: object) -> str:
    name = type(defect).__name__.removesuffix("Defect")
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()
    detail = str(defect)
    return f"MIME: {words}" + (f" ({detail})" if detail and detail != name else "")


def _collect_mime_defects(msg: Message, defects: list[str]) -> None:
    for part in _walk(msg):
        defects.extend(_describe_defect(d) for d in getattr(part, "defects", []))


def _walk(msg: Message) -> Iterable[Message]:
    stack = [msg]
    while stack:
        part = stack.pop()
        yield part
        stack.extend(reversed(_children(part)))


# ---------------------------------------------------------------------------- MIME parts


def _children(part: Message) -> list[Message]:
    # Only ask for the payload when it is a list of parts: for a leaf, get_payload()
    # decodes text with the declared charset and can raise on hostile parameters.
    if not part.is_multipart():
        return []
    payload = part.get_payload()
    return [child for child in payload if isinstance(child, Message)]


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:  # malformed Content-Type: RFC 2045 default
        return "text/plain"


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except Exception:  # malformed parameters: treat as absent
        return ""
    if isinstance(value, tuple):  # undecoded RFC 2231 triple
        value = value[2]
    return str(value or "").strip().lower()


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # malformed Content-Disposition: treat as absent
        return None


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # broken RFC 2231 / 2047 in a parameter
        name = ""
    name = _decode_words(_repair_8bit(str(name), [], "filename"))
    # A filename is never a path; keep only its last component.
    name = re.split(r"[/\\]", _clean_line(name))[-1]
    return name.strip()


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # undecodable transfer encoding: nothing usable
        return b""
    return data if isinstance(data, bytes) else b""


def _part_text(part: Message, defects: list[str]) -> str:
    return _normalise_newlines(
        _decode_bytes(_payload_bytes(part), _param(part, "charset"), defects, "body")
    )


# ---------------------------------------------------------------------------- uuencode

_UU_BEGIN = re.compile(r"^begin [0-7]{3,4} (\S.*?)\s*$")


def _decode_uu_line(line: str) -> bytes:
    data = line.encode("ascii")
    try:
        return binascii.a2b_uu(data)
    except binascii.Error:
        # Some encoders pad lines with junk; trust the length byte (as uu.py did).
        declared = (((data[0] - 32) & 63) * 4 + 5) // 3
        return binascii.a2b_uu(data[:declared])


def _decode_uu_block(lines: list[str]) -> bytes | None:
    chunks: list[bytes] = []
    for line in lines:
        if not line:
            continue
        try:
            chunks.append(_decode_uu_line(line))
        except (binascii.Error, UnicodeEncodeError, IndexError):
            return None
    return b"".join(chunks)


def _extract_uuencoded(text: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Lotus Notes and old clients paste files into the body as ``begin 644 name`` blocks."""
    lines = text.split("\n")
    kept: list[str] = []
    files: list[tuple[str, bytes]] = []
    i = 0
    while i < len(lines):
        match = _UU_BEGIN.match(lines[i])
        end = _uu_end(lines, i + 1) if match else None
        if match and end is not None:
            data = _decode_uu_block([line.rstrip() for line in lines[i + 1 : end]])
            if data is not None:
                files.append((match.group(1), data))
                i = end + 1
                continue
        kept.append(lines[i])
        i += 1
    return "\n".join(kept), files


def _uu_end(lines: list[str], start: int) -> int | None:
    for j in range(start, len(lines)):
        if lines[j].strip() == "end":
            return j
    return None


# ---------------------------------------------------------------------------- HTML


def _html_attribute(tag: str, attribute: str, value: str) -> str | None:
    lowered = value.strip().lower()
    if attribute == "src":
        # Remote images are tracking pixels; embedded ones (cid:/data:) leak nothing.
        return value if lowered.startswith(("cid:", "data:image/")) else None
    if attribute == "href" and lowered.startswith(("data:", "cid:")):
        return None
    return value


_CLEANER = nh3.Cleaner(
    clean_content_tags={"script", "style", "title", "head", "noscript", "template"},
    attribute_filter=_html_attribute,
    url_schemes=set(nh3.ALLOWED_URL_SCHEMES) | {"cid", "data"},
    link_rel="noopener noreferrer",
)


def sanitize_html(html: str) -> str:
    """Client HTML made safe to show to staff: no scripts, handlers, forms or remote images."""
    return _CLEANER.clean(html)


_SKIP_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template"})
_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote"})
_LINE_TAGS = frozenset(
    {
        "div",
        "tr",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "pre",
        "hr",
        "section",
        "article",
        "header",
        "footer",
        "address",
        "center",
        "form",
        "li",
    }
)


class _TextExtractor(HTMLParser):
    """HTML -> text where block boundaries become line breaks.

    Breaks are kept pending and merged (``</div><div>`` is one line break, not two) and
    only written out before the next visible text, so empty wrappers add nothing.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._skip: list[str] = []
        self._pending = 0  # line breaks owed before the next text
        self._prefix = ""  # list bullet owed at the start of the next line
        self._pre = 0
        # <blockquote> depth: quoted lines get "> " like a mail program's plain-text view,
        # so reply parsing can tell quoted history from what the person wrote.
        self._quote = 0

    def _block(self, breaks: int) -> None:
        self._pending = max(self._pending, breaks)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            # Mail HTML often forgets </head>; never let that hide the whole body.
            self._skip = [t for t in self._skip if t != "head"]
        elif tag in _SKIP_TAGS:
            self._skip.append(tag)
        elif tag == "br":
            self._pending += 1
        elif tag in _PARAGRAPH_TAGS:
            self._block(2)
        elif tag in _LINE_TAGS:
            self._block(1)
            self._prefix = "- " if tag == "li" else self._prefix
        elif tag in ("td", "th") and self._out and not self._pending:
            self._out.append(" ")
        if tag == "pre":
            self._pre += 1
        if tag == "blockquote":
            self._quote += 1
            self._block(1)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            if tag in self._skip:
                del self._skip[len(self._skip) - 1 - self._skip[::-1].index(tag)]
        elif tag in _PARAGRAPH_TAGS:
            self._block(2)
        elif tag in _LINE_TAGS:
            self._block(1)
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag == "blockquote" and self._quote:
            self._quote -= 1
            self._block(1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        data = data.replace("\xa0", " ")
        if not self._pre:
            data = _WS_RUN.sub(" ", data)
        if self._pending and not self._pre:
            data = data.lstrip(" ")
        if not data or (not self._out and not data.strip()):
            return
        line_start = not self._out or bool(self._pending)
        if self._pending and self._out:
            self._out.append("\n" * self._pending)
        self._pending = 0
        quote = "> " * self._quote if line_start else ""
        self._out.append(quote + self._prefix + data)
        self._prefix = ""

    def text(self) -> str:
        text = re.sub(r"[ \t]+\n", "\n", "".join(self._out))
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_to_text(html: str) -> str:
    """Readable plain text from HTML: block structure kept as line breaks."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but a crash must not lose the body
        return _WS_RUN.sub(" ", re.sub(r"<[^>]*>", " ", html)).strip()
    return parser.text()


# ---------------------------------------------------------------------------- body walk


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

    _sanitized: str | None = None

    def text(self) -> str:
        own = "\n\n".join(part.strip("\n") for part in self.plain if part.strip())
        if not own and (html := self.html()):
            own = html_to_text(html)
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
            self.html_parts.append(_part_text(part, self.defects))
            return
        if not want_plain:
            return
        if ctype.startswith("multipart/"):
            self.defects.append(f"{ctype} part without usable boundary; kept as text")
        text, files = _extract_uuencoded(_part_text(part, self.defects))
        self.plain.append(text)
        for name, data in files:
            guessed = mimetypes.guess_type(name, strict=False)[0]
            self._store(name, guessed or "application/octet-stream", data)

    def _attachment(self, part: Message, ctype: str) -> None:
        self._store(_filename(part), ctype, _payload_bytes(part))

    def _store(self, filename: str, ctype: str, data: bytes) -> None:
        size = len(data)
        if size <= self.max_attachment_bytes:
            self.attachments.append(Attachment(filename, ctype, size, data))
            return
        note = (
            f"not stored: {_human_size(size)} is over the "
            f"{_human_size(self.max_attachment_bytes)} attachment cap"
        )
        self.attachments.append(Attachment(filename, ctype, size, None, note))

    def _forwarded(self, part: Message, ctype: str, depth: int, *, in_report: bool) -> None:
        inner = _children(part)[0]
        nested = _BodyCollector(self.max_attachment_bytes, [])
        nested.visit(inner, depth + 1)
        self.defects.extend(d if d.startswith(_NESTED) else f"{_NESTED}{d}" for d in nested.defects)
        if text := nested.text():
            self.forwarded.append(text)
        inner_headers = _HeaderReader(inner, [])
        if in_report and self.dsn_message_id is None:
            self.dsn_message_id = _first_id(inner_headers.first("message-id"))
        subject = inner_headers.subject()
        filename = _filename(part) or _eml_name(subject)
        self._store(filename, ctype, _message_bytes(inner, self.defects))

    def _returned_headers(self, part: Message) -> None:
        text = _part_text(part, self.defects)
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


def _first_id(value: str | None) -> str | None:
    ids = _extract_message_ids(str(value)) if value else []
    return ids[0] if ids else None


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


def _status_blocks(part: Message, defects: list[str]) -> list[Message]:
    blocks = _children(part)
    if blocks:
        return blocks
    # Some MTAs label the part as delivery-status but the stdlib could not split it;
    # the format is simple enough to re-read as blank-line separated header blocks.
    text = _normalise_newlines(_decode_bytes(_payload_bytes(part), None, defects, "DSN"))
    parser = HeaderParser(policy=policy.compat32)
    return [parser.parsestr(chunk) for chunk in re.split(r"\n\s*\n", text) if chunk.strip()]


def _block_value(block: Message, name: str) -> str | None:
    for key, value in _raw_items(block):
        if key.lower() == name:
            return _unfold(value)
    return None


def _dsn_address(value: str) -> str:
    # "rfc822; user@example.com" -> "user@example.com"
    _, _, addr = value.rpartition(";")
    return addr.strip().strip("<>").strip().lower()
