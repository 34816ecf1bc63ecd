"""desk cannot be used to reflect mail at a third party: anyone can put a victim's address
in From, so acknowledgements to an address desk has not verified are capped per hour."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from desk.config.settings import load_settings
from desk.store.db import make_engine, session_factory
from desk.store.models import utcnow
from desk.work.ingest import Ingestor
from tests.support import DeskEnv, make_mail


@pytest.fixture
def env(tmp_path: Path) -> Iterator[DeskEnv]:
    e = DeskEnv(tmp_path / "desk")
    yield e
    e.close()


def _acks(env: DeskEnv, sender: str, count: int) -> int:
    settings = load_settings(env.config)
    ingestor = Ingestor(session_factory(make_engine(settings.database_url)), settings, utcnow)
    results = ingestor.ingest_batch(
        [(f"k-{sender}-{i}", make_mail(sender=sender, subject=f"Different question {i}",
                                       message_id=f"<{i}.{sender}>")) for i in range(count)],
        source="test")
    return sum(r.acknowledged for r in results)


def test_an_unverified_address_gets_at_most_five_acknowledgements_an_hour(
        env: DeskEnv) -> None:
    assert _acks(env, "victim@elsewhere.test", 8) == 5


def test_a_known_contact_is_not_held_to_the_unverified_cap(env: DeskEnv) -> None:
    # client@client.test is a contact in the test directory (tests/support.py).
    assert _acks(env, "client@client.test", 8) == 8
