"""PostgreSQL through the same `database_url`: schema, directory, journey, idempotency."""

from __future__ import annotations

from pathlib import Path

from tests.support import DeskEnv, make_mail, reply_to


def test_the_whole_journey_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    env = DeskEnv(tmp_path / "pg", database_url=pg_url)
    assert "revision" in env.desk("init").stdout  # second init on PostgreSQL is harmless
    env.drop(make_mail(message_id="<pg-1@client.test>"))
    env.drop(make_mail(message_id="<pg-1@client.test>"), "again")
    out = env.desk("run", "--once").stdout
    assert "1 new ticket," in out and "1 duplicate," in out
    [ack] = env.client_mail()
    env.drop(reply_to(ack, sender="client@client.test", body="Thanks!"))
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["message_count"] == 3 and t["tier"] == "support_sla"
    assert [e["kind"] for e in env.ticket(t["ref"])["events"]][:4] == [
        "classified", "threaded", "assigned", "acknowledged"]
    assert "ingested 0" in env.desk("run", "--once").stdout
    env.close()
