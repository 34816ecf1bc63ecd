"""Inbox behaviour of the running daemon against real Dovecot and a real SMTP server:
IDLE latency, reconnects, UIDVALIDITY resets, LMTP intake, real-world mail, loops."""

from __future__ import annotations

import smtplib
import sqlite3
import time
from pathlib import Path

import pytest

from tests.servers import Dovecot, SmtpCapture, free_port
from tests.support import (
    SUPPORT_USER,
    DaemonProcess,
    DeskEnv,
    EnvFactory,
    imap_mailbox,
    make_mail,
    smtp_to,
    to_clients,
    wait_for_client_mail,
    wait_until,
)

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
SHARED_RT = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "rt-emails"


@pytest.fixture
def env(imap: Dovecot, smtp_capture: SmtpCapture, make_env: EnvFactory) -> DeskEnv:
    return make_env(mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture))


def test_idle_turns_new_mail_into_an_ack_within_two_seconds(env: DeskEnv, imap: Dovecot,
                                                            smtp_capture: SmtpCapture) -> None:
    daemon = DaemonProcess(env)
    try:
        time.sleep(0.5)  # let it enter IDLE
        for i in range(3):
            start = time.monotonic()
            imap.append(SUPPORT_USER, make_mail(subject=f"Live {i}"))
            wait_for_client_mail(smtp_capture, i + 1, timeout=5)
            assert time.monotonic() - start < 2.0
    finally:
        assert daemon.stop() == 0
    assert len(env.tickets()) == 3
    assert "stopped" in daemon.output()


def test_server_restart_mid_idle_loses_and_repeats_nothing(env: DeskEnv, imap: Dovecot,
                                                          smtp_capture: SmtpCapture) -> None:
    daemon = DaemonProcess(env)

    def wait_for(count: int, timeout: float) -> None:
        try:
            wait_for_client_mail(smtp_capture, count, timeout=timeout)
        except AssertionError:
            log = [line for line in daemon.output().splitlines() if "imaplib" not in line]
            raise AssertionError("\n".join(log[-40:])) from None

    try:
        imap.append(SUPPORT_USER, make_mail(subject="Before restart"))
        wait_for(1, timeout=15)  # usually 0.1 s; generous for a loaded machine
        imap.stop()
        time.sleep(1.0)  # the daemon notices and backs off
        imap.start()
        imap.append(SUPPORT_USER, make_mail(subject="While it was reconnecting"))
        imap.append(SUPPORT_USER, make_mail(subject="After restart"))
        wait_for(3, timeout=45)
        time.sleep(1.0)  # any duplicate would show up now
    finally:
        assert daemon.stop() == 0
    assert sorted(t["subject"] for t in env.tickets()) == [
        "After restart", "Before restart", "While it was reconnecting"]
    assert len(to_clients(smtp_capture.messages())) == 3
    assert len(smtp_capture.messages()) == 6  # and one notice each to the owner
    assert "IMAP connection lost" in daemon.output()


def test_uidvalidity_reset_resyncs_without_duplicates(env: DeskEnv, imap: Dovecot,
                                                      smtp_capture: SmtpCapture) -> None:
    for i in range(3):
        imap.append(SUPPORT_USER, make_mail(subject=f"Before {i}"))
    env.desk("run", "--once")
    imap.reset_uidvalidity(SUPPORT_USER)
    imap.append(SUPPORT_USER, make_mail(subject="After reset"))
    out = env.desk("run", "--once").stdout
    assert "1 new ticket," in out and "3 duplicates" in out
    assert len(env.tickets()) == 4
    assert len(wait_for_client_mail(smtp_capture, 4)) == 4


def test_processed_folder_moves_mail_after_commit(tmp_path: Path, imap: Dovecot,
                                                  smtp_capture: SmtpCapture) -> None:
    with imap.connect(SUPPORT_USER) as c:
        c.create_folder("Processed")
    env = DeskEnv(tmp_path / "d", mailbox=imap_mailbox(imap, processed_folder="Processed"),
                  smtp=smtp_to(smtp_capture))
    imap.append(SUPPORT_USER, make_mail())
    env.desk("run", "--once")
    assert imap.fetch_all(SUPPORT_USER) == []
    [(_, flags, _)] = imap.fetch_all(SUPPORT_USER, "Processed")
    assert "\\Seen" in flags
    env.close()


def _lmtp_env(tmp_path: Path, smtp_capture: SmtpCapture, **desk: object) -> tuple[DeskEnv, int]:
    port = free_port()
    env = DeskEnv(tmp_path / "lmtp", mailbox=False, smtp=smtp_to(smtp_capture),
                  extra={"intake": {"lmtp": {"listen": f"127.0.0.1:{port}"}}, "desk": desk})
    assert "[mailbox]" not in env.config.read_text()
    return env, port


