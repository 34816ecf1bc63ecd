"""What a person actually wrote in a reply: quoted history and signatures removed.

``mail-parser-reply`` (a maintained, multi-language port of GitHub's email_reply_parser)
cuts top-posted history ("On ... wrote:", Outlook header blocks). Mail programs that
quote below or inline ("> ...") are handled first here: every quote block goes, with
the attribution line(s) just above it, in any language.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mailparser_reply import EmailReplyParser

LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "sv", "da", "pl", "cs"]

_QUOTED = re.compile(r"^\s*>")
_ATTRIBUTION_PART = re.compile(r"@|\d{1,4}[./:-]\d{1,2}")
_SIG_DELIMITER = re.compile(r"^--\s*$")
_MOBILE_FOOTERS = re.compile(
    r"^\s*(?:Sent from my \w+|Sent from (?:Mail|Outlook) for \w+|Get Outlook for \w+|"
    r"Sent with Sparrow.*|Von meinem \w+ gesendet|Envoyé de mon \w+|Enviado desde mi \w+|"
    r"Verzonden vanaf mijn \w+|Inviato da \w+)\s*$",
    re.IGNORECASE,
)


# Outlook-style forwarded/replied header blocks ("From: ... Sent: ... To: ..."), in
# languages the reply parser does not know (Russian, Portuguese, Turkish...).
_HEADER_FROM = re.compile(
    r"^\s*\*?(?:From|От|Von|De|Van|Da|Från|Fra|Od|Kimden|Lähettäjä)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_OTHER = re.compile(
    r"^\s*\*?(?:Sent|Date|To|Subject|Отправлено|Дата|Кому|Тема|Gesendet|Datum|An|Betreff|"
    r"Envoyé|À|Objet|Enviado|Para|Asunto|Verzonden|Aan|Onderwerp|Inviato|Oggetto|Skickat|"
    r"Till|Ämne|Wysłano|Do|Temat|Gönderildi|Kime|Konu)\s*:", re.IGNORECASE)


def cut_header_block(text: str) -> str:
    """Cut at the first "From:" line followed closely by other header lines."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i and _HEADER_FROM.match(line) and any(
                _HEADER_OTHER.match(nxt) for nxt in lines[i + 1:i + 5]):
            return "\n".join(lines[:i])
    return text


@lru_cache(maxsize=1)
def _parser() -> EmailReplyParser:
    return EmailReplyParser(languages=LANGUAGES)


def _is_attribution(lines: list[str]) -> bool:
    """'On <date>, <name> wrote:' in any language: ends with a colon, names a date or an
    address. Deliberately loose on words, strict on shape."""
    text = " ".join(line.strip() for line in lines)
    return bool(text.endswith(":") and len(text) < 300 and _ATTRIBUTION_PART.search(text))


def remove_quote_blocks(text: str) -> str:
    lines = text.split("\n")
    drop = [False] * len(lines)
    i = 0
    while i < len(lines):
        if not _QUOTED.match(lines[i]):
            i += 1
            continue
        start = i
        while i < len(lines) and (_QUOTED.match(lines[i]) or (
                not lines[i].strip() and i + 1 < len(lines) and _QUOTED.match(lines[i + 1]))):
            i += 1
        for k in range(start, i):
            drop[k] = True
        # The attribution: up to two non-blank lines above, across blank lines.
        above = start - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        if above >= 0 and not drop[above] and _is_attribution([lines[above]]):
            first = above
            # Mail programs wrap long attributions: take the line above too when it
            # carries the date or address rather than ending a sentence of the reply.
            prev = lines[above - 1].strip() if above >= 1 else ""
            if prev and not drop[above - 1] and _ATTRIBUTION_PART.search(prev) and \
                    not prev.endswith((".", "!", "?")):
                first = above - 1
            for k in range(first, start):
                drop[k] = True
    return "\n".join(line for line, gone in zip(lines, drop, strict=True) if not gone)


def strip_quotes(text: str) -> str:
    """The new text of a reply, without quoted history (signature kept)."""
    text = text.replace("\r\n", "\n")
    without_blocks = cut_header_block(remove_quote_blocks(text))
    try:
        reply = _parser().parse_reply(text=without_blocks)
    except Exception:  # a parser bug must not lose the reply: keep it all
        reply = without_blocks
    return (reply or "").strip()


def strip_signature(text: str) -> str:
    """Cut at the RFC 3676 signature delimiter or a mobile mail footer."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _SIG_DELIMITER.match(line) or _MOBILE_FOOTERS.match(line):
            return "\n".join(lines[:i]).rstrip()
    return text.rstrip()


def reply_text(text: str) -> str:
    """What a person wrote: no quoted history, no signature."""
    return strip_signature(strip_quotes(text))
