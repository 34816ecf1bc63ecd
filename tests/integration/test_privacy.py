"""Personal data over the real CLI: `desk privacy export` and `erase` (a person's mail
ticketed, exported, erased from every table while the reports still count their tickets),
and `[retention] raw_mail_days` (raw bytes of an old closed ticket pruned, an open one's
kept, `desk status` telling the oldest raw mail kept)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import select

from desk.store.models import Message, Outbox, Quarantine, RawMessage, Ticket
from tests.support import DeskEnv, EnvFactory, make_mail, reply_to

DANA = "dana@client.test"
SECRET_WORDS = "my door code is 4711-lighthouse"
MON_10 = "2026-11-23T10:00:00Z"


def mentions(env: DeskEnv, needle: str) -> list[str]:
    """Every table.column of the SQLite file holding ``needle`` (any case, text or bytes)."""
    found = []
    with sqlite3.connect(env.root / "desk.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in tables:
            cursor = db.execute(f'SELECT * FROM "{name}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) \
                        else str(value)
                    if needle.lower() in text.lower():
                        found.append(f"{name}.{column}")
    return sorted(set(found))


def notice_for(env: DeskEnv, subject: str) -> Any:
    """The owner's notice: replying to it proves who wrote (its own reply address)."""
    return [m for m in env.sent_to("paul@agency.test") if m["Subject"].startswith("New ticket")
            and subject in m["Subject"]][-1]


def status_at(env: DeskEnv, when: str) -> Any:
    # No daemon runs in these tests: status exits 1 (for monitoring) but still reports.
    return json.loads(env.desk("--now", when, "status", "--json", check=False).stdout)


def counts(env: DeskEnv) -> dict[str, Any]:
    tickets = env.tickets()
    report = json.loads(env.desk("--now", MON_10.replace("10:00", "18:00"), "report",
                                 "Client Co", "--format", "json").stdout)
    return {"tickets": [(t["ref"], t["status"], t["tier"], t["client"], t["message_count"])
                        for t in tickets],
            "report": {k: report[k] for k in ("open", "work_done", "sla", "hours", "feedback")}}


def test_a_person_is_exported_then_erased_from_every_table(env: DeskEnv, tmp_path: Path
                                                          ) -> None:
    env.drop(make_mail(sender="Dana Doe <dana@client.test>", subject="Cannot log in",
                       body=f"Hello, I cannot log in. For the visit: {SECRET_WORDS}.\n"))
    env.drop(make_mail(subject="Invoice page slow"))  # Carol: someone else, untouched
    env.desk("run", "--once", "--now", MON_10)
    env.drop(reply_to(notice_for(env, "Cannot log in"), sender="Paul Porter <paul@agency.test>",
                      body="Hi Dana, I reset your account; please try again."))
    env.desk("run", "--once", "--now", "2026-11-23T11:00:00Z")
    assert any(DANA in [a.addr_spec for a in m["To"].addresses] for m in env.sent())
    before = counts(env)

    out = tmp_path / "dana.json"
    env.desk("privacy", "export", "Dana@Client.test", "--out", str(out))
    data = json.loads(out.read_text())
    assert out.stat().st_mode & 0o077 == 0  # personal data: the owner's eyes only
    assert data["email"] == DANA and "Dana Doe" in data["names"]
    [ticket] = data["tickets"]
    assert ticket["role"] == "requester" and ticket["subject"] == "Cannot log in"
    bodies = {(m["relation"], m["direction"], m["body_text"]) for m in data["messages"]}
    assert any(SECRET_WORDS in text for rel, way, text in bodies if (rel, way) == ("from", "in"))
    # The mail we sent them: the acknowledgement, the owner's reply relayed.
    assert any("I reset your account" in text for rel, way, text in bodies
               if (rel, way) == ("to", "out"))
    assert data["contacts"] == [] and data["staff"] == []
    assert any(e["kind"] for e in data["events"])

    dry = env.desk("privacy", "erase", DANA, "--dry-run").stdout
    assert "message bodies removed" in dry and "raw messages deleted" in dry
    assert "dry run: nothing was changed" in dry
    assert "messages.from_addr" in mentions(env, DANA)  # nothing changed
    assert "messages.body_text" in mentions(env, SECRET_WORDS)

    erased = env.desk("privacy", "erase", DANA).stdout
    assert "erased as erased-" in erased and "@erased.invalid" in erased
    assert mentions(env, DANA) == []
    assert mentions(env, "Dana Doe") == []
    assert mentions(env, SECRET_WORDS) == []
    assert mentions(env, "client@client.test")  # Carol is still there
    assert counts(env) == before  # tickets and the reports count the same
    with env.session() as s:
        t = s.scalar(select(Ticket).where(Ticket.subject == "Cannot log in"))
        assert t is not None and t.requester_email.startswith("erased-")
        assert t.requester_name == "Erased person" and t.tier == "support_sla"
    assert "nothing stored about" in env.desk("privacy", "erase", DANA).stdout  # twice: harmless
    assert "nothing stored about" in env.desk("privacy", "erase", "nobody@else.test").stdout
    again = json.loads(env.desk("privacy", "export", DANA).stdout)
    assert again["tickets"] == [] and again["messages"] == []