def test_lmtp_intake_end_to_end(tmp_path: Path, smtp_capture: SmtpCapture) -> None:
    env, port = _lmtp_env(tmp_path, smtp_capture)
    daemon = DaemonProcess(env)
    try:
        with smtplib.LMTP("127.0.0.1", port, timeout=10) as lmtp:
            refused = lmtp.sendmail("client@client.test", ["support@agency.test"],
                                    make_mail(subject="Via LMTP"))
            assert refused == {}
            # Same bytes again (an MTA retrying after a lost reply): accepted, not repeated.
            again = make_mail(subject="Second via LMTP", message_id="<fixed@client.test>")
            lmtp.sendmail("client@client.test", ["support@agency.test"], again)
            lmtp.sendmail("client@client.test", ["support@agency.test"], again)
        wait_for_client_mail(smtp_capture, 2, timeout=5)
    finally:
        assert daemon.stop() == 0
    assert len(env.tickets()) == 2
    assert len(to_clients(smtp_capture.messages())) == 2
    env.close()


def test_lmtp_answers_4xx_while_the_database_is_locked(tmp_path: Path,
                                                      smtp_capture: SmtpCapture) -> None:
    env, port = _lmtp_env(tmp_path, smtp_capture, busy_timeout_seconds=0.5)
    daemon = DaemonProcess(env)
    lock = sqlite3.connect(env.database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        with smtplib.LMTP("127.0.0.1", port, timeout=10) as lmtp, \
                pytest.raises(smtplib.SMTPDataError) as err:
            lmtp.sendmail("client@client.test", ["support@agency.test"], make_mail())
        assert err.value.smtp_code == 451
        lock.execute("ROLLBACK")
        # The sending server retries later: now it is accepted and processed once.
        with smtplib.LMTP("127.0.0.1", port, timeout=10) as lmtp:
            assert lmtp.sendmail("client@client.test", ["support@agency.test"],
                                 make_mail(message_id="<retry@client.test>")) == {}
        wait_for_client_mail(smtp_capture, 1, timeout=5)
    finally:
        lock.close()
        assert daemon.stop() == 0
    assert len(env.tickets()) == 1
    assert "database" in daemon.output()
    env.close()


def _corpus_files() -> list[Path]:
    """Every whole message in the corpus (talon's .html bodies and *_reply_text
    expectations are not messages)."""
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".md", ".html")
             and p.name != ".gitattributes" and not p.name.endswith("_reply_text")]
    if SHARED_RT.is_dir():
        files += [p for p in SHARED_RT.rglob("*") if p.is_file()]
    return sorted(files)


def test_every_real_world_message_is_ticketed_or_quarantined(env: DeskEnv, imap: Dovecot,
                                                            smtp_capture: SmtpCapture) -> None:
    files = _corpus_files()
    assert len(files) >= 18
    uids = imap.multiappend(SUPPORT_USER, [p.read_bytes() for p in files])
    assert len(uids) == len(files)
    out = env.desk("run", "--once").stdout
    with env.session() as s:
        from sqlalchemy import func, select

        from desk.store.models import Receipt

        outcomes = dict(s.execute(select(Receipt.outcome, func.count()).group_by(
            Receipt.outcome)).all())
    assert sum(outcomes.values()) == len(files), (out, outcomes)
    # Only RT's bare body with no headers at all is unusable; it is kept with the reason.
    quarantined = env.desk_json("quarantine", "list")
    assert len(quarantined) == (1 if SHARED_RT.is_dir() else 0)
    for q in quarantined:
        assert "From" in q["reason"] and "Lorem ipsum" in env.desk_json(
            "quarantine", "show", str(q["id"]))["raw"]
    assert all("\\Seen" in f for _, f, _ in imap.fetch_all(SUPPORT_USER))


