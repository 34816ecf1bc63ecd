"""One tick of the SLA clock with many open tickets; prints figures.

    .venv/bin/python bench/clock.py [--tickets 100000] [--due 100] [--database-url URL]

The tick reads only tickets whose indexed next_clock_at is due, so its cost follows the
work due, not the number of open tickets.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from desk.config.settings import parse_settings
from desk.store.db import make_engine, session_factory, upgrade
from desk.store.directory import ClientSpec, add_staff, upsert_client
from desk.store.models import Ticket
from desk.work.escalation import Clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="desk-bench-clock-"))
    url = args.database_url or f"sqlite:///{root / 'desk.db'}"
    settings = parse_settings({
        "desk": {"address": "support@agency.test",
                 "secret": "bench-secret-0123456789-abcdefghijklmnop", "database_url": url},
        "mailbox": {"source": "maildir", "path": str(root / "in")},
        "smtp": {"transport": "maildir", "path": str(root / "out")},
        "reports": {"period": "none", "digest": False},
    }, root)
    engine = make_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    with factory() as s:
        owner, _ = add_staff(s, "paul@agency.test", "Paul", "project_manager")
        client, _ = upsert_client(s, ClientSpec("Big Co", "support_sla", ["big.test"]))
        s.commit()
        owner_id, client_id = owner.id, client.id
    t0 = time.monotonic()
    rows = []
    for i in range(args.tickets):
        due = i < args.due
        created = now - timedelta(hours=3) if due else now - timedelta(minutes=5)
        rows.append({
            "subject": f"Ticket {i}", "status": "open", "priority": "P2",
            "tier": "support_sla", "client_id": client_id, "requester_email": f"r{i}@big.test",
            "requester_name": "", "owner_id": owner_id, "created_at": created,
            "updated_at": created, "message_count": 1, "sla_policy": "support_sla",
            "paused_minutes": 0, "first_response_due": created + timedelta(hours=1),
            "next_clock_at": (now - timedelta(minutes=1)) if due
            else now + timedelta(hours=1 + i % 48),
        })
    with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(insert(Ticket), rows[start:start + 10_000])
    print(f"{args.tickets:,} open tickets inserted in {time.monotonic() - t0:.1f} s "
          f"({engine.dialect.name})")

    clock = Clock(factory, settings, lambda: now)
    t0 = time.monotonic()
    report = clock.tick()
    busy = time.monotonic() - t0
    idle = []
    for _ in range(20):
        t0 = time.monotonic()
        clock.tick()
        idle.append(time.monotonic() - t0)
    print(f"tick with {args.due} tickets due: {busy * 1000:.0f} ms "
          f"({report.tickets} handled, {report.warnings} warnings, "
          f"{report.escalations} escalations)")
    print(f"tick with nothing due: median {statistics.median(idle) * 1000:.2f} ms, "
          f"max {max(idle) * 1000:.2f} ms (20 ticks)")
    engine.dispose()


if __name__ == "__main__":
    main()