def test_retention_prunes_an_old_closed_tickets_raw_mail_and_keeps_an_open_ones(
        env: DeskEnv) -> None:
    env.drop(make_mail(subject="Old question"))
    env.desk("run", "--once", "--now", "2026-11-02T10:00:00Z")
    env.desk("--now", "2026-11-03T10:00:00Z", "tickets", "set", "1", "--status", "closed")
    env.desk("run", "--once", "--now", "2026-11-03T10:05:00Z")  # what closing sends, sent
    env.drop(make_mail(sender="boss@retainer.test", subject="Still open"))
    env.desk("run", "--once", "--now", "2026-11-04T10:00:00Z")
    status = status_at(env, "2026-11-04T11:00:00Z")
    assert status["oldest_raw_mail"].startswith("2026-11-02")
    assert status["raw_mail_days"] == 180

    # Three months on: too early for the closed ticket's raw mail.
    assert "pruned" not in env.desk("run", "--once", "--now", "2027-02-01T10:00:00Z").stdout
    with env.session() as s:
        assert s.scalar(select(Message.raw_id).where(Message.ticket_id == 1)) is not None

    # Seven months on: gone for the closed ticket, kept for the open one.
    ran = env.desk("run", "--once", "--now", "2027-06-01T10:00:00Z").stdout
    assert "old mails pruned" in ran
    with env.session() as s:
        inbound = {t: raw for t, raw in s.execute(select(Message.ticket_id, Message.raw_id)
                                                  .where(Message.direction == "in"))}
        assert inbound[1] is None and inbound[2] is not None
        assert s.get(RawMessage, inbound[2]) is not None
        assert s.scalar(select(Message.body_text).where(Message.ticket_id == 1,
                                                        Message.direction == "in"))
        sent = [(o.ticket_id, o.status, len(o.raw)) for o in s.scalars(select(Outbox))]
        assert [n for t, status, n in sent if t == 1 and status == "sent"]
        assert all(n == 0 for t, status, n in sent if t == 1 and status == "sent")
        assert any(n > 0 for t, _, n in sent if t == 2)
    assert env.ticket("1")["events"]  # the decision log stays
    status = status_at(env, "2027-06-01T11:00:00Z")
    assert status["oldest_raw_mail"].startswith("2026-11-04")
    text = env.desk("--now", "2027-06-01T11:00:00Z", "status", check=False).stdout
    assert "raw mail: oldest kept 2026-11-04" in text


def test_export_erase_and_retention_on_postgresql(make_env: EnvFactory, pg_url: str) -> None:
    # The same SQL on the other database: ILIKE over JSON cast to text, bytea lengths,
    # correlated NOT EXISTS.
    env = make_env("pg", database_url=pg_url)
    env.drop(make_mail(sender="Dana Doe <dana@client.test>", subject="Cannot log in",
                       body=f"Hello. {SECRET_WORDS}\n"))
    env.desk("run", "--once", "--now", "2026-11-02T10:00:00Z")
    env.desk("--now", "2026-11-03T10:00:00Z", "tickets", "set", "1", "--status", "closed")
    env.desk("run", "--once", "--now", "2026-11-03T10:05:00Z")
    data = json.loads(env.desk("privacy", "export", DANA).stdout)
    assert any(SECRET_WORDS in m["body_text"] for m in data["messages"])
    assert "old mails pruned" in env.desk("run", "--once", "--now", "2027-06-01T10:00:00Z").stdout
    assert status_at(env, "2027-06-01T11:00:00Z")["oldest_raw_mail"] is None
    assert "message bodies removed" in env.desk("privacy", "erase", DANA).stdout
    with env.session() as s:
        assert s.scalar(select(Ticket.requester_email)).startswith("erased-")
        assert not [m for m in s.scalars(select(Message)) if SECRET_WORDS in m.body_text
                    or DANA in m.from_addr or DANA in m.to_addrs]
        assert not [o for o in s.scalars(select(Outbox)) if DANA in o.rcpt_to]
    assert "nothing stored about" in env.desk("privacy", "erase", DANA).stdout


def test_retention_empties_a_settled_quarantine_entry_and_keeps_a_held_one(
        env: DeskEnv) -> None:
    env.drop(b"no headers at all, just Dana's words\n", "broken-1")
    env.drop(b"no headers either, Erin's words\n", "broken-2")
    env.desk("run", "--once", "--now", "2026-11-02T10:00:00Z")
    first, second = sorted(q["id"] for q in env.desk_json("quarantine", "list"))
    env.desk("--now", "2026-11-03T10:00:00Z", "quarantine", "drop", str(first))

    # Seven months on: the dropped mail's bytes are gone, its record stays; the one still
    # held waits for an admin's decision with its bytes (it may be the only copy).
    ran = env.desk("run", "--once", "--now", "2027-06-01T10:00:00Z").stdout
    assert "old mail pruned" in ran, ran
    with env.session() as s:
        kept = {q.id: (q.status, q.raw, q.reason) for q in s.scalars(select(Quarantine))}
    assert kept[first][0] == "dropped" and kept[first][1] == b"" and kept[first][2]
    assert kept[second][0] == "held" and b"Erin's words" in kept[second][1]
    status = status_at(env, "2027-06-01T11:00:00Z")
    assert status["oldest_raw_mail"].startswith("2026-11-02")  # the held one
