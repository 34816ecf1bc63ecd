"""Inbox benchmarks against real servers; prints figures.

    .venv/bin/python bench/inbox.py backlog [--messages 1000]
    .venv/bin/python bench/inbox.py idle [--messages 60 --rate 5]

backlog: N messages preloaded into Dovecot -> one `desk run --once` -> every message
ticketed, assigned and acknowledged, the acknowledgements received by an SMTP server in
another process. Prints messages/s end to end and the desk process's peak RSS.

idle: a running `desk run` in IDLE; messages appended one by one; prints the time from
APPEND to the acknowledgement arriving at the SMTP server (p50/p95/p99).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    SUPPORT_USER,
    bench_mail,
    children_peak_rss_mb,
    make_env,
    percentiles,
    scratch,
    servers,
)

from tests.support import DESK, DaemonProcess, wait_for_client_mail


def backlog(count: int) -> None:
    root = scratch("desk-bench-backlog-")
    dovecot, capture = servers(root)
    try:
        env = make_env(root, dovecot, capture)
        rng = random.Random(7)
        raws = [bench_mail(i, rng) for i in range(count)]
        t0 = time.monotonic()
        for start in range(0, count, 500):
            dovecot.multiappend(SUPPORT_USER, raws[start:start + 500])
        print(f"preloaded {count} messages into Dovecot in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        proc = subprocess.run([*DESK, "--config", str(env.config), "run", "--once",
                               "--log-level", "warning"], capture_output=True, text=True,
                              cwd=env.root)
        acks = wait_for_client_mail(capture, count, timeout=900)
        elapsed = time.monotonic() - t0
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr)
        tickets = len(env.tickets())
        print(f"backlog: {count} messages -> {tickets} tickets, {len(acks)} acknowledgements "
              f"and {len(capture.messages()) - len(acks)} staff notices received")
        print(f"  end to end {elapsed:.2f} s = {count / elapsed:.0f} messages/s")
        print(f"  peak RSS of desk run --once: {children_peak_rss_mb():.0f} MB")
        print(f"  desk said: {proc.stdout.strip()}")
        env.close()
    finally:
        capture.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)


def idle(count: int, rate: float) -> None:
    root = scratch("desk-bench-idle-")
    dovecot, capture = servers(root)
    try:
        env = make_env(root, dovecot, capture)
        daemon = DaemonProcess(env)
        time.sleep(1.0)
        rng = random.Random(11)
        latencies: list[float] = []
        with dovecot.connect(SUPPORT_USER) as c:
            for i in range(count):
                raw = bench_mail(i, rng)
                t0 = time.monotonic()
                c.append("INBOX", raw)
                wait_for_client_mail(capture, i + 1, timeout=30)
                latencies.append(time.monotonic() - t0)
                time.sleep(max(0.0, 1.0 / rate - latencies[-1]))
        daemon.stop()
        print(f"IDLE arrival -> acknowledgement received: {percentiles(latencies)}")
        env.close()
    finally:
        capture.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    b = sub.add_parser("backlog")
    b.add_argument("--messages", type=int, default=1000)
    i = sub.add_parser("idle")
    i.add_argument("--messages", type=int, default=60)
    i.add_argument("--rate", type=float, default=5.0, help="messages per second")
    args = parser.parse_args()
    if args.what == "backlog":
        backlog(args.messages)
    else:
        idle(args.messages, args.rate)


if __name__ == "__main__":
    main()
