"""Reliability under fault: SIGKILL at random moments, mail server outages, a database
restart, hostile headers, and one client never seeing another's mail."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from desk.store.models import Message, Outbox, Receipt, Ticket
from tests.servers import Dovecot, Postgres, SmtpCapture
from tests.support import (
    SUPPORT_USER,
    DaemonProcess,
    DeskEnv,
    EnvFactory,
    imap_mailbox,
    make_mail,
    reply_to,
    smtp_to,
    to_clients,
    wait_for_client_mail,
    wait_until,
)

SENDER_DOMAINS = ["retainer.test", "project.test", "past.test", "hostsla.test", "client.test"]


def crash_mail(i: int) -> bytes:
    domain = SENDER_DOMAINS[i % len(SENDER_DOMAINS)]
    return make_mail(sender=f"Person {i} <p{i}@{domain}>", subject=f"Request number {i}",
                     message_id=f"<crash-{i}@{domain}>")


def test_sigkill_at_random_moments_loses_and_repeats_nothing(
        tmp_path: Path, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    count, kills = 1000, 20
    env = DeskEnv(tmp_path / "crash", mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture))
    for start in range(0, count, 250):
        imap.multiappend(SUPPORT_USER, [crash_mail(i) for i in range(start, start + 250)])
    rng = random.Random(20261123)
    for _ in range(kills):
        daemon = DaemonProcess(env)
        time.sleep(rng.uniform(0.2, 1.5))
        daemon.kill()  # SIGKILL: no chance to finish anything
    for _ in range(5):  # then let it finish
        env.desk("run", "--once")
        with env.session() as s:
            done = s.scalar(select(func.count()).select_from(Receipt))
            queued = s.scalar(select(func.count()).select_from(Outbox).where(
                Outbox.status == "pending"))
        if done == count and not queued:
            break

    with env.session() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == count
        inbound = s.execute(select(Message.message_id, Message.ticket_id).where(
            Message.direction == "in")).all()
        assert len(inbound) == count and len({m for m, _ in inbound}) == count
        assert len({t for _, t in inbound}) == count  # every message on exactly one ticket
    assert env.desk_json("quarantine", "list") == []  # nothing that parses fine is held

    acks = to_clients(smtp_capture.messages())
    per_message_id = Counter(str(m.msg["Message-ID"]) for m in acks)
    ids_per_ticket: dict[str, set[str]] = defaultdict(set)
    for m in acks:
        ids_per_ticket[m.msg["Subject"].split("]")[0]].add(str(m.msg["Message-ID"]))
    if len(ids_per_ticket) != count:  # say which ones, and where their mail is stuck
        with env.session() as s:
            stuck = s.execute(select(Outbox.id, Outbox.subject, Outbox.status,
                                     Outbox.claimed_by, Outbox.attempts).where(
                Outbox.kind == "ack", Outbox.status != "sent")).all()
        raise AssertionError(f"{count - len(ids_per_ticket)} tickets unacknowledged; "
                             f"unsent acknowledgements: {stuck[:10]}")
    assert len(ids_per_ticket) == count  # every new ticket was acknowledged...
    assert all(len(ids) == 1 for ids in ids_per_ticket.values())  # ...with one mail, never two
    resends = sum(n - 1 for n in per_message_id.values())
    print(f"\n{kills} SIGKILLs over {count} messages: {resends} identical resends "
          f"(crash between the server's 250 and our commit)")
    assert resends <= kills  # at most one in-flight mail per kill
    env.close()


@pytest.fixture
def env(smtp_capture: SmtpCapture, make_env: EnvFactory) -> DeskEnv:
    return make_env(smtp=smtp_to(smtp_capture))


def test_smtp_4xx_retries_with_backoff_and_sends_once(env: DeskEnv,
                                                      smtp_capture: SmtpCapture) -> None:
    smtp_capture.set_mode("tempfail")
    env.drop(make_mail())
    env.desk("run", "--once", "--now", "2026-11-23T10:00:00Z")
    rows = env.desk_json("outbox", "list")
    assert rows and all(r["status"] == "pending" for r in rows)
    assert rows[0]["attempts"] == 1 and "451" in rows[0]["last_error"]
    env.desk("run", "--once", "--now", "2026-11-23T10:00:05Z")  # backoff: not due yet
    assert env.desk_json("outbox", "list")[0]["attempts"] == 1
    smtp_capture.set_mode(None)
    env.desk("run", "--once", "--now", "2026-11-23T11:00:00Z")
    assert env.desk_json("outbox", "list") == []
    env.desk("run", "--once", "--now", "2026-11-23T12:00:00Z")
    acks = to_clients(smtp_capture.messages())
    assert len(acks) == 1  # nothing sent twice after recovery


def test_smtp_5xx_fails_for_good_is_recorded_and_can_be_retried(
        env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    smtp_capture.set_mode("permfail")
    env.drop(make_mail())
    env.desk("run", "--once")
    failed = env.desk_json("outbox", "list", "--failed")
    assert {r["kind"] for r in failed} == {"ack", "notice_new"}
    assert all("554" in r["last_error"] for r in failed)
    [t] = env.tickets()
    events = [e for e in env.ticket(t["ref"])["events"] if e["kind"] == "delivery_failed"]
    assert len(events) == 2 and "refused permanently" in events[0]["detail"]
    smtp_capture.set_mode(None)
    ack = next(r for r in failed if r["kind"] == "ack")
    env.desk("outbox", "retry", str(ack["id"]))
    env.desk("run", "--once")
    [mail] = to_clients(smtp_capture.messages())
    assert mail.msg["Message-ID"] == f"<{ack['message_id']}>"  # the same mail, not a new one
    assert [r["kind"] for r in env.desk_json("outbox", "list", "--failed")] == ["notice_new"]


def test_postgres_restart_under_a_running_daemon(
        tmp_path: Path, imap: Dovecot, smtp_capture: SmtpCapture, postgres: Postgres,
        pg_url: str) -> None:
    env = DeskEnv(tmp_path / "pg", mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture),
                  database_url=pg_url)
    env.close()
    daemon = DaemonProcess(env)
    try:
        imap.append(SUPPORT_USER, make_mail(subject="Before the restart"))
        wait_for_client_mail(smtp_capture, 1, timeout=15)
        postgres.stop()
        imap.append(SUPPORT_USER, make_mail(subject="While the database is down"))
        time.sleep(2.0)
        postgres.start()
        imap.append(SUPPORT_USER, make_mail(subject="After the restart"))
        wait_for_client_mail(smtp_capture, 3, timeout=60)
        time.sleep(1.0)
    finally:
        assert daemon.stop() == 0
    subjects = sorted(t["subject"] for t in env.tickets())
    assert subjects == ["After the restart", "Before the restart", "While the database is down"]
    assert len(to_clients(smtp_capture.messages())) == 3
    log = daemon.output()
    # One clear line per incident, not one per retry.
    assert log.count("database unavailable") <= 2, log
    env.close()


def test_header_injection_cannot_add_headers_to_our_mail(env: DeskEnv,
                                                         smtp_capture: SmtpCapture) -> None:
    raw = (b"From: =?utf-8?q?Eve=0D=0ABcc=3A_victim=40elsewhere=2Etest?= <client@client.test>\r\n"
           b"To: support@agency.test\r\n"
           b"Subject: =?utf-8?q?Hello=0D=0ABcc=3A_victim=40elsewhere=2Etest?=\r\n"
           b"Message-ID: <inject@client.test>\r\n\r\nHi\r\n")
    env.drop(raw)
    env.desk("run", "--once")
    [ack] = to_clients(smtp_capture.messages())
    parsed = message_from_bytes(ack.raw, policy=policy.default)
    assert parsed["Bcc"] is None and ack.rcpt_tos == ["client@client.test"]
    assert "victim@elsewhere.test" not in " ".join(ack.rcpt_tos)
    assert "\n" not in str(parsed["Subject"])


def test_a_client_never_receives_another_clients_ticket(env: DeskEnv,
                                                        smtp_capture: SmtpCapture) -> None:
    # Client Co's ticket, with a CC of a different client and a stranger.
    env.drop(make_mail(sender="client@client.test", subject="Our private invoice",
                       cc="boss@retainer.test, eve@elsewhere.test",
                       body="Our account number is 12345."))
    env.desk("run", "--once")
    [t] = env.tickets()
    notice = next(m.msg for m in smtp_capture.messages() if m.rcpt_tos == ["paul@agency.test"])
    env.drop(reply_to(notice, sender="paul@agency.test", body="We'll check the invoice."))
    # Someone else tries every trick to get into it.
    env.drop(make_mail(sender="boss@retainer.test", subject=f"Re: [#{t['ref']}] invoice"))
    env.drop(make_mail(sender="eve@elsewhere.test", to=f"support+{t['ref']}.aaaaaaaaaaaa"
                       "@agency.test", subject="hi"))
    env.desk("run", "--once")
    for mail in smtp_capture.messages():
        text = mail.raw.decode("utf-8", "replace")
        if "12345" in text or "We'll check the invoice" in text:
            assert set(mail.rcpt_tos) <= {"client@client.test", "paul@agency.test",
                                          "sam@agency.test"}, mail.rcpt_tos
    assert env.ticket(t["ref"])["participants"] == []
    wait_until(lambda: len(env.tickets()) == 3)


def test_a_dead_workers_journal_prevents_a_resend(env: DeskEnv,
                                                  smtp_capture: SmtpCapture) -> None:
    """The server accepted a mail, then the worker died before marking it sent: its
    journal says so, and the next worker marks it sent instead of sending it again."""
    import socket

    from desk.outbound.journal import encode_worker

    smtp_capture.set_mode("tempfail")  # keep the acknowledgement queued
    env.drop(make_mail())
    env.desk("run", "--once")
    smtp_capture.set_mode(None)
    with env.session() as s:
        ack = s.scalar(select(Outbox).where(Outbox.kind == "ack"))
        assert ack is not None and ack.status == "pending"
        ack_id = ack.id
    dead = f"{socket.gethostname()}:4194303:dead01"  # a pid that cannot exist
    journal = env.root / "journal"
    journal.mkdir(parents=True, exist_ok=True)
    (journal / f"sent-{encode_worker(dead)}.log").write_text(f"{ack_id}\n")
    env.desk("run", "--once", "--now", "2026-12-31T00:00:00Z")  # everything due again
    with env.session() as s:
        assert s.get(Outbox, ack_id).status == "sent"  # type: ignore[union-attr]
    assert to_clients(smtp_capture.messages()) == []  # not sent a second time
    assert list(journal.iterdir()) == []


def test_claims_of_a_worker_killed_before_its_first_heartbeat_are_taken_over(
        env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    """Killed between claiming and registering: no worker row says it is dead, but its
    claims name a process on this host that is gone. They must not wait for expiry."""
    import socket

    smtp_capture.set_mode("tempfail")
    env.drop(make_mail())
    env.desk("run", "--once", "--now", "2026-11-23T10:00:00Z")
    smtp_capture.set_mode(None)
    with env.session() as s:
        rows = s.scalars(select(Outbox).where(Outbox.status == "pending")).all()
        assert rows
        for row in rows:
            row.claimed_by = f"{socket.gethostname()}:4194303:never1"  # no such pid
            row.claimed_until = datetime(2026, 11, 23, 12, tzinfo=UTC)
            row.next_attempt_at = datetime(2026, 11, 23, 10, tzinfo=UTC)
        s.commit()
    env.desk("run", "--once", "--now", "2026-11-23T11:00:00Z")  # claims not yet expired
    assert len(to_clients(smtp_capture.messages())) == 1
    assert env.desk_json("outbox", "list") == []


def test_a_torn_journal_line_marks_nothing(tmp_path: Path) -> None:
    from desk.outbound.journal import read_ids

    path = tmp_path / "sent-x.log"
    path.write_text("7\n12")  # killed while writing "123\n"
    assert read_ids(path) == [7]


def test_a_journal_is_kept_while_it_lists_mail_not_marked_sent(tmp_path: Path) -> None:
    """A sender that stops (a delivery process ending after a failed mark) with accepted
    mail not yet marked in the database leaves its journal for the next worker, which marks
    those rows instead of sending them again."""
    from desk.outbound.journal import SentJournal, read_ids

    unmarked = SentJournal(tmp_path, "host:1:aaaaaa")
    unmarked.record(41)
    unmarked.close()
    assert read_ids(tmp_path / "sent-host%3A1%3Aaaaaaa.log") == [41]

    marked = SentJournal(tmp_path, "host:2:bbbbbb")
    marked.record(42)
    marked.forget()  # everything it listed is marked sent in the database
    marked.close()
    assert not (tmp_path / "sent-host%3A2%3Abbbbbb.log").exists()
