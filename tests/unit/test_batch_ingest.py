"""A backlog is ingested many messages per transaction (inbox/ingest.py ingest_batch):
each message still has its own outcome, a bad one is rolled back and quarantined alone,
and a database outage records nothing, so the source keeps every message."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from desk.config.settings import load_settings
from desk.store.db import make_engine, session_factory
from desk.store.models import utcnow
from desk.work import pipeline
from desk.work.ingest import Ingestor, TransientError
from tests.support import DeskEnv, make_mail


@pytest.fixture
def env(tmp_path: Path) -> Iterator[DeskEnv]:
    e = DeskEnv(tmp_path / "desk", extra={"desk": {"busy_timeout_seconds": 0.2}})
    yield e
    e.close()


def _ingestor(env: DeskEnv) -> Ingestor:
    settings = load_settings(env.config)
    engine = make_engine(settings.database_url, busy_timeout=0.2)
    return Ingestor(session_factory(engine), settings, utcnow)


def _mail(i: int, **kw: str) -> bytes:
    return make_mail(sender=f"Person {i} <p{i}@client.test>", subject=f"Question {i}",
                     message_id=f"<batch-{i}@client.test>", **kw)


def test_each_message_of_a_batch_gets_its_ticket_and_acknowledgement(env: DeskEnv) -> None:
    results = _ingestor(env).ingest_batch([(f"k{i}", _mail(i)) for i in range(6)],
                                          source="test")
    assert [r.outcome for r in results] == ["ticketed"] * 6
    assert all(r.new_ticket and r.acknowledged for r in results)
    subjects = sorted(t["subject"] for t in env.tickets())
    assert subjects == [f"Question {i}" for i in range(6)]


def test_a_failing_message_is_rolled_back_alone_and_quarantined(
    env: DeskEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline.notify_staff

    def broken_for_one(session, settings, ticket, inbound, now, **kw):  # type: ignore[no-untyped-def]
        # Fails late, after the ticket, its events and its acknowledgement were written.
        if ticket.subject == "Question 2":
            raise RuntimeError("notice template exploded")
        return real(session, settings, ticket, inbound, now, **kw)

    monkeypatch.setattr(pipeline, "notify_staff", broken_for_one)
    nobody = make_mail(sender="", subject="No sender at all", message_id="<nobody@x.test>")
    items = [(f"k{i}", _mail(i)) for i in range(4)]
    items.insert(1, ("k-nobody", nobody))
    results = _ingestor(env).ingest_batch(items, source="test")

    assert [r.outcome for r in results] == [
        "ticketed", "quarantined", "ticketed", "quarantined", "ticketed"]
    assert "no usable From address" in results[1].reason
    assert "notice template exploded" in results[3].reason
    # Nothing of the failed message survived: no ticket, and no acknowledgement queued.
    assert sorted(t["subject"] for t in env.tickets()) == ["Question 0", "Question 1",
                                                            "Question 3"]
    held = env.desk_json("quarantine", "list")
    assert {q["subject"] for q in held} == {"No sender at all", "Question 2"}
    outbox = env.desk_json("outbox", "list")
    assert not any("Question 2" in row["subject"] for row in outbox)


def test_the_same_message_twice_in_one_batch_is_one_ticket(env: DeskEnv) -> None:
    raw = _mail(1)
    results = _ingestor(env).ingest_batch([("a", raw), ("b", _mail(2)), ("c", raw)],
                                          source="test")
    assert [r.outcome for r in results] == ["ticketed", "ticketed", "duplicate"]
    assert len(env.tickets()) == 2


def test_a_batch_seen_again_changes_nothing(env: DeskEnv) -> None:
    ingestor = _ingestor(env)
    items = [(f"k{i}", _mail(i)) for i in range(3)]
    ingestor.ingest_batch(items, source="test")
    again = ingestor.ingest_batch(items, source="test")
    assert [r.outcome for r in again] == ["already"] * 3
    assert len(env.tickets()) == 3
    assert len([r for r in env.desk_json("outbox", "list") if r["kind"] == "ack"]) == 3


def test_a_locked_database_records_nothing_and_says_so(env: DeskEnv) -> None:
    ingestor = _ingestor(env)
    blocker = sqlite3.connect(env.database_url.removeprefix("sqlite:///"))
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(TransientError):
            ingestor.ingest_batch([(f"k{i}", _mail(i)) for i in range(3)], source="test")
    finally:
        blocker.rollback()
        blocker.close()
    assert env.tickets() == []
    results = ingestor.ingest_batch([(f"k{i}", _mail(i)) for i in range(3)], source="test")
    assert [r.outcome for r in results] == ["ticketed"] * 3


def test_the_acknowledgement_rate_cap_counts_acks_queued_earlier_in_the_same_batch(
    env: DeskEnv,
) -> None:
    # Acknowledgements queued in a batch are written at its commit (desk/deferred.py): the
    # cap must still see the first one when the same person writes again in the batch.
    first = make_mail(sender="Jo <jo@client.test>", subject="Site down",
                      message_id="<cap-1@client.test>")
    again = make_mail(sender="Jo <jo@client.test>", subject="Site down",
                      message_id="<cap-2@client.test>")
    results = _ingestor(env).ingest_batch([("a", first), ("b", again), ("c", _mail(3))],
                                          source="test")
    assert [r.outcome for r in results] == ["ticketed"] * 3
    assert [r.acknowledged for r in results] == [True, False, True]
    acks = [r for r in env.desk_json("outbox", "list") if r["kind"] == "ack"]
    assert sorted(r["to"][0] for r in acks) == ["jo@client.test", "p3@client.test"]
