"""Files pasted into a plain-text body as uuencoded ``begin 644 name`` blocks."""

from __future__ import annotations

import binascii
import re

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
