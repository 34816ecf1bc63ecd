"""HTML bodies: sanitised for showing to staff, and turned into readable plain text."""

# Text comes from the sanitised HTML, never from the raw part: nh3's HTML5 parser
# (html5ever, in Rust) has already repaired the tag soup of real mail, dropped comments,
# scripts and styles, and written back regular markup (lower-case tags, every attribute
# value in double quotes, "<" in text escaped). Reading that regular form needs only a
# regular expression over the tags: about three times faster than html.parser's
# tokenizer on a 4 MB newsletter (bench/html_to_text.py). Of the maintained converters,
# inscriptis was slower still (2.7 s on that newsletter, lxml and requests pulled in) and
# drops the "> " quoting of <blockquote> that reply parsing depends on; html2text is
# GPL-licensed and writes Markdown.

from __future__ import annotations

import re
from html import unescape

import nh3

from desk.inbox.parse.text import _WS_RUN


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


# Tags whose start and end are a paragraph break (2) or a line break (1).
_BREAKS: dict[str, int] = {
    **dict.fromkeys(("p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote"), 2),
    **dict.fromkeys(
        (
            "div", "tr", "ul", "ol", "dl", "dt", "dd", "pre", "hr", "li", "section",
            "article", "aside", "header", "footer", "nav", "address", "center", "figure",
            "figcaption", "details", "summary", "caption", "hgroup", "form",
        ),
        1,
    ),
}
_CELLS = frozenset({"td", "th"})
# Everything else (span, b, font, img...) changes nothing in plain text.
_MEANINGFUL = frozenset({*_BREAKS, *_CELLS, "br", "a"})
_TOKEN = re.compile(
    r'<(/?)([A-Za-z][^\s/>]*)((?:[^>"]|"[^"]*")*)>'  # a tag; quoted values may hold ">"
    r"|<!--.*?(?:-->|\Z)|<![^>]*>|<\?[^>]*>",  # comments, doctype: nothing to show
    re.DOTALL,
)
_HREF = re.compile(r'\shref\s*=\s*"([^"]*)"', re.IGNORECASE)
_START = re.compile(r'\sstart\s*=\s*"\s*(-?\d{1,9})', re.IGNORECASE)
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE)
# Link targets a reader of the text cannot use: parts of this mail, scripts. (In-page
# anchors and relative links have no scheme at all, and are left out too.)
_HIDDEN_SCHEMES = frozenset({"cid", "data", "javascript", "about"})
# Deeper quoting or list nesting is written as this deep: hostile mail nests thousands of
# levels, and a prefix per level on every line grows the text quadratically.
_MAX_DEPTH_SHOWN = 20
_URL_PREFIXES = ("https://", "http://", "mailto:", "tel:")


def _bare(url: str) -> str:
    """The page a reader sees named: "https://www.example.com/" is "www.example.com"."""
    url = " ".join(url.split()).lower()
    for prefix in _URL_PREFIXES:
        if url.startswith(prefix):
            url = url[len(prefix) :]
            break
    return url.rstrip("/")


def _shown_target(href: str, text: str) -> str | None:
    """The URL to write after a link's text, or None when it adds nothing: no text to
    hang it on, a target the reader cannot follow, or the text already is the URL."""
    scheme = _SCHEME.match(href)
    if not text.strip() or not scheme or scheme.group(1).lower() in _HIDDEN_SCHEMES:
        return None
    if scheme.group(1).lower() == "mailto":
        # "mailto:a@b.example?subject=..." behind the text "a@b.example" adds nothing.
        return None if _bare(href.split("?")[0]) == _bare(text) else href
    return None if _bare(href) == _bare(text) else href


