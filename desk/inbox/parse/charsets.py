"""Bytes to text: the declared charset, else UTF-8, else a guessed legacy charset."""

from __future__ import annotations

import re

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
