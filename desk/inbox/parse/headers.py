"""Header reading: a cached header registry, and each header decoded in isolation."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import errors as email_errors
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from desk.inbox.message import Address
from desk.inbox.parse.charsets import CharsetHint, _repair_8bit
from desk.inbox.parse.text import _clean_line, _dedupe


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


_FOLD = re.compile(r"\r?\n")  # unfolding is just deleting the line breaks (RFC 5322 2.2.3)


def _unfold(value: str) -> str:
    return _FOLD.sub("", value)


def _decode_words(value: str) -> str:
    """RFC 2047 decoding through the most forgiving header class (unstructured text)."""
    try:
        return str(_POLICY.header_factory("x-desk-unstructured", _unfold(value)))
    except Exception:  # a decoding bug in the stdlib must not cost us the text
        return _unfold(value)


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

    def __init__(
        self, msg: Message, defects: list[str], hint: CharsetHint | None = None
    ) -> None:
        self.defects = defects
        self._raw: list[tuple[str, str]] = [
            (name, _repair_8bit(value, defects, f"{name} header", hint))
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


def _first_id(value: str | None) -> str | None:
    ids = _extract_message_ids(str(value)) if value else []
    return ids[0] if ids else None
