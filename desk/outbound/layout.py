"""The shape of the text part people read: lines of at most 72 columns, one blank line
between paragraphs.

Templates opt in with ``{% filter wrap %}...{% endfilter %}`` around their own prose and
write each paragraph on one line; desk wraps it. What a person wrote (the client's
message in a notice, a staff reply relayed to the client, an estimate's text) stays
outside the filter: their line breaks are theirs, and re-wrapping them would garble code,
addresses and lists they typed.
"""

from __future__ import annotations

import re
import textwrap

WIDTH = 72

# An indented "Label:  value" or "column  value" line continues under its value; a
# bullet or numbered item under its text.
_BULLET = re.compile(r"(\s*)((?:[-*\u2022]|\d{1,2}[.)])\s+)")
_COLUMN = re.compile(r"(\s+)(\S.*?(?::\s+|\s{2,}))(?=\S)")
_BLANK_RUN = re.compile(r"\n(?:[ \t]*\n){2,}")


def _hanging_indent(line: str, width: int) -> str:
    bullet = _BULLET.match(line)
    if bullet:
        return " " * bullet.end()
    indent = line[:len(line) - len(line.lstrip())]
    # A row of a table starts near the margin; a deeper line is itself a continuation
    # (a description under its command) and goes on at its own indent.
    column = _COLUMN.match(line) if 0 < len(indent) <= 4 else None
    # At least 24 columns stay for the value (a command table's descriptions).
    if column and column.end() <= width - 24:
        return " " * column.end()
    # A label too wide to hang under: continue a little in from the line's own indent.
    return indent + "  " if column else indent


def wrap_line(line: str, width: int = WIDTH) -> list[str]:
    """One line of a template as lines of at most ``width`` columns. Words are never
    split: a link, an address or a path longer than the line stands on a line of its
    own. A quoted line (">") is someone else's text and is left as it is."""
    if len(line) <= width or line.lstrip().startswith(">"):
        return [line]
    wrapper = textwrap.TextWrapper(
        width=width, subsequent_indent=_hanging_indent(line, width),
        break_long_words=False, break_on_hyphens=False,  # never inside a URL or an address
        expand_tabs=False, replace_whitespace=False)
    return wrapper.wrap(line) or [line]


def wrap_text(text: str, width: int = WIDTH) -> str:
    """Every line wrapped at ``width``, and never more than one blank line in a row (an
    empty optional section must not leave a hole)."""
    wrapped = "\n".join(out for line in text.split("\n") for out in wrap_line(line, width))
    return _BLANK_RUN.sub("\n\n", wrapped)
