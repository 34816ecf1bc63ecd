"""`desk tickets search` over many tickets; prints figures.

    .venv/bin/python bench/search.py [--tickets 5000] [--postgres]

Builds a database at revision 0009 with TICKETS tickets of three messages each (the
client's mail, the acknowledgement, a staff reply: ~110 words apiece), then times:
the upgrade to 0010 (indexing the mail already stored), writing more mail with the index
kept in step (against writing it without), searches of several shapes through the same
code as the CLI (20 results with snippets), and the index merge a privacy erasure runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembic import command
from sqlalchemy import Engine, insert

from desk.store.db import alembic_config, make_engine, session_factory, upgrade
from desk.store.models import Message, Ticket
from desk.store.search import forget_removed_text
from desk.views.tickets import TicketFilter, search_tickets
from tests.servers import Postgres, make_root

COMMON = " ".join([
    "the a to and of is in it on for that we our site page not can you with this be",
    "please error when after have since all but are from was an login email form order",
    "customer update broken slow down working problem issue"]).split(" ")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return COMMON + ["".join(rng.choice(letters) for _ in range(rng.randint(4, 10)))
                     for _ in range(size)]


def words(rng: random.Random, vocab: list[str], n: int) -> str:
    # Zipf-like: a few words everywhere, most rarely.
    return " ".join(vocab[min(int(rng.paretovariate(1.1)) - 1, len(vocab) - 1)]
                    for _ in range(n))


def fill(engine: Engine, rng: random.Random, vocab: list[str], tickets: int,
         first_id: int = 1) -> float:
    """Tickets and their three messages; returns the seconds the messages took."""
    ticket_rows, message_rows = [], []
    for i in range(first_id, first_id + tickets):
        subject = words(rng, vocab, 5).capitalize()
        if i % 1000 == 7:
            subject += " zebrafinch"  # a rare word, in a few tickets
        at = NOW - timedelta(minutes=i)
        ticket_rows.append({"id": i, "subject": subject, "status": "open", "priority": "P3",
                            "requester_email": f"c{i}@client.test", "requester_name": "",
                            "created_at": at, "updated_at": at, "message_count": 2,
                            "paused_minutes": 0})
        for n, (direction, auto, length) in enumerate(
                [("in", False, 110), ("out", True, 90), ("out", False, 70)]):
            message_rows.append({
                "ticket_id": i, "direction": direction, "message_id": f"m{i}.{n}@x.test",
                "subject": ("Re: " if n else "") + subject,
                "body_text": words(rng, vocab, length), "auto_generated": auto,
                "created_at": at, "from_addr": "", "from_name": "", "to_addrs": "",
                "cc_addrs": "", "internal": False, "source": "bench",
                "dedupe_key": f"m{i}.{n}@x.test" if direction == "in" else None})
    with engine.begin() as conn:
        conn.execute(insert(Ticket), ticket_rows)
    started = time.perf_counter()
    with engine.begin() as conn:
        for chunk in range(0, len(message_rows), 1000):
            conn.execute(insert(Message), message_rows[chunk:chunk + 1000])
    return time.perf_counter() - started


def size(engine: Engine) -> int:
    """The database's bytes on disk (SQLite: the file after a checkpoint)."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # outside a transaction, or no checkpoint
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
        return Path(engine.url.database or "").stat().st_size
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())")
                   .scalar() or 0)


def timed(run: Callable[[], Any], repeat: int = 7) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    root = make_root("desk-bench-search-")
    pg = Postgres().start(root / "pg") if args.postgres else None
    try:
        url = pg.create_database("bench") if pg else f"sqlite:///{root / 'desk.db'}"
        engine = make_engine(url)
        cfg = alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0009")
        rng = random.Random(1)
        vocab = vocabulary(rng)
        plain = fill(engine, rng, vocab, args.tickets)
        messages = 3 * args.tickets
        print(f"{args.tickets} tickets, {messages} messages ({engine.dialect.name})")
        print(f"  writing the messages without an index: {plain * 1e6 / messages:.0f} µs each")
        before = size(engine)
        started = time.perf_counter()
        upgrade(engine)
        print(f"  upgrade to 0010 (indexing them): {time.perf_counter() - started:.2f} s; "
              f"database {before / 1e6:.1f} MB -> {size(engine) / 1e6:.1f} MB")
        extra = max(args.tickets // 5, 100)
        indexed = fill(engine, rng, vocab, extra, first_id=args.tickets + 1)
        print(f"  writing {3 * extra} more with the index kept: "
              f"{indexed * 1e6 / (3 * extra):.0f} µs each")
        factory = session_factory(engine)
        queries = {"rare word (in 1 of 1000)": "zebrafinch", "common word": "error",
                   "two words": "login slow", "phrase": '"page not"', "prefix": "upd*",
                   "common word, --status open": "error"}
        for label, query in queries.items():
            filters = TicketFilter(statuses=("open",)) if "--status" in label \
                else TicketFilter()
            with factory() as session:
                ms, result = timed(lambda q=query, f=filters, s=session:
                                   search_tickets(s, q, f, NOW, 20))
            print(f"  search {label:<28} {ms:7.1f} ms  ({result.total} tickets match)")
        with factory() as session, session.begin():
            started = time.perf_counter()
            forget_removed_text(session)
            print(f"  index merge after an erasure: {time.perf_counter() - started:.2f} s")
        engine.dispose()
    finally:
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