class _TextWriter:
    """Sanitised HTML -> text, where block boundaries become line breaks.

    Breaks are kept pending and merged (``</div><div>`` is one line break, not two) and
    only written out before the next visible text, so empty wrappers add nothing.
    """

    def __init__(self) -> None:
        self._out: list[str] = []
        self._pending = 0  # line breaks owed before the next text
        self._line_start = True
        self._space = True  # the text so far ends in a space (or nothing): collapse more
        self._bullet = ""  # list marker owed at the start of the next line
        self._pre = 0
        # <blockquote> depth: quoted lines get "> " like a mail program's plain-text view,
        # so reply parsing can tell quoted history from what the person wrote.
        self._quote = 0
        self._lists: list[list[int]] = []  # [ordered (0/1), last number] per open list
        self._links: list[tuple[str, int]] = []  # (href, where its text starts in _out)

    def _block(self, breaks: int) -> None:
        self._pending = max(self._pending, breaks)

    def start(self, tag: str, attrs: str) -> None:
        if (breaks := _BREAKS.get(tag)) is not None:
            self._block(breaks)
            if tag == "li":
                self._bullet = self._list_marker()
            elif tag in ("ul", "ol"):
                start = _START.search(attrs) if tag == "ol" else None
                self._lists.append([tag == "ol", int(start.group(1)) - 1 if start else 0])
            elif tag == "pre":
                self._pre += 1
            elif tag == "blockquote":
                self._quote += 1
        elif tag == "br":
            self._pending += 1
        elif tag in _CELLS:
            if not self._pending and not self._line_start and not self._space:
                self._out.append(" ")
                self._space = True
        elif tag == "a":
            href = _HREF.search(attrs)
            self._links.append((unescape(href.group(1)) if href else "", len(self._out)))

    def end(self, tag: str) -> None:
        if (breaks := _BREAKS.get(tag)) is not None:
            self._block(breaks)
            if tag in ("ul", "ol") and self._lists:
                self._lists.pop()
            elif tag == "pre" and self._pre:
                self._pre -= 1
            elif tag == "blockquote" and self._quote:
                self._quote -= 1
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            if target := _shown_target(href, "".join(self._out[start:])):
                self._out.append(f" [{target}]")
                self._space = False

    def _list_marker(self) -> str:
        if not self._lists:
            return "- "
        indent = "  " * min(len(self._lists) - 1, _MAX_DEPTH_SHOWN)
        current = self._lists[-1]
        if not current[0]:
            return f"{indent}- "
        current[1] += 1
        return f"{indent}{current[1]}. "

    def data(self, text: str) -> None:
        if "&" in text:
            text = unescape(text)
        if self._pre:
            text = text.replace("\xa0", " ")
            if self._quote:
                text = text.replace("\n", "\n" + self._quote_prefix())
        else:
            text = _WS_RUN.sub(" ", text)
            if text[:1] == " " and (self._space or self._pending or self._line_start):
                text = text[1:]
        if not text:
            return
        if self._pending:
            if self._out:
                self._out.append("\n" * self._pending)
                self._line_start = True
            self._pending = 0
        if self._line_start:
            text = self._quote_prefix() + self._bullet + text
            self._bullet = ""
            self._line_start = False
        self._out.append(text)
        self._space = text[-1] in " \n"

    def _quote_prefix(self) -> str:
        return "> " * min(self._quote, _MAX_DEPTH_SHOWN)

    def text(self) -> str:
        text = re.sub(r"[ \t]+\n", "\n", "".join(self._out))
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def sanitised_html_to_text(html: str) -> str:
    """Readable plain text from HTML that ``sanitize_html`` wrote: block structure as line
    breaks, lists with their bullets or numbers, link targets as "text [url]"."""
    writer = _TextWriter()
    # split() hands back text, "/", tag name, attributes, text, ... in one C call: on big
    # mail the per-match method calls of finditer() were a third of the time.
    pieces = _TOKEN.split(html)
    try:
        if pieces[0]:
            writer.data(pieces[0])
        for i in range(1, len(pieces), 4):
            if (tag := pieces[i + 1]) is not None and (tag := tag.lower()) in _MEANINGFUL:
                if pieces[i]:
                    writer.end(tag)
                else:
                    writer.start(tag, pieces[i + 2])
            if text := pieces[i + 3]:
                writer.data(text)
    except Exception:  # a bug in the writer must not lose the body: tags out, text kept
        return _WS_RUN.sub(" ", unescape(re.sub(r"<[^>]*>", " ", html))).strip()
    return writer.text()


def html_to_text(html: str) -> str:
    """Readable plain text from any HTML (sanitised first: see the top of this module)."""
    return sanitised_html_to_text(sanitize_html(html))
