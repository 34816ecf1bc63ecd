"""HTML bodies: sanitised for showing to staff, and turned into readable plain text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

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
