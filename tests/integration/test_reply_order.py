"""A staff reply that resolves a ticket reaches the client before "Was this resolved?",
never after: in one run, when the reply has to be retried, when a junior's reply waits
for approval, and when a second process delivers a backlog. Checked in the order the
real SMTP server accepted the mails."""

from __future__ import annotations

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
)

MON_10 = "2026-11-23T10:00:00Z"
CLIENT = "client@client.test"


@pytest.fixture
def env(smtp_capture: SmtpCapture, make_env: EnvFactory) -> DeskEnv:
    return make_env(smtp=smtp_to(smtp_capture))


def client_subjects(capture: SmtpCapture) -> list[str]:
    """What the client's mailbox received, in the order the server accepted it."""
    return [str(m.msg["Subject"]) for m in capture.messages() if m.rcpt_tos == [CLIENT]]


def open_ticket(env: DeskEnv, capture: SmtpCapture, owner: str = "paul@agency.test"
                ) -> object:
    env.drop(make_mail(subject="Contact form broken"))
    env.desk("run", "--once", "--now", MON_10)
    [notice] = [m.msg for m in capture.messages() if m.rcpt_tos == [owner]]
    return notice


def resolve(env: DeskEnv, notice: object, when: str, who: str = "Paul Porter "
            "<paul@agency.test>") -> None:
    env.drop(reply_to(notice, sender=who,  # type: ignore[arg-type]
                      body="#status resolved\n\nAll fixed: the form sends again."))
    env.desk("run", "--once", "--now", when)


def test_the_resolving_reply_arrives_before_the_feedback_request(
        env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    notice = open_ticket(env, smtp_capture)
    resolve(env, notice, "2026-11-23T11:00:00Z")
    assert client_subjects(smtp_capture) == [
        "[#1] Contact form broken",  # the acknowledgement
        "Re: [#1] Contact form broken",  # Paul's reply
        "Was this resolved? [#1] Contact form broken",
    ]


def test_the_request_waits_while_the_reply_is_retried(env: DeskEnv,
                                                       smtp_capture: SmtpCapture) -> None:
    request_waits_for_retried_reply(env, smtp_capture)


def test_the_request_waits_on_postgresql_too(smtp_capture: SmtpCapture, pg_url: str,
                                             make_env: EnvFactory) -> None:
    # There delivery claims with FOR UPDATE SKIP LOCKED, beside the probe for the reply.
    request_waits_for_retried_reply(
        make_env(smtp=smtp_to(smtp_capture), database_url=pg_url), smtp_capture)


def request_waits_for_retried_reply(env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    notice = open_ticket(env, smtp_capture)
    smtp_capture.set_mode("tempfail")  # the server refuses the reply for now
    resolve(env, notice, "2026-11-23T11:00:00Z")
    smtp_capture.set_mode(None)
    # Seconds later the reply is still backing off; the request alone would be due.
    env.desk("run", "--once", "--now", "2026-11-23T11:00:05Z")
    assert client_subjects(smtp_capture) == ["[#1] Contact form broken"]
    waiting = {r["kind"]: r for r in env.desk_json("outbox", "list")}
    assert waiting["relay"]["attempts"] == 1 and waiting["feedback_request"]["attempts"] == 0
    env.desk("run", "--once", "--now", "2026-11-23T12:00:00Z")
    assert client_subjects(smtp_capture)[1:] == [
        "Re: [#1] Contact form broken", "Was this resolved? [#1] Contact form broken"]


def test_a_held_reply_keeps_the_request_back_until_approved(
        env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    notice = open_ticket(env, smtp_capture)
    env.drop(reply_to(notice, sender="paul@agency.test",  # type: ignore[arg-type]
                      body="#assign jo@agency.test"))
    env.desk("run", "--once", "--now", "2026-11-23T10:30:00Z")
    [jo_notice] = [m.msg for m in smtp_capture.messages() if m.rcpt_tos == ["jo@agency.test"]]
    env.drop(reply_to(jo_notice, sender="Jo Junior <jo@agency.test>",
                      body="All fixed: the form sends again."))
    env.desk("run", "--once", "--now", "2026-11-23T10:45:00Z")
    # Paul resolves the ticket while the junior's answer still waits for his approval:
    # the client is asked nothing before that answer reaches them.
    resolve(env, notice, "2026-11-23T11:00:00Z")
    assert client_subjects(smtp_capture) == [
        "[#1] Contact form broken", "Re: [#1] Contact form broken"]  # Paul's own reply
    [request] = [m.msg for m in smtp_capture.messages() if m.rcpt_tos == ["paul@agency.test"]
                 and str(m.msg["Subject"]).startswith("Approve")]
    env.drop(reply_to(request, sender="paul@agency.test", body="#approve"))
    env.desk("run", "--once", "--now", "2026-11-23T12:00:00Z")
    assert client_subjects(smtp_capture)[2:] == [
        "Re: [#1] Contact form broken", "Was this resolved? [#1] Contact form broken"]
    assert "All fixed" in str(smtp_capture.messages()[-2].raw)


def test_order_holds_when_a_second_process_delivers_a_backlog(
        imap: Dovecot, smtp_capture: SmtpCapture, make_env: EnvFactory) -> None:
    env = make_env(mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture))
    imap.append(SUPPORT_USER, make_mail(subject="Contact form broken"))
    env.desk("run", "--once", "--now", MON_10)
    [notice] = [m.msg for m in smtp_capture.messages() if m.rcpt_tos == ["paul@agency.test"]]
    # Downtime: the resolving reply waits in the inbox amid a backlog of new requests,
    # enough for `desk run --once` to deliver from a process of its own.
    backlog = [make_mail(sender=f"user{i}@client.test", subject=f"Request {i}")
               for i in range(80)]
    backlog.insert(20, reply_to(notice, sender="Paul Porter <paul@agency.test>",
                                body="#status resolved\n\nAll fixed: the form sends again."))
    imap.multiappend(SUPPORT_USER, backlog)
    run = env.desk("run", "--once", "--now", "2026-11-23T11:00:00Z", "--log-level", "info")
    assert "delivering from a second process" in run.stderr
    assert client_subjects(smtp_capture) == [
        "[#1] Contact form broken", "Re: [#1] Contact form broken",
        "Was this resolved? [#1] Contact form broken"]
