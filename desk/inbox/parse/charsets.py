"""Bytes to text: the declared charset, else UTF-8, else what the rest of the message
declares, else what charset-normalizer detects."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import CharsetMatch, from_bytes

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
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
}
# Labels that say "we don't know" and must not be looked up as codecs.
_NO_CHARSET = frozenset({"", "unknown-8bit", "x-unknown", "unknown", "default", "charset"})

# What undeclared 8-bit mail is actually written in: the legacy encodings of the WHATWG
# Encoding Standard (the ones browsers and mail readers still decode). Left to itself,
# charset-normalizer also weighs DOS, Mac and EBCDIC code pages and picks them for short
# Western text. The order is the preference when detection cannot tell candidates
# apart (a few words): the Western default first, then by how common each was for mail
# sent without a label (KOI8-R was the Russian mail charset, RFC 1489).
_CANDIDATES = (
    "cp1252", "iso8859_15", "koi8_r", "cp1251", "cp1250", "iso8859_2", "cp1253",
    "iso8859_7", "cp1254", "cp1255", "iso8859_8", "cp1256", "cp1257", "iso8859_13",
    "koi8_u", "iso8859_5", "iso8859_4", "cp874", "cp1258", "cp932", "euc_jp",
    "iso2022_jp", "gb18030", "big5", "cp949",
)
_PREFERENCE = {name: rank for rank, name in enumerate(_CANDIDATES)}
# Scores closer than this are the same verdict (charset-normalizer rounds to 0.01 too).
_TIE = 0.011
# Inside a word, a Latin letter next to a letter of another script, or a letter next to
# a symbol: what text decoded with the wrong charset looks like ("B陰d" for Polish
# "Błąd", "cafй", "¶λλαξε" for Greek "Άλλαξε"). Symbols that do touch letters in real
# text («», ´ as an apostrophe, ·, ª º, the soft hyphen) are left out.
_NON_LATIN = r"[^\W\d_\u0000-\u024f]"
_WORD_SYMBOL = "[\u00a2-\u00a9\u00ac\u00ae-\u00b3\u00b6\u00b8\u00b9\u00bc-\u00be]"
_IMPLAUSIBLE = re.compile(
    rf"[A-Za-z]{_NON_LATIN}|{_NON_LATIN}[A-Za-z]|[^\W\d_]{_WORD_SYMBOL}|{_WORD_SYMBOL}[^\W\d_]"
)
# ISO-2022 switches character sets with escape sequences in 7-bit text, so it passes as
# valid UTF-8; the escapes give it away (JIS X 0208 / 0212 / 0201 designations).
_ISO2022_JP = re.compile(rb"\x1b(?:\$[@B(]|\([BJI])")
_GUESS_SAMPLE = 64 * 1024  # enough text to tell scripts apart, cheap on huge bodies


@dataclass
class CharsetHint:
    """What one message says about its charset, for its parts and headers that say
    nothing: senders write one message in one charset."""

    declared: str = ""  # the first charset a text part of the message declares
    detected: str = ""  # what detection found for an undeclared part of this message

    @property
    def charset(self) -> str:
        return self.declared or self.detected


def _charset_label(charset: str | None) -> str:
    label = (charset or "").strip().strip("\"'").lower()
    if label in _NO_CHARSET:
        return ""
    return _CHARSET_SUPERSETS.get(label, label)


def _known_charset(charset: str | None) -> str:
    """The codec for a declared label, or "" when Python has none."""
    label = _charset_label(charset)
    try:
        return codecs.lookup(label).name if label else ""
    except (LookupError, ValueError):  # ValueError: a NUL in the label
        return ""


def _rank(match: CharsetMatch) -> tuple[int, int]:
    text = str(match)[:_GUESS_SAMPLE]
    preference = min(_PREFERENCE.get(name, len(_CANDIDATES))
                     for name in match.could_be_from_charset)
    return len(_IMPLAUSIBLE.findall(text)), preference


def _best_codec(match: CharsetMatch) -> str:
    # Charsets that give the same text on the sample are listed together; the preferred
    # one (cp1252 over cp1250 for "café") is likelier right on the rest of the text.
    return min(match.could_be_from_charset,
               key=lambda name: _PREFERENCE.get(name, len(_CANDIDATES)))


def _detect(data: bytes) -> str | None:
    """charset-normalizer's verdict on undeclared 8-bit text that is not UTF-8."""
    matches = list(from_bytes(data[:_GUESS_SAMPLE], cp_isolation=list(_CANDIDATES)))
    if not matches:
        return None
    least_chaos = min(m.chaos for m in matches)
    plausible = [m for m in matches if m.chaos - least_chaos < _TIE]
    coherent = max(m.coherence for m in plausible)
    tied = [m for m in plausible if coherent - m.coherence < _TIE]
    # On a few words, many charsets decode without a flaw and no language shows yet.
    return _best_codec(min(tied, key=_rank))


def _mostly_utf8(data: bytes) -> bool:
    """More well-formed UTF-8 multi-byte characters than broken bytes."""
    text = data[:_GUESS_SAMPLE].decode("utf-8", errors="replace")
    broken = text.count("\ufffd")
    return len(text) - len(text.encode("ascii", errors="ignore")) - broken > broken


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (LookupError, ValueError):
        return None


def _decode_bytes(
    data: bytes, charset: str | None, defects: list[str], where: str,
    hint: CharsetHint | None = None,
) -> str:
    """Declared charset, then UTF-8, then the message's charset, then detection; never
    raises. Valid UTF-8 and correctly declared text never reach the detector."""
    if not data:
        return ""
    label = _charset_label(charset)
    if (
        label in ("", "ascii")
        and b"\x1b" in data
        and _ISO2022_JP.search(data)
        and (text := _strict(data, "iso2022_jp_2")) is not None
    ):
        defects.append(f"{where}: ISO-2022-JP text without its charset label")
        return text
    if label:
        try:
            return data.decode(label)
        except LookupError:
            defects.append(f"{where}: unknown charset {charset!r}")
        except ValueError:  # UnicodeDecodeError, or a codec that rejects the input
            defects.append(f"{where}: text is not valid {charset!r}")
    if (text := _strict(data, "utf-8")) is not None:
        return text
    if _mostly_utf8(data):
        # A few broken bytes in UTF-8 text: keep the good text, mark the bad bytes.
        defects.append(f"{where}: invalid UTF-8 bytes replaced")
        return data.decode("utf-8", errors="replace")
    if hint and hint.charset and (text := _strict(data, hint.charset)) is not None:
        if not label:
            defects.append(f"{where}: 8-bit text without a charset, read as {hint.charset} "
                           "like the rest of the message")
        return text
    codec = _detect(data) or "cp1252"
    if hint is not None and not hint.detected:
        hint.detected = codec
    if not label:
        defects.append(f"{where}: 8-bit text without a charset, read as {codec}")
    return data.decode(codec, errors="replace")


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _repair_8bit(
    value: str, defects: list[str], where: str, hint: CharsetHint | None = None
) -> str:
    """Header values from message_from_bytes carry raw 8-bit bytes as surrogate escapes.

    The header registry would turn those into U+FFFD; decoding them ourselves first keeps
    e.g. an undeclared KOI8-R subject readable. A subject is a few words, too few to
    detect a charset from, so the charset of the message's body comes first.
    """
    if not _has_surrogates(value) and "\x1b" not in value:  # ESC: raw ISO-2022-JP
        return value
    data = value.encode("utf-8", errors="surrogateescape")
    return _decode_bytes(data, None, defects, where, hint)
