"""One MIME part read defensively: children, type, parameters, filename, payload, text."""

from __future__ import annotations

import re
from email.message import Message

from desk.inbox.parse.charsets import CharsetHint, _decode_bytes, _repair_8bit
from desk.inbox.parse.headers import _decode_words
from desk.inbox.parse.text import _clean_line, _normalise_newlines


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


def _part_text(part: Message, defects: list[str], hint: CharsetHint | None = None) -> str:
    return _normalise_newlines(
        _decode_bytes(_payload_bytes(part), _param(part, "charset"), defects, "body", hint)
    )
