"""Foundation end to end against a real Dovecot and a real SMTP server in another process:
APPEND -> `desk run --once` -> one ticket -> one acknowledgement, exactly once."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from tests.servers import Dovecot, SmtpCapture
from tests.support import (
    SUPPORT_USER,
    DeskEnv,
    EnvFactory,
    imap_mailbox,
    make_mail,
    reply_to,
    smtp_to,
    to_clients,
    wait_for_client_mail,
)


@pytest.fixture
def env(imap: Dovecot, smtp_capture: SmtpCapture, make_env: EnvFactory) -> DeskEnv:
    return make_env(mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture))


def test_append_run_ticket_ack_exactly_once(env: DeskEnv, imap: Dovecot,
                                            smtp_capture: SmtpCapture) -> None:
    uid = imap.append(SUPPORT_USER, make_mail(message_id="<imap-1@client.test>"))
    out = env.desk("run", "--once").stdout
    assert "1 new ticket," in out and "sent 2" in out  # the ack and the owner's notice

    [t] = env.tickets()
    [mail] = wait_for_client_mail(smtp_capture, 1)
    assert mail.rcpt_tos == ["client@client.test"]
    assert mail.envelope_from == "support@agency.test"
    ack = mail.msg
    assert ack["Subject"] == f"[#{t['ref']}] Contact form broken"
    assert ack["In-Reply-To"] == "<imap-1@client.test>"
    assert ack["References"] == "<imap-1@client.test>"
    assert ack["Auto-Submitted"] == "auto-replied"
    stored = [m["message_id"] for m in env.ticket(t["ref"])["messages"] if m["direction"] == "out"]
    assert ack["Message-ID"] == f"<{stored[0]}>"

    # The source message is flagged \Seen (after commit), never deleted.
    [(stored_uid, flags, _)] = imap.fetch_all(SUPPORT_USER)
    assert stored_uid == uid and "\\Seen" in flags

    # Second run: nothing new, nothing sent.
    out = env.desk("run", "--once").stdout
    assert "ingested 0" in out and "sent 0" in out
    assert len(env.tickets()) == 1 and len(smtp_capture.messages()) == 2


def test_client_reply_to_the_ack_threads_into_the_same_ticket(env: DeskEnv, imap: Dovecot,
                                                             smtp_capture: SmtpCapture) -> None:
    imap.append(SUPPORT_USER, make_mail())
    env.desk("run", "--once")
    [mail] = wait_for_client_mail(smtp_capture, 1)
    ack: EmailMessage = mail.msg
    reply = reply_to(ack, sender="Carol <client@client.test>", body="Still broken today.")
    # The reply arrives addressed to the token Reply-To, as a mail program would send it.
    assert message_from_bytes(reply, policy=policy.default)["To"].startswith("support+")
    imap.append(SUPPORT_USER, reply)
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["message_count"] == 3
    assert "Still broken today." in env.ticket(t["ref"])["messages"][-1]["body_text"]
    assert len(to_clients(smtp_capture.messages())) == 1


def test_mail_already_read_before_first_start_is_history(env: DeskEnv, imap: Dovecot,
                                                        smtp_capture: SmtpCapture) -> None:
    imap.append(SUPPORT_USER, make_mail(subject="Old and read"), flags=[b"\\Seen"])
    imap.append(SUPPORT_USER, make_mail(subject="New"))
    env.desk("run", "--once")
    assert [t["subject"] for t in env.tickets()] == ["New"]


def test_broken_message_is_quarantined_and_acknowledged_at_the_source(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    imap.append(SUPPORT_USER, b"Subject: no sender here\r\n\r\nbody\r\n")
    imap.append(SUPPORT_USER, make_mail(subject="Good one"))
    out = env.desk("run", "--once").stdout
    assert "1 quarantined" in out
    assert [t["subject"] for t in env.tickets()] == ["Good one"]
    [q] = env.desk_json("quarantine", "list")
    assert q["subject"] == "no sender here" and "From" in q["reason"]
    assert all("\\Seen" in flags for _, flags, _ in imap.fetch_all(SUPPORT_USER))
    assert "ingested 0" in env.desk("run", "--once").stdout
    assert len(env.desk_json("quarantine", "list")) == 1


def test_smtp_outage_keeps_the_ack_queued_until_the_server_is_back(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    smtp_capture.stop()
    imap.append(SUPPORT_USER, make_mail())
    out = env.desk("run", "--once").stdout
    assert "1 new ticket," in out and "sent 0" in out
    smtp_capture.start_again()
    # Backoff: the row is due again later; make it due now as time passing would.
    with env.session() as s:
        from sqlalchemy import update

        from desk.store.models import Outbox, utcnow

        s.execute(update(Outbox).values(next_attempt_at=utcnow()))
        s.commit()
    assert "sent 2" in env.desk("run", "--once").stdout
    assert len(wait_for_client_mail(smtp_capture, 1)) == 1


def test_a_backlog_is_delivered_from_a_second_process_exactly_once(
    env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture
) -> None:
    # More than one ingest batch (50): a backlog, so delivery gets a process of its own
    # while the intake goes on (outbound/delivery_process.py).
    count = 120
    imap.multiappend(SUPPORT_USER, [
        make_mail(sender=f"Person {i} <p{i}@client.test>", subject=f"Question {i}",
                  message_id=f"<backlog-{i}@client.test>") for i in range(count)])
    run = env.desk("run", "--once", "--log-level", "info")
    assert "delivering from a second process" in run.stderr
    assert f"ingested {count} ({count} new tickets" in run.stdout
    # Everything the run queued went out before it exited, each mail once.
    acks = to_clients(smtp_capture.messages())
    assert sorted(m.rcpt_tos[0] for m in acks) == sorted(f"p{i}@client.test"
                                                         for i in range(count))
    ids = [m.msg["Message-ID"] for m in smtp_capture.messages()]
    assert len(ids) == len(set(ids))
    sent = int(run.stdout.rsplit("sent ", 1)[1].split(",")[0])
    assert sent == len(smtp_capture.messages())
    assert "sent 0" in env.desk("run", "--once").stdout  # nothing left behind
