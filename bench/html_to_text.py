"""How long a big HTML-only message takes to become text: the figure for the issue's
"a 4 MB HTML-only message converts in under a second".

    .venv/bin/python bench/html_to_text.py [--mb 4] [--repeat 3]

Prints, for several shapes of HTML (a newsletter of tables and links, a forwarded thread
of nested blockquotes, one long pasted log, markup soup of tiny tags), the best of
``--repeat`` runs of ``html_to_text`` alone and of ``parse_message`` on the whole mail
(sanitising included, since that is what ingest pays). Figures are printed, never
asserted: benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desk.inbox.parse import html_to_text, parse_message

_TEXT = ("the checkout page shows an error since this morning and our customers cannot pay "
         "please could you look at it urgently we also noticed that the menu is slow on phones")
_WORDS = _TEXT.split(" ")


def _sentence(rng: random.Random, n: int = 14) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def newsletter(size: int, rng: random.Random) -> str:
    """Marketing-style mail: nested layout tables, styled spans, links, lists, images."""
    head = ("<html><head><style>td{font:12px Arial}</style><title>News</title></head>"
            "<body><table width=600><tr><td>")
    parts = [head]
    total = len(head)
    i = 0
    while total < size:
        i += 1
        block = (
            f'<table class="row"><tr><td style="padding:8px"><h2>Item {i}</h2>'
            f'<p><span style="color:#333">{_sentence(rng)}</span> <b>{_sentence(rng, 5)}</b>'
            f' <a href="https://shop.example.com/item/{i}?utm_source=news">Read more</a></p>'
            f'<ul><li>{_sentence(rng, 6)}</li><li>{_sentence(rng, 6)}</li></ul>'
            f'<img src="https://cdn.example.com/p/{i}.png" alt="">'
            f"&nbsp;&amp;&euro;</td><td>{_sentence(rng, 8)}</td></tr></table>\n"
        )
        parts.append(block)
        total += len(block)
    parts.append("</td></tr></table></body></html>")
    return "".join(parts)


def thread(size: int, rng: random.Random) -> str:
    """A long reply chain: every answer quotes the previous ones in a blockquote."""
    parts = ["<html><body>"]
    total = 0
    depth = 0
    while total < size:
        block = (f"<div>{_sentence(rng)}</div><div><br></div><div>{_sentence(rng)}</div>"
                 f"<div>On Mon, 2 Mar 2026, someone@example.com wrote:</div>"
                 '<blockquote style="margin:0 0 0 .8ex;border-left:1px #ccc solid">')
        parts.append(block)
        total += len(block)
        depth += 1
        if depth == 40:  # real threads are capped by mail clients; keep nesting plausible
            parts.append("</blockquote>" * depth)
            depth = 0
    parts.append("</blockquote>" * depth + "</body></html>")
    return "".join(parts)


def pasted_log(size: int, rng: random.Random) -> str:
    """A stack trace pasted into one <pre>, and one huge paragraph without tags."""
    line = "2026-03-02 10:00:00 ERROR checkout.payment: gateway timeout after 30s\n"
    pre = line * (size // 2 // len(line))
    para = " ".join(rng.choice(_WORDS) for _ in range(size // 2 // 6))
    return f"<html><body><pre>{pre}</pre><p>{para}</p></body></html>"


def soup(size: int, rng: random.Random) -> str:
    """Word-processor HTML: every word in its own span/font tag, unclosed tags."""
    parts = ["<html><body><div>"]
    total = 0
    while total < size:
        word = rng.choice(_WORDS)
        piece = (f'<span class="x"><font face="Calibri">{word}</font></span> '
                 if rng.random() < 0.8 else f"<o:p></o:p><p class=MsoNormal>{word} ")
        parts.append(piece)
        total += len(piece)
    parts.append("</div></body></html>")
    return "".join(parts)


def _as_mail(html: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Client <client@example.com>"
    msg["To"] = "support@agency.test"
    msg["Subject"] = "Big HTML"
    msg["Message-ID"] = "<bench-html@example.com>"
    msg["Date"] = "Mon, 2 Mar 2026 10:00:00 +0000"
    msg.set_content(html, subtype="html", cte="quoted-printable")
    return msg.as_bytes()


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=4.0, help="HTML size per shape")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = int(args.mb * 1024 * 1024)
    print(f"{'shape':<12} {'html MB':>8} {'text MB':>8} {'html_to_text s':>15} "
          f"{'parse_message s':>16}")
    for make in (newsletter, thread, pasted_log, soup):
        html = make(size, random.Random(7))
        raw = _as_mail(html)
        text = html_to_text(html)
        convert = _best(lambda html=html: html_to_text(html), args.repeat)
        whole = _best(lambda raw=raw: parse_message(raw), args.repeat)
        print(f"{make.__name__:<12} {len(html) / 2**20:8.2f} {len(text) / 2**20:8.2f} "
              f"{convert:15.3f} {whole:16.3f}")


if __name__ == "__main__":
    main()
