"""The test harness itself: real Dovecot, SMTP sink and PostgreSQL behave as later tests
assume. Doubles as usage documentation for tests/servers.py and the fixtures."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
import sqlalchemy as sa
from imapclient import IMAPClient

from tests.servers import Dovecot, Postgres, SmtpCapture

SUPPORT = "support@agency.test"
STAFF = "staff@agency.test"
CLIENT = "client@client.test"


def raw_mail(subject: str, to: str = SUPPORT, body: str = "Hello") -> bytes:
    return (
        f"From: {CLIENT}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@client.test>\r\n\r\n{body}\r\n"
    ).encode()


def plain_imap(server: Dovecot, user: str = SUPPORT) -> IMAPClient:
    """What the daemon will do: imap_settings() + imapclient without TLS."""
    s = server.imap_settings(user)
    client = IMAPClient(str(s["host"]), port=int(s["port"]), ssl=False, timeout=10)
    client.login(str(s["username"]), str(s["password"]))
    return client


# --------------------------------------------------------------------------- Dovecot


def test_append_then_fetch_with_imapclient(imap: Dovecot) -> None:
    uid = imap.append(SUPPORT, raw_mail("first"), flags=["\\Seen"])
    uids = imap.multiappend(SUPPORT, [raw_mail("second"), raw_mail("third")])
    assert uids == [uid + 1, uid + 2]

    client = plain_imap(imap)
    try:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search("ALL"), ["FLAGS", "BODY.PEEK[]"])
    finally:
        client.logout()
    assert sorted(fetched) == [uid, *uids]
    assert b"Subject: first" in fetched[uid][b"BODY[]"]
    assert b"\\Seen" in fetched[uid][b"FLAGS"]

    mails = imap.fetch_all(SUPPORT)
    assert [(m.uid, m.flags) for m in mails] == [
        (uid, {"\\Seen"}),
        (uids[0], set()),
        (uids[1], set()),
    ]
    assert mails[2].raw == raw_mail("third")
    assert imap.fetch_all(STAFF) == []


def test_mail_store_is_clean_at_test_start(imap: Dovecot) -> None:
    # tests before this one leave mail and folders behind: the fixture must have cleaned up
    assert imap.fetch_all(SUPPORT) == []
    with imap.connect(SUPPORT) as c:
        assert {name for _f, _s, name in c.list_folders()} == {"INBOX", "Sent", "Trash"}
        c.create_folder("Processed")  # gone again before the next test


def test_add_user_after_start(imap: Dovecot) -> None:
    imap.add_user("late@agency.test", "pw2")
    imap.append("late@agency.test", raw_mail("hi", to="late@agency.test"))
    assert len(imap.fetch_all("late@agency.test")) == 1
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(IMAPClient.Error), imap.connect("late@agency.test", "wrong"):
            pass
    # No auth_failure_delay and no anvil penalty, so no 2-15 s waits; what is left is Dovecot's
    # fixed 500 ms timer that flushes queued auth failures.
    assert time.monotonic() - started < 3 * 0.8


def test_idle_wakes_up_after_append_from_another_connection(imap: Dovecot) -> None:
    watcher = plain_imap(imap)
    try:
        watcher.select_folder("INBOX")
        watcher.idle()
        started = time.monotonic()
        imap.append(SUPPORT, raw_mail("wake up"))
        responses = watcher.idle_check(timeout=2)
        elapsed = time.monotonic() - started
        watcher.idle_done()
    finally:
        watcher.logout()
    assert any(r[1:2] == (b"EXISTS",) for r in responses), responses
    assert elapsed < 2, elapsed


def test_restart_keeps_mail_and_ports_and_drops_idle_sessions(imap: Dovecot) -> None:
    uid = imap.append(SUPPORT, raw_mail("survivor"))
    ports = (imap.imap_port, imap.lmtp_port)
    watcher = plain_imap(imap)
    try:
        watcher.select_folder("INBOX")
        watcher.idle()
        imap.restart()
        # a real restart ends the session: BYE, or the socket just closes
        try:
            responses = watcher.idle_check(timeout=5)
        except (OSError, IMAPClient.AbortError):
            responses = [(b"closed",)]
        assert responses, "IDLE session survived the restart"
    finally:
        watcher.shutdown()
    assert (imap.imap_port, imap.lmtp_port) == ports
    assert [(m.uid, m.raw) for m in imap.fetch_all(SUPPORT)] == [(uid, raw_mail("survivor"))]


def test_reset_uidvalidity_changes_it_and_keeps_messages(imap: Dovecot) -> None:
    imap.append(SUPPORT, raw_mail("one"), flags=["\\Seen", "$Handled"])
    imap.multiappend(SUPPORT, [raw_mail("two"), raw_mail("three")])
    with imap.connect(SUPPORT) as c:
        before = c.select_folder("INBOX")[b"UIDVALIDITY"]
    old_mails = imap.fetch_all(SUPPORT)

    new = imap.reset_uidvalidity(SUPPORT)

    with imap.connect(SUPPORT) as c:
        after = c.select_folder("INBOX")[b"UIDVALIDITY"]
    assert after == new != before
    mails = imap.fetch_all(SUPPORT)
    assert sorted((m.raw, frozenset(m.flags)) for m in mails) == sorted(
        (m.raw, frozenset(m.flags)) for m in old_mails
    )
    assert [m.uid for m in mails] == [1, 2, 3]  # renumbered, as after a real index loss


def test_lmtp_delivery_lands_in_inbox(imap: Dovecot) -> None:
    assert imap.lmtp_port is not None
    with smtplib.LMTP(imap.host, imap.lmtp_port, timeout=10) as lmtp:
        # one RCPT per transaction: smtplib.LMTP mis-reads multi-RCPT replies
        for rcpt in (SUPPORT, STAFF):
            assert lmtp.sendmail(CLIENT, [rcpt], raw_mail("via lmtp", to=rcpt)) == {}
    imap.lmtp_deliver("support+billing@agency.test", raw_mail("detail address"))
    subjects = [m.raw.split(b"Subject: ")[1].split(b"\r\n")[0] for m in imap.fetch_all(SUPPORT)]
    assert subjects == [b"via lmtp", b"detail address"]  # recipient_delimiter "+" works
    assert len(imap.fetch_all(STAFF)) == 1


# --------------------------------------------------------------------------- SMTP sink


def _message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SUPPORT
    msg["To"] = CLIENT
    msg["Subject"] = subject
    msg.set_content("Grüße aus dem Test\n")
    return msg


def test_smtp_capture_receives_from_aiosmtplib_and_smtplib(smtp_capture: SmtpCapture) -> None:
    assert smtp_capture.port is not None
    asyncio.run(
        aiosmtplib.send(
            _message("Über aiosmtplib"), hostname=smtp_capture.host, port=smtp_capture.port
        )
    )
    with smtplib.SMTP(smtp_capture.host, smtp_capture.port, timeout=10) as smtp:
        smtp.sendmail("bounce@agency.test", [CLIENT, STAFF], b"Subject: raw bytes\r\n\r\nhi\r\n")

    first, second = smtp_capture.wait_for(2)
    assert (first.envelope_from, first.rcpt_tos) == (SUPPORT, [CLIENT])
    assert first.msg["Subject"] == "Über aiosmtplib"
    assert first.msg.get_content() == "Grüße aus dem Test\n"
    assert (second.envelope_from, second.rcpt_tos) == ("bounce@agency.test", [CLIENT, STAFF])
    assert second.raw == b"Subject: raw bytes\r\n\r\nhi\r\n"

    smtp_capture.clear()
    assert smtp_capture.messages() == []


def test_smtp_capture_fail_modes_switch_at_runtime(smtp_capture: SmtpCapture) -> None:
    assert smtp_capture.port is not None
    with smtplib.SMTP(smtp_capture.host, smtp_capture.port, timeout=10) as smtp:
        smtp_capture.set_mode("tempfail")
        with pytest.raises(smtplib.SMTPDataError) as temp:
            smtp.sendmail(SUPPORT, [CLIENT], b"Subject: t\r\n\r\nx\r\n")
        assert temp.value.smtp_code == 451

        smtp_capture.set_mode("permfail")
        with pytest.raises(smtplib.SMTPDataError) as perm:
            smtp.sendmail(SUPPORT, [CLIENT], b"Subject: p\r\n\r\nx\r\n")
        assert perm.value.smtp_code == 554

        smtp_capture.set_mode(None)
        smtp.sendmail(SUPPORT, [CLIENT], b"Subject: ok\r\n\r\nx\r\n")
    assert [m.msg["Subject"] for m in smtp_capture.messages()] == ["ok"]


@pytest.mark.integration
def test_smtp_capture_fail_mode_at_start_and_with_aiosmtplib(tmp_path: Path) -> None:
    sink = SmtpCapture().start(tmp_path, fail_mode="tempfail")
    try:
        assert sink.port is not None
        with pytest.raises(aiosmtplib.SMTPDataError) as err:
            asyncio.run(aiosmtplib.send(_message("x"), hostname=sink.host, port=sink.port))
        assert err.value.code == 451
    finally:
        sink.stop()


def test_smtp_capture_down_and_back_on_same_port(smtp_capture: SmtpCapture) -> None:
    port = smtp_capture.port
    assert port is not None
    smtp_capture.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((smtp_capture.host, port), timeout=2).close()
    smtp_capture.start_again()
    assert smtp_capture.port == port
    with smtplib.SMTP(smtp_capture.host, port, timeout=10) as smtp:
        smtp.sendmail(SUPPORT, [CLIENT], b"Subject: back\r\n\r\nx\r\n")
    assert smtp_capture.wait_for(1)[0].msg["Subject"] == "back"


@pytest.mark.integration
def test_smtp_capture_can_require_auth(tmp_path: Path) -> None:
    sink = SmtpCapture().start(tmp_path, auth=("desk", "smtp-pw"))
    try:
        assert sink.port is not None
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPSenderRefused):  # 530 before AUTH
                smtp.sendmail(SUPPORT, [CLIENT], b"Subject: a\r\n\r\nx\r\n")
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login("desk", "wrong")
            smtp.login("desk", "smtp-pw")
            smtp.sendmail(SUPPORT, [CLIENT], b"Subject: authed\r\n\r\nx\r\n")
        assert [m.msg["Subject"] for m in sink.messages()] == ["authed"]
    finally:
        sink.stop()


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_select_1(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
            assert conn.execute(sa.text("select current_user")).scalar_one() == "desk"
    finally:
        engine.dispose()


def test_each_test_gets_its_own_database(postgres: Postgres, pg_url: str) -> None:
    mine = sa.create_engine(pg_url)
    other_url = postgres.create_database("harness_other")
    other = sa.create_engine(other_url)
    try:
        with mine.begin() as conn:
            conn.execute(sa.text("create table ticket (id int primary key)"))
        with other.connect() as conn:
            assert conn.execute(sa.text("select to_regclass('ticket')")).scalar_one() is None
        assert other_url != pg_url
    finally:
        mine.dispose()
        other.dispose()
        postgres.drop_database("harness_other")


def test_server_tests_are_marked_integration(request: pytest.FixtureRequest, pg_url: str) -> None:
    assert request.node.get_closest_marker("integration") is not None
