"""Who really wrote this? Each attack on staff powers, tried against a real Dovecot and a
real SMTP server: the forgery changes nothing, reaches no client, and the real staff
member is told. The genuine paths keep working."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from tests.servers import Dovecot, SmtpCapture
from tests.support import (
    SUPPORT_USER,
    TRUSTED_AUTH,
    DeskEnv,
    EnvFactory,
    imap_mailbox,
    make_mail,
    reply_to,
    smtp_to,
)

PAUL = "Paul Porter <paul@agency.test>"
FORGED_COMMANDS = "#status resolved\n#assign ben@agency.test\n\nAll fixed, nothing to worry about."


@pytest.fixture
def env(imap: Dovecot, smtp_capture: SmtpCapture, make_env: EnvFactory) -> DeskEnv:
    return make_env(mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture))


def _to(m: Any) -> list[str]:
    return list(m.rcpt_tos)


def _client_mail(smtp: SmtpCapture) -> list[Any]:
    return [m for m in smtp.messages() if not _to(m)[0].endswith("@agency.test")]


def _mail_to(smtp: SmtpCapture, who: str) -> list[EmailMessage]:
    return [m.msg for m in smtp.messages() if who in _to(m)]


def _open(env: DeskEnv, imap: Dovecot, smtp: SmtpCapture, mid: str = "<q1@client.test>"
          ) -> tuple[dict[str, Any], EmailMessage, EmailMessage]:
    """A client's ticket; returns it, the client's acknowledgement, Paul's notice."""
    imap.append(SUPPORT_USER, make_mail(message_id=mid, subject=f"Broken {mid}"))
    env.desk("run", "--once")
    t = env.tickets()[-1]
    ack = [m.msg for m in _client_mail(smtp) if f"[#{t['ref']}]" in m.msg["Subject"]][-1]
    notice = [m for m in _mail_to(smtp, "paul@agency.test")
              if f"[#{t['ref']}]" in m["Subject"]][-1]
    return t, ack, notice


def _run(env: DeskEnv, imap: Dovecot, raw: bytes) -> None:
    imap.append(SUPPORT_USER, raw)
    env.desk("run", "--once")


