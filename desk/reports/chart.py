"""A small bar chart as a PNG, for reports: mail programs show inline PNG images (cid:)
almost everywhere, where inline SVG is stripped by most webmail. PNG encoding is the
standard library's zlib plus the file format's three chunks; no imaging dependency."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
GRID: Color = (214, 219, 226)


def _png(width: int, height: int, rows: list[bytearray]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(r) for r in rows)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def bar_chart(bars: Sequence[tuple[float, Color]], scale_max: float, *, width: int = 480,
              bar_height: int = 22, gap: int = 10, marker: float | None = None) -> bytes:
    """Horizontal bars (value, colour) against ``scale_max``; ``marker`` draws a vertical
    line (e.g. the allowance). Labels live in the HTML beside the image."""
    pad = 6
    height = pad * 2 + len(bars) * bar_height + (len(bars) - 1) * gap
    rows = [bytearray(WHITE * width) for _ in range(height)]
    span = width - 2 * pad
    scale = max(scale_max, 1e-9)

    def fill(x0: int, x1: int, y0: int, y1: int, color: Color) -> None:
        for y in range(max(0, y0), min(height, y1)):
            row = rows[y]
            for x in range(max(0, x0), min(width, x1)):
                row[3 * x:3 * x + 3] = bytes(color)

    for i, (value, color) in enumerate(bars):
        y0 = pad + i * (bar_height + gap)
        fill(pad, width - pad, y0, y0 + bar_height, GRID)
        length = round(span * min(max(value, 0.0) / scale, 1.0))
        fill(pad, pad + length, y0, y0 + bar_height, color)
    if marker is not None:
        x = pad + round(span * min(marker / scale, 1.0))
        fill(x - 1, x + 1, 0, height, (34, 34, 34))
    return _png(width, height, rows)
