"""Text normalisers shared by the parser's parts: controls, newlines, whitespace, repeats."""

from __future__ import annotations

import re
from collections.abc import Iterable

_C0_EXCEPT_NL_TAB = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ALL_C0 = re.compile(r"[\x00-\x1f\x7f]")
_WS_RUN = re.compile(r"\s+")


def _clean_line(value: str) -> str:
    """One-line text safe to put back into a header: no CR/LF, no controls, single spaces."""
    return _WS_RUN.sub(" ", _ALL_C0.sub(" ", value)).strip()


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _clean_body(text: str) -> str:
    text = _C0_EXCEPT_NL_TAB.sub("", _normalise_newlines(text))
    # Leading blank lines and trailing whitespace are noise; indentation of the first
    # real line is kept because it can matter (code, tables).
    return re.sub(r"\A(?:[ \t]*\n)+", "", text).rstrip()


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
