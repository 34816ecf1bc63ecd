"""Summarise a py-spy collapsed-stack profile (bench/inbox.py backlog --profile FILE).

    .venv/bin/python bench/hotspots.py FILE [--top 40] [--under desk/]

Prints, for each function, the share of samples in which it is on the stack (inclusive)
and at the top of the stack (self), so the expensive stages of the journey stand out.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--under", default="", help="only frames whose file contains this")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        # "func (path:line)" -> "func (path)": one entry per function, not per line.
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if args.under in f]
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    print(f"{total} samples")
    print(f"{'incl %':>7} {'self %':>7}  function")
    for frame, count in inclusive.most_common(args.top):
        print(f"{100 * count / total:7.1f} {100 * own[frame] / total:7.1f}  {frame}")


if __name__ == "__main__":
    main()
