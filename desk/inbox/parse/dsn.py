"""Delivery status notifications (bounces): status blocks and the failed recipients."""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from email.parser import HeaderParser

from desk.inbox.parse.charsets import _decode_bytes
from desk.inbox.parse.headers import _raw_items, _unfold
from desk.inbox.parse.parts import _children, _payload_bytes
from desk.inbox.parse.text import _normalise_newlines


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
