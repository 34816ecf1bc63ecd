"""Inbox benchmarks against real servers; prints figures.

    .venv/bin/python bench/inbox.py backlog [--messages 1000] [--postgres] [--profile FILE]
    .venv/bin/python bench/inbox.py idle [--messages 1200 --rate 20]
    .venv/bin/python bench/inbox.py lmtp [--messages 1200 --rate 20]

backlog: N messages preloaded into Dovecot -> one `desk run --once` -> every message
ticketed, assigned and acknowledged, the acknowledgements received by an SMTP server in
another process. Prints messages/s end to end and the desk process's peak RSS.

idle / lmtp: a running `desk run`; messages appended (IDLE) or delivered (LMTP) at a fixed
rate, 20/s for 60 s by default, open loop; prints the time from APPEND / LMTP to the
acknowledgement arriving at the SMTP server (p50/p95/p99).
"""

from __future__ import annotations

import argparse
import random
import shutil
import smtplib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    SUPPORT_USER,
    bench_mail,
    children_cpu_seconds,
    children_peak_rss_mb,
    make_env,
    percentiles,
    scratch,
    servers,
)

from tests.servers import Postgres, free_port
from tests.support import DESK, DaemonProcess, to_clients, wait_for_client_mail


def backlog(count: int, postgres: bool, profile: Path | None = None) -> None:
    root = scratch("desk-bench-backlog-")
    dovecot, capture = servers(root)
    pg = Postgres().start(root / "pg") if postgres else None
    try:
        env = make_env(root, dovecot, capture,
                       database_url=pg.create_database("bench") if pg else None)
        rng = random.Random(7)
        raws = [bench_mail(i, rng) for i in range(count)]
        t0 = time.monotonic()
        for start in range(0, count, 500):
            dovecot.multiappend(SUPPORT_USER, raws[start:start + 500])
        print(f"preloaded {count} messages into Dovecot in {time.monotonic() - t0:.1f} s")
        t0, wall0, cpu0 = time.monotonic(), time.time(), children_cpu_seconds()
        # py-spy (the [bench] extra) samples every thread of desk: where the time goes.
        # The output is collapsed stacks; bench/hotspots.py summarises them.
        spy = str(Path(sys.executable).with_name("py-spy"))
        runner = ([spy, "record", "--format", "raw", "--rate", "250", "--nonblocking",
                   "--output", str(profile), "--", *DESK] if profile else DESK)
        proc = subprocess.run([*runner, "--config", str(env.config), "run", "--once",
                               "--log-level", "info"], capture_output=True, text=True,
                              cwd=env.root)
        # desk exits once the SMTP server has accepted (250) every mail: that is the end.
        # Reading the sink back to check the counts is the benchmark's own work, untimed.
        elapsed = time.monotonic() - t0
        acks = wait_for_client_mail(capture, count, timeout=900)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr)
        tickets = len(env.tickets())
        print(f"backlog: {count} messages -> {tickets} tickets, {len(acks)} acknowledgements "
              f"and {len(capture.messages()) - len(acks)} staff notices received")
        print(f"  end to end {elapsed:.2f} s = {count / elapsed:.0f} messages/s")
        print(f"  peak RSS of desk run --once: {children_peak_rss_mb():.0f} MB; its CPU time "
              f"{children_cpu_seconds() - cpu0:.1f} s")
        print(f"  desk said: {proc.stdout.strip()}")
        print("  " + " | ".join(line.split("desk.daemon: ")[-1] for line in
                                proc.stderr.splitlines() if "intake:" in line or "process" in line))
        # When the mail reached the SMTP server (its file time): how far delivery kept up.
        arrived = sorted(m.path.stat().st_mtime - wall0 for m in capture.messages())
        if arrived:
            marks = [arrived[max(0, round(len(arrived) * q) - 1)] for q in (0.25, 0.5, 0.75, 1)]
            print("  mail received at the SMTP server: 25%/50%/75%/100% by "
                  + " / ".join(f"{t:.1f}" for t in marks) + " s")
        env.close()
    finally:
        capture.stop()
        dovecot.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def _live(send: object, capture: object, count: int, rate: float) -> list[float]:
    """Open loop: send `count` messages at `rate`/s whatever happens, then match each
    acknowledgement (by subject) to its send time; the sink's file time is its arrival."""
    sent_at: dict[str, float] = {}
    rng = random.Random(11)
    t_start = time.time()
    for i in range(count):
        raw = bench_mail(i, rng)
        subject = raw.split(b"Subject: ", 1)[1].split(b"\n", 1)[0].decode()
        target = t_start + i / rate
        time.sleep(max(0.0, target - time.time()))
        sent_at[subject] = time.time()
        send(raw)  # type: ignore[operator]
    deadline = time.time() + 120
    while time.time() < deadline:
        acks = to_clients(capture.messages())
        if len(acks) >= count:
            break
        time.sleep(2.0)  # reading the sink is not free: poll gently
    if len(acks) < count:
        print(f"  only {len(acks)} of {count} acknowledgements arrived within 120 s")
    latencies = []
    for mail in acks:
        subject = str(mail.msg["Subject"]).split("] ", 1)[1]
        if subject in sent_at:
            latencies.append(mail.path.stat().st_mtime - sent_at[subject])
    return latencies


def lmtp(count: int, rate: float) -> None:
    root = scratch("desk-bench-lmtp-")
    dovecot, capture = servers(root)
    port = free_port()
    try:
        env = make_env(root, dovecot, capture, lmtp_port=port)
        daemon = DaemonProcess(env)
        accepted: list[float] = []
        try:
            with smtplib.LMTP("127.0.0.1", port, timeout=30) as conn:
                def send(raw: bytes) -> None:
                    t0 = time.monotonic()
                    conn.sendmail("client@elsewhere.test", [SUPPORT_USER],
                                  raw.replace(b"\n", b"\r\n"))  # wire format, as MTAs send
                    accepted.append(time.monotonic() - t0)

                latencies = _live(send, capture, count, rate)
        finally:
            daemon.stop()
        print(f"LMTP at {rate:g}/s for {count / rate:.0f} s: 250 after commit "
              f"{percentiles(accepted)}")
        print(f"LMTP delivery -> acknowledgement received: {percentiles(latencies)}")
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
        try:
            time.sleep(1.0)
            with dovecot.connect(SUPPORT_USER) as c:
                latencies = _live(lambda raw: c.append("INBOX", raw), capture, count, rate)
        finally:
            daemon.stop()
        print(f"IDLE at {rate:g}/s for {count / rate:.0f} s, APPEND -> acknowledgement "
              f"received: {percentiles(latencies)}")
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
    b.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL, not SQLite")
    b.add_argument("--profile", type=Path, help="write a pyinstrument profile of desk here")
    i = sub.add_parser("idle")
    i.add_argument("--messages", type=int, default=1200)
    i.add_argument("--rate", type=float, default=20.0, help="messages per second")
    m = sub.add_parser("lmtp")
    m.add_argument("--messages", type=int, default=1200)
    m.add_argument("--rate", type=float, default=20.0, help="messages per second")
    args = parser.parse_args()
    if args.what == "backlog":
        backlog(args.messages, args.postgres, args.profile)
    elif args.what == "lmtp":
        lmtp(args.messages, args.rate)
    else:
        idle(args.messages, args.rate)


if __name__ == "__main__":
    main()
