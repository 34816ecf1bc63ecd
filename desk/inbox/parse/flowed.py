"""``format=flowed`` text (RFC 3676) unwrapped into the paragraphs the sender typed."""

# The standard library has no decoder, and the one package on PyPI (formatflowed) has had
# no release since 2016; the algorithm is a page of the RFC, so it lives here.

from __future__ import annotations

import re
from dataclasses import dataclass

_QUOTE_MARKS = re.compile(r">*")
_SIGNATURE = "-- "


@dataclass
class _Line:
    depth: int  # number of ">" quote marks (RFC 3676 4.5)
    text: str  # without quote marks and space-stuffing
    soft: bool  # ends in a soft line break: the next line of the same depth continues it


def _read_line(raw: str, delsp: bool) -> _Line:
    marks = _QUOTE_MARKS.match(raw)
    depth = marks.end() if marks else 0
    text = raw[depth:]
    if text.startswith(" "):
        # Space-stuffing (4.4): senders put a space before lines starting with " ", ">"
        # or "From "; after the quote marks the conventional space is stuffing too.
        text = text[1:]
    # The signature separator ends in a space but never continues (4.3).
    soft = text.endswith(" ") and text != _SIGNATURE
    if soft and delsp:
        # DelSp=yes (4.2): the space was added only to mark the break, e.g. between
        # CJK characters where the text has no spaces of its own.
        text = text[:-1]
    return _Line(depth, text, soft)


def unflow(text: str, *, delsp: bool = False) -> str:
    """Join the soft line breaks of a ``format=flowed`` body. Quoted lines keep their depth
    (written ``>> `` as the sender's program wrote them) and are joined only with lines
    of the same depth."""
    out: list[str] = []
    paragraph: list[str] = []
    depth = 0
    soft = False
    for raw in text.split("\n"):
        line = _read_line(raw, delsp)
        if paragraph and (line.depth != depth or line.text == _SIGNATURE):
            # A soft break followed by another quote depth is treated as hard (4.5); the
            # signature separator is "neither fixed nor flowed" (4.3): a line of its own.
            out.append(_paragraph(paragraph, depth, soft and not delsp))
            paragraph = []
        depth = line.depth
        paragraph.append(line.text)
        soft = line.soft
        if not soft:
            out.append(_paragraph(paragraph, depth, False))
            paragraph = []
    if paragraph:  # the last line ended in a soft break that nothing continues
        out.append(_paragraph(paragraph, depth, soft and not delsp))
    return "\n".join(out)


def _paragraph(lines: list[str], depth: int, dangling_space: bool) -> str:
    text = "".join(lines)
    if dangling_space:
        # The space only marked a break that nothing continues: no reader sees it.
        text = text.removesuffix(" ")
    if not depth:
        return text
    marks = ">" * depth
    return f"{marks} {text}" if text else marks