def _assert_nothing_happened(env: DeskEnv, smtp: SmtpCapture, t: dict[str, Any],
                             clients_before: int) -> None:
    after = env.ticket(t["ref"])
    assert len(_client_mail(smtp)) == clients_before  # no client received anything
    assert after["status"] == t["status"] and after["assignee"] == t["assignee"]
    assert any(e["kind"] == "spoofed_staff" for e in after["events"])
    told = [m for m in _mail_to(smtp, "paul@agency.test")
            if m["Subject"].startswith("Someone wrote as you")]
    assert len(told) == 1
    assert f"#{t['ref']}" in told[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_forged_subject_tag_is_not_obeyed(env: DeskEnv, imap: Dovecot,
                                          smtp_capture: SmtpCapture) -> None:
    t, _, _ = _open(env, imap, smtp_capture)
    before = len(_client_mail(smtp_capture))
    _run(env, imap, make_mail(sender=PAUL, subject=f"Re: [#{t['ref']}] Broken",
                              body=FORGED_COMMANDS))
    _assert_nothing_happened(env, smtp_capture, t, before)


def test_the_clients_reply_address_grants_no_staff_powers(env: DeskEnv, imap: Dovecot,
                                                          smtp_capture: SmtpCapture) -> None:
    t, ack, _ = _open(env, imap, smtp_capture)
    before = len(_client_mail(smtp_capture))
    _run(env, imap, reply_to(ack, sender=PAUL, body=FORGED_COMMANDS))
    _assert_nothing_happened(env, smtp_capture, t, before)


def test_a_forged_authentication_results_below_the_genuine_one_proves_nothing(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    t, _, _ = _open(env, imap, smtp_capture)
    before = len(_client_mail(smtp_capture))
    raw = make_mail(sender=PAUL, subject=f"Re: [#{t['ref']}] Broken", body=FORGED_COMMANDS)
    # What arrives: our server's verdict on top, the sender's own invention below it.
    genuine = "mx.agency.test; dkim=fail header.d=agency.test; spf=softfail " \
              "smtp.mailfrom=paul@agency.test"
    eol = b"\r\n" if b"\r\n" in raw else b"\n"
    raw = (f"Authentication-Results: {genuine}".encode() + eol
           + f"Authentication-Results: {TRUSTED_AUTH}".encode() + eol + raw)
    _run(env, imap, raw)
    _assert_nothing_happened(env, smtp_capture, t, before)


def test_a_staff_reply_replayed_to_another_ticket_proves_nothing(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    a, _, notice_a = _open(env, imap, smtp_capture, "<qa@client.test>")
    b, ack_b, _ = _open(env, imap, smtp_capture, "<qb@client.test>")
    genuine = reply_to(notice_a, sender=PAUL, body="#priority P1\n\nOn it.")
    _run(env, imap, genuine)  # Paul's real reply to his own notice on A works
    assert env.ticket(a["ref"])["priority"] == "P1"
    before = len(_client_mail(smtp_capture))
    # The same mail, re-sent by someone who saw it, to B's address as the client knows it.
    replay = message_from_bytes(genuine, policy=policy.default)
    del replay["Message-ID"], replay["To"]
    replay["Message-ID"] = "<replayed@evil.test>"
    replay["To"] = str(ack_b["Reply-To"])
    replay["Cc"] = str(notice_a["Reply-To"])  # A's bound address rides along: no use on B
    _run(env, imap, replay.as_bytes())
    after = env.ticket(b["ref"])
    assert len(_client_mail(smtp_capture)) == before
    assert after["priority"] == b["priority"]


def test_a_forged_forward_opens_no_ticket_in_the_clients_name(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    body = ("Please handle.\n\n---------- Forwarded message ---------\n"
            "From: Victim <ceo@client.test>\nSubject: Send the invoice to my new bank\n\n"
            "Please change our bank details.\n")
    _run(env, imap, make_mail(sender="Sam Senior <sam@agency.test>",
                              subject="Fwd: new bank details", body=body))
    [t] = env.tickets()
    assert t["requester"] == "sam@agency.test"  # not the client named inside
    assert _client_mail(smtp_capture) == []  # nobody named inside is acknowledged
    told = [m for m in _mail_to(smtp_capture, "sam@agency.test")
            if m["Subject"].startswith("Someone wrote as you")]
    assert len(told) == 1


def test_the_real_staff_member_is_told_at_most_once_an_hour_per_ticket(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    t, _, _ = _open(env, imap, smtp_capture)
    for i in range(3):
        _run(env, imap, make_mail(sender=PAUL, subject=f"Re: [#{t['ref']}] Broken {i}",
                                  body=FORGED_COMMANDS))
    told = [m for m in _mail_to(smtp_capture, "paul@agency.test")
            if m["Subject"].startswith("Someone wrote as you")]
    assert len(told) == 1
    assert sum(e["kind"] == "spoofed_staff" for e in env.ticket(t["ref"])["events"]) == 3


def test_genuine_staff_paths_still_work(env: DeskEnv, imap: Dovecot,
                                        smtp_capture: SmtpCapture) -> None:
    t, _, notice = _open(env, imap, smtp_capture)
    # The notice's reply address is Paul's alone, different from the client's.
    assert ".s" in str(notice["Reply-To"]).split("+", 1)[1]
    before = len(_client_mail(smtp_capture))
    _run(env, imap, reply_to(notice, sender=PAUL, body="#priority P1\n\nHello Carol, fixed."))
    assert env.ticket(t["ref"])["priority"] == "P1"
    assert len(_client_mail(smtp_capture)) == before + 1  # relayed to the client
    # A fresh mail quoting [#REF], vouched for by the agency's own receiving server.
    _run(env, imap, make_mail(sender=PAUL, subject=f"Re: [#{t['ref']}] Broken",
                              body="#priority P2\n\nOne more thing, Carol.",
                              headers={"Authentication-Results": TRUSTED_AUTH}))
    assert env.ticket(t["ref"])["priority"] == "P2"
    assert len(_client_mail(smtp_capture)) == before + 2
    assert not any(m["Subject"].startswith("Someone wrote as you")
                   for m in _mail_to(smtp_capture, "paul@agency.test"))


def test_a_forward_to_the_staff_members_own_address_opens_the_clients_ticket(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    own = env.desk("staff", "forward-address", "sam@agency.test").stdout.strip()
    assert own.startswith("support+0.s") and own.endswith("@agency.test")
    body = ("FYI\n\n---------- Forwarded message ---------\n"
            "From: Carol Client <client@client.test>\nSubject: Checkout broken\n\n"
            "Our checkout shows a blank page.\n")
    _run(env, imap, make_mail(sender="Sam Senior <sam@agency.test>", to=own,
                              subject="Fwd: Checkout broken", body=body))
    [t] = env.tickets()
    assert t["requester"] == "client@client.test" and t["client"] == "Client Co"
    [ack] = _client_mail(smtp_capture)
    assert _to(ack) == ["client@client.test"]
