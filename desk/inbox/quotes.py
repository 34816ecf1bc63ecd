"""What a person actually wrote in a reply: quoted history and signatures removed.

``mail-parser-reply`` (a maintained, multi-language port of GitHub's email_reply_parser)
cuts top-posted history ("On ... wrote:", Outlook header blocks). Mail programs that
quote below or inline ("> ...") are handled first here: every quote block goes, with
the attribution line(s) just above it, in any language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from html import unescape

from mailparser_reply import EmailReplyParser

LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "sv", "da", "pl", "cs"]

_QUOTED = re.compile(r"^\s*>")
_ATTRIBUTION_PART = re.compile(r"@|\d{1,4}[./:-]\d{1,2}")
_SIG_DELIMITER = re.compile(r"^--\s*$")
_MOBILE_FOOTERS = re.compile(
    r"^\s*(?:Sent from my \w+|Sent from (?:Mail|Outlook) for \w+|Get Outlook for \w+|"
    r"Sent with Sparrow.*|Von meinem \w+ gesendet|Envoyé de mon \w+|Enviado desde mi \w+|"
    r"Verzonden vanaf mijn \w+|Inviato da \w+)\s*(?:\[\S+\])?\s*$",
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


# -- HTML -----------------------------------------------------------------------------
# The same cut in HTML, on the raw HTML (sanitising first would take away the classes and
# ids that mark where the history starts); the result is sanitised afterwards.

_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
                   "meta", "param", "source", "track", "wbr"})
# Tags that start a new line: a signature delimiter or command must stand on its own.
_LINE_BREAKING = frozenset({"br", "div", "p", "pre", "blockquote", "li", "ul", "ol", "table",
                            "tr", "td", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "body"})
# Wrappers of quoted history and signatures, removed with their content: Gmail, Gmail's
# older layout, Thunderbird, Yahoo, Proton; blockquote type=cite (Apple Mail, Thunderbird)
# is matched apart.
_QUOTE_CLASSES = ("gmail_quote", "gmail_extra", "gmail_signature", "moz-cite-prefix",
                  "moz-signature", "yahoo_quoted", "protonmail_quote")
# Outlook on the web's and Outlook mobile's signature blocks.
_SIGNATURE_IDS = frozenset({"signature", "ms-outlook-mobile-signature"})
_NEVER_SHOWN = frozenset({"head", "style", "script", "title", "template", "noscript"})
# Where Outlook's history starts: everything from there on goes.
_OUTLOOK_IDS = frozenset({"divrplyfwdmsg", "appendonsend", "stopspelling"})
# Cheap first looks: most tags carry none of these words, and need not be read further.
_QUOTE_HINT = re.compile(r"quote|extra|signature|cite|yahoo", re.IGNORECASE)
_HISTORY_HINT = re.compile(r"divrplyfwdmsg|appendonsend|stopspelling|border", re.IGNORECASE)
_OUTLOOK_SEPARATOR = re.compile(r"border-top:\s*solid|border-style:\s*solid\s+none\s+none")


@dataclass(slots=True)
class _Token:
    kind: str  # start | end | data | other
    tag: str
    start: int
    end: int
    raw_attrs: str = ""
    text: str = ""
    _attrs: dict[str, str] | None = None

    @property
    def attrs(self) -> dict[str, str]:
        # Read only for the few tags that could mark history: most never need it.
        if self._attrs is None:
            self._attrs = {m.group(1).lower(): unescape(next(
                (g for g in m.groups()[1:] if g is not None), ""))
                for m in _ATTR.finditer(self.raw_attrs)}
        return self._attrs


# A regular expression, not html.parser: mail HTML runs to megabytes, and a client's reply
# is cut on the way to every notice (html.parser took 2 ms per KB).
_TOKEN = re.compile(r"""
    (?P<comment><!--.*?(?:-->|\Z))
  | (?P<decl><[!?][^>]*>?)
  | <(?P<end>/)?(?P<tag>[A-Za-z][^\s/>]*)(?P<attrs>(?:[^>"']|"[^"]*"|'[^']*')*)>
  | (?P<data>[^<]+|<)
""", re.DOTALL | re.VERBOSE)
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
# Their content is text up to their own end tag, whatever it looks like.
_RAW_TEXT = frozenset({"script", "style", "title", "textarea", "xmp"})


def _tokens(html: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, length = 0, len(html)
    while pos < length:
        m = _TOKEN.match(html, pos)
        assert m is not None  # the last alternative matches any character
        end, what = m.end(), m.lastgroup
        if what == "data":
            text = m.group("data")
            tokens.append(_Token("data", "", pos, end,
                                 text=unescape(text) if "&" in text else text))
        elif what == "attrs":
            tag, attrs = m.group("tag", "attrs")
            tag = tag.lower()
            kind = "end" if m.group("end") else "start"
            tokens.append(_Token(kind, tag, pos, end, raw_attrs=attrs.strip()))
            if kind == "start" and tag in _RAW_TEXT:
                close = re.compile(rf"</{tag}\s*>", re.IGNORECASE).search(html, end)
                stop = close.start() if close else length
                if stop > end:
                    tokens.append(_Token("other", "", end, stop))
                end = stop
        else:
            tokens.append(_Token("other", "", pos, end))
        pos = end
    return tokens


def _element_ends(tokens: list[_Token], length: int) -> dict[int, int]:
    """Start-tag index -> where the element's end tag ends (unclosed: the end of it all)."""
    ends: dict[int, int] = {}
    stack: list[int] = []
    open_count: dict[str, int] = {}
    for i, t in enumerate(tokens):
        if t.kind == "start" and t.tag not in _VOID:
            stack.append(i)
            open_count[t.tag] = open_count.get(t.tag, 0) + 1
        elif t.kind == "end" and open_count.get(t.tag):
            # Elements left open inside (a <p> without </p>) end where their parent does.
            while stack:
                j = stack.pop()
                open_count[tokens[j].tag] -= 1
                if tokens[j].tag == t.tag:
                    ends[j] = t.end
                    break
                ends[j] = t.start
    for j in stack:
        ends[j] = length
    return ends


def _is_quote(t: _Token) -> bool:
    """History and signature wrappers, and what is never shown anyway (whose text would
    otherwise look like the start of the mail)."""
    if t.tag in _NEVER_SHOWN:
        return True
    if not _QUOTE_HINT.search(t.raw_attrs):
        return False
    classes = t.attrs.get("class", "").lower().split()
    return (t.tag == "blockquote" and t.attrs.get("type", "").lower() == "cite") or any(
        c.startswith(_QUOTE_CLASSES) for c in classes) or \
        t.attrs.get("id", "").lower() in _SIGNATURE_IDS


def _starts_history(t: _Token) -> bool:
    if not _HISTORY_HINT.search(t.raw_attrs):
        return False
    if t.attrs.get("id", "").lower() in _OUTLOOK_IDS:
        return True
    style = t.attrs.get("style", "").lower()
    return t.tag == "div" and bool(_OUTLOOK_SEPARATOR.search(style))


def _line_text(tokens: list[_Token]) -> str:
    return " ".join("".join(t.text for t in tokens).replace("\xa0", " ").split())


def reply_html(html: str, command_lines: list[str] | tuple[str, ...] = ()) -> str:
    """What a person wrote in an HTML mail, still raw HTML: quoted history, the signature
    and the leading ``command_lines`` removed. Sanitise the result before using it."""
    tokens = _tokens(html)
    ends = _element_ends(tokens, len(html))
    hidden = [False] * len(tokens)
    drop: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.kind != "start" or not _is_quote(t):
            i += 1
            continue
        end = ends.get(i, t.end)
        drop.append((t.start, end))
        if t.tag == "blockquote":
            _drop_attribution(tokens, i, hidden, drop)
        while i < len(tokens) and tokens[i].start < end:
            hidden[i] = True
            i += 1
    cut = _history_start(tokens, hidden, len(html))
    drop.append((cut, len(html)))
    if command_lines:
        _drop_commands(tokens, hidden, [" ".join(c.split()) for c in command_lines], drop)
    kept, pos = [], 0
    for a, b in sorted(drop):
        if a > pos:
            kept.append(html[pos:a])
        pos = max(pos, b)
    return "".join(kept)


def _history_start(tokens: list[_Token], hidden: list[bool], length: int) -> int:
    """Where Outlook's history block, a signature delimiter or a mobile footer starts."""
    at_line_start = True
    for i, t in enumerate(tokens):
        if hidden[i]:
            continue
        if t.kind == "start" and _starts_history(t):
            return _before_rule(tokens, i)
        if t.kind == "data":
            first = t.text.replace("\xa0", " ").lstrip().split("\n", 1)[0]
            if at_line_start and (_SIG_DELIMITER.match(first) or _MOBILE_FOOTERS.match(first)):
                return t.start
            at_line_start = at_line_start and not first.strip()
        elif t.kind in ("start", "end") and t.tag in _LINE_BREAKING:
            at_line_start = True
    return length


def _drop_attribution(tokens: list[_Token], quote: int, hidden: list[bool],
                      drop: list[tuple[int, int]]) -> None:
    """Apple Mail and others write "On <date>, <name> wrote:" just above the blockquote."""
    for k in range(quote - 1, max(quote - 20, -1), -1):
        t = tokens[k]
        if hidden[k] or t.kind != "data" or not t.text.strip():
            continue
        if _is_attribution([_line_text([t])]):
            drop.append((t.start, t.end))
            hidden[k] = True
        return


def _before_rule(tokens: list[_Token], i: int) -> int:
    """Outlook draws a rule (<hr>) just above its history block: it goes as well."""
    for t in reversed(tokens[max(i - 20, 0):i]):
        if (t.kind == "data" and not t.text.strip()) or t.kind == "end" or (
                t.kind == "start" and t.tag in ("div", "span")):
            continue
        return t.start if t.kind == "start" and t.tag == "hr" else tokens[i].start
    return tokens[i].start


def _drop_commands(tokens: list[_Token], hidden: list[bool], wanted: list[str],
                   drop: list[tuple[int, int]]) -> None:
    """The command lines at the top, a line at a time (a line may be split over several
    text runs), and the empty lines before the text."""
    line: list[_Token] = []
    breaks: list[_Token] = []

    def still_top() -> bool:
        text = _line_text(line)
        if text and wanted and text == wanted[0]:
            wanted.pop(0)
            drop.extend((d.start, d.end) for d in line)
            return True
        return not text

    for i, t in enumerate(tokens):
        if hidden[i]:
            continue
        if t.kind == "data":
            line.append(t)
        elif t.kind == "start" and t.tag == "img":
            break
        elif t.kind in ("start", "end") and t.tag in _LINE_BREAKING:
            if not still_top():
                break
            line = []
            if t.tag == "br":
                breaks.append(t)
    else:
        still_top()
    drop.extend((b.start, b.end) for b in breaks)