def test_auto_responder_ping_pong_stays_bounded(env: DeskEnv, imap: Dovecot,
                                                smtp_capture: SmtpCapture) -> None:
    """A badly written auto-responder answers every mail with a new subject and no
    threading or auto-reply headers: the worst case. The desk's caps stop the loop."""
    robot = "robot@elsewhere.test"
    imap.append(SUPPORT_USER, make_mail(sender=robot, subject="Hello"))
    for _ in range(25):
        env.desk("run", "--once")
        sent = [m for m in smtp_capture.messages() if m.rcpt_tos == [robot]]
        answered = getattr(env, "_answered", 0)
        for mail in sent[answered:]:
            imap.append(SUPPORT_USER, make_mail(sender=robot,
                                                subject=f"Auto: {mail.msg['Subject']} {answered}"))
            answered += 1
        env._answered = answered  # type: ignore[attr-defined]
        if len(sent) == answered and not imap.fetch_all(SUPPORT_USER)[-1].flags.isdisjoint(
                {"\\Seen"}):
            break
    acks = [m for m in smtp_capture.messages() if m.rcpt_tos == [robot]]
    assert 1 <= len(acks) <= 10
    # A polite auto-responder (RFC 3834 headers) never gets even one answer.
    imap.append(SUPPORT_USER, make_mail(sender="ooo@elsewhere.test", subject="Out of office",
                                        headers={"Auto-Submitted": "auto-replied"}))
    env.desk("run", "--once")
    assert not [m for m in smtp_capture.messages() if m.rcpt_tos == ["ooo@elsewhere.test"]]


def test_sigterm_finishes_in_flight_work_and_exits_zero(env: DeskEnv, imap: Dovecot,
                                                       smtp_capture: SmtpCapture) -> None:
    imap.multiappend(SUPPORT_USER, [make_mail(subject=f"Batch {i}") for i in range(30)])
    daemon = DaemonProcess(env)
    wait_until(lambda: len(smtp_capture.messages()) >= 1, timeout=10)
    assert daemon.stop() == 0
    # Whatever was committed was acknowledged at the source; the rest is picked up next time.
    env.desk("run", "--once")
    assert len(env.tickets()) == 30
    acks = to_clients(smtp_capture.messages())
    assert len({m.msg["Message-ID"] for m in acks}) == len(acks) == 10  # rate cap: 1 sender


def test_polling_when_idle_is_off(tmp_path: Path, imap: Dovecot,
                                  smtp_capture: SmtpCapture) -> None:
    env = DeskEnv(tmp_path / "poll", mailbox=imap_mailbox(imap, idle=False, poll_seconds=0.5),
                  smtp=smtp_to(smtp_capture))
    daemon = DaemonProcess(env)
    try:
        imap.append(SUPPORT_USER, make_mail(subject="Polled"))
        wait_for_client_mail(smtp_capture, 1, timeout=5)
    finally:
        assert daemon.stop() == 0
    import re

    assert not re.search(r"> b'\w+ IDLE'", daemon.output())  # never sent the IDLE command
    assert [t["subject"] for t in env.tickets()] == ["Polled"]
    env.close()


def test_a_burst_arriving_while_busy_is_not_left_waiting(env: DeskEnv, imap: Dovecot,
                                                         smtp_capture: SmtpCapture) -> None:
    """Mail that lands while the desk is processing is announced in replies to its own
    commands, not again in IDLE: it must still be picked up at once, not at the next
    IDLE re-issue (poll_seconds, 60 s here)."""
    daemon = DaemonProcess(env)
    try:
        time.sleep(0.5)
        with imap.connect(SUPPORT_USER) as c:
            for i in range(40):
                c.append("INBOX", make_mail(sender=f"p{i}@client.test", subject=f"Burst {i}"))
                time.sleep(0.02)
        wait_for_client_mail(smtp_capture, 40, timeout=20)
    finally:
        assert daemon.stop() == 0
    assert len(env.tickets()) == 40


def test_status_and_json_logs_of_a_running_daemon(env: DeskEnv, imap: Dovecot,
                                                  smtp_capture: SmtpCapture) -> None:
    import json

    daemon = DaemonProcess(env, "--log-format", "json")
    try:
        imap.append(SUPPORT_USER, make_mail())
        wait_for_client_mail(smtp_capture, 1, timeout=10)
        # Both mails (acknowledgement, owner's notice) accepted and marked sent.
        status = wait_until(lambda: (st := env.desk_json("status"))["outbox"]["sent"] == 2
                            and st)
        assert status["alive"] is True and status["workers"][0]["alive"] is True
        assert status["last_ingest"] is not None
        assert status["outbox"]["pending"] == 0 and status["outbox"]["sent"] == 2
        assert status["quarantine"] == 0 and status["open_tickets"] == 1
        assert env.desk("status").returncode == 0
    finally:
        assert daemon.stop() == 0
    stopped = env.desk("status", check=False)
    assert stopped.returncode == 1 and "NOT RUNNING" in stopped.stdout
    lines = [json.loads(line) for line in daemon.output().splitlines() if line.startswith("{")]
    assert lines and all({"at", "level", "logger", "message"} <= set(d) for d in lines)
    assert any("started" in d["message"] for d in lines)
