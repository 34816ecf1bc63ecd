"""Working tickets by email, end to end: notices, replies relayed to clients, commands,
junior holds, spoofed staff, reopening, and each tier's acknowledgement."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlalchemy import select, update

from desk.store.models import Outbox, Ticket, TimeEntry, utcnow
from tests.servers import Dovecot, SmtpCapture
from tests.support import (
    SUPPORT_USER,
    TRUSTED_AUTH,
    DeskEnv,
    imap_mailbox,
    make_mail,
    reply_to,
    said,
    smtp_to,
    to_clients,
    wait_until,
)


def body(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return part.get_content()


def open_ticket(env: DeskEnv, **kw: str) -> tuple[dict, EmailMessage]:  # type: ignore[type-arg]
    env.drop(make_mail(message_id="<first@client.test>", **kw))
    env.desk("run", "--once")
    t = env.tickets()[-1]
    [notice] = env.sent_to("paul@agency.test")[-1:]
    return t, notice


def staff_reply(env: DeskEnv, notice: EmailMessage, sender: str, text: str,
                headers: dict[str, str] | None = None) -> None:
    """A staff member answers by email as a real one does: to their own notice (its reply
    address is theirs alone), or to someone else's with their own mail server vouching
    for them."""
    if headers is None and parseaddr(sender)[1] not in [a.addr_spec for a in
                                                        notice["To"].addresses]:
        headers = {"Authentication-Results": TRUSTED_AUTH}
    raw = reply_to(notice, sender=sender, body=text)
    if headers:
        from email import message_from_bytes, policy

        m = message_from_bytes(raw, policy=policy.default)
        for k, v in headers.items():
            m[k] = v
        raw = m.as_bytes()
    env.drop(raw)
    env.desk("run", "--once")


def test_owner_replies_with_commands_client_gets_only_the_text_threaded(
        tmp_path: Path, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    env = DeskEnv(tmp_path / "d", mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture))
    imap.append(SUPPORT_USER, make_mail(message_id="<q1@client.test>",
                                        subject="Contact form broken"))
    env.desk("run", "--once")
    mails = wait_until(lambda: len(smtp_capture.messages()) >= 2 and smtp_capture.messages())
    [notice] = [m.msg for m in mails if m.rcpt_tos == ["paul@agency.test"]]
    assert "Contact form broken" in body(notice) and "#status" in body(notice)
    [t] = env.tickets()

    reply = reply_to(notice, sender="Paul Porter <paul@agency.test>",
                     body="#status waiting\n#time 45m checked the mail logs\n\n"
                          "Hi Carol, the form works again. Could you send one test message?")
    imap.append(SUPPORT_USER, reply)
    env.desk("run", "--once")
    relayed = wait_until(lambda: [m for m in to_clients(smtp_capture.messages())
                                  if "works again" in body(m.msg)])
    [mail] = relayed
    assert mail.rcpt_tos == ["client@client.test"]
    text = body(mail.msg)
    assert "Hi Carol, the form works again." in text and "Paul Porter" in text
    assert "#status" not in text and "#time" not in text
    assert "earlier text" not in text and "their message" not in text  # no quoted history
    assert mail.msg["In-Reply-To"] == "<q1@client.test>"  # into the client's own thread
    assert "<q1@client.test>" in mail.msg["References"]
    assert mail.msg["Auto-Submitted"] is None  # a person wrote this
    assert mail.msg["From"].addresses[0].addr_spec == "support@agency.test"

    detail = env.ticket(t["ref"])
    assert detail["status"] == "waiting"
    kinds = [e["kind"] for e in detail["events"]]
    assert "first_response" in kinds and "time" in kinds
    with env.session() as s:
        assert s.scalar(select(TimeEntry.minutes)) == 45
        ticket = s.get(Ticket, t["id"])
        assert ticket is not None and ticket.first_response_at is not None
        assert ticket.first_response_due is None  # the first-response clock stopped
    env.close()


def test_note_never_reaches_the_client(env: DeskEnv) -> None:
    t, notice = open_ticket(env)
    before = len(env.client_mail())
    staff_reply(env, notice, "paul@agency.test", "#note\nThe client's host is slow to answer.")
    assert len(env.client_mail()) == before
    events = env.ticket(t["ref"])["events"]
    assert any(e["kind"] == "note" and "slow to answer" in e["detail"] for e in events)


def test_junior_reply_is_held_then_approved_by_reply_and_sent_unchanged(env: DeskEnv) -> None:
    t, notice = open_ticket(env)
    env.desk("tickets", "set", t["ref"], "--owner", "jo@agency.test")  # joins as a worker
    before = len(env.client_mail())
    staff_reply(env, notice, "Jo Junior <jo@agency.test>", "Hello, I cleared the cache.")
    assert len(env.client_mail()) == before  # held
    [request] = [m for m in env.sent_to("paul@agency.test") if "Approve" in m["Subject"]]
    assert "Hello, I cleared the cache." in body(request)
    with env.session() as s:
        held = s.scalar(select(Outbox).where(Outbox.status == "held"))
        assert held is not None
        held_bytes = held.raw

    staff_reply(env, request, "paul@agency.test", "#approve")
    client = env.client_mail()
    assert len(client) == before + 1
    assert "Hello, I cleared the cache." in body(client[-1])
    with env.session() as s:
        sent = s.scalar(select(Outbox).where(Outbox.kind == "relay"))
        assert sent is not None and sent.status == "sent" and sent.raw == held_bytes


def test_junior_reply_rejected_goes_back_with_the_reason(env: DeskEnv) -> None:
    _, notice = open_ticket(env)
    before = len(env.client_mail())
    staff_reply(env, notice, "jo@agency.test", "It is fixed lol")
    [request] = [m for m in env.sent_to("paul@agency.test") if "Approve" in m["Subject"]]
    staff_reply(env, request, "paul@agency.test", "#reject please explain what was wrong")
    assert len(env.client_mail()) == before
    [back] = [m for m in env.sent_to("jo@agency.test") if "not sent" in m["Subject"]]
    assert "please explain what was wrong" in body(back)


def test_approve_from_the_cli(env: DeskEnv) -> None:
    _, notice = open_ticket(env)
    staff_reply(env, notice, "jo@agency.test", "Fixed: the form sends again.")
    with env.session() as s:
        held_id = s.scalar(select(Outbox.id).where(Outbox.status == "held"))
    assert "approved" in env.desk("approve", str(held_id), "--by", "paul@agency.test").stdout
    env.desk("run", "--once")
    assert "Fixed: the form sends again." in body(env.client_mail()[-1])


@pytest.mark.parametrize("who, command, refusal", [
    ("jo@agency.test", "#take", "#take is for"),
    ("sam@agency.test", "#assign ben@agency.test", "#assign is for"),
    ("paul@agency.test", "#frobnicate now", "unknown command"),
    ("paul@agency.test", "#priority P9", "P1, P2, P3 or P4"),
    ("paul@agency.test", "#cc stranger@elsewhere.test", "not a contact"),
])
def test_refused_commands_explain_and_send_nothing_to_the_client(
        env: DeskEnv, who: str, command: str, refusal: str) -> None:
    t, notice = open_ticket(env)
    before = len(env.client_mail())
    staff_reply(env, notice, who, f"{command}\n\nHello Carol, on it!")
    assert len(env.client_mail()) == before
    [answer] = [m for m in env.sent_to(who) if m["Subject"].startswith("Not done")]
    assert refusal in said(body(answer))
    after = env.ticket(t["ref"])
    assert after["assignee"] == "paul@agency.test" and after["priority"] == t["priority"]


def test_assign_by_manager_and_take_by_senior(env: DeskEnv) -> None:
    t, notice = open_ticket(env)
    staff_reply(env, notice, "paul@agency.test", "#assign ben@agency.test\n#priority P1")
    assert env.ticket(t["ref"])["assignee"] == "ben@agency.test"
    staff_reply(env, notice, "sam@agency.test", "#take")
    after = env.ticket(t["ref"])
    assert after["assignee"] == "sam@agency.test" and after["priority"] == "P1"


AUTH = "Authentication-Results"


@pytest.mark.parametrize("headers, accepted", [
    ({}, False),
    ({AUTH: "evil.example; dkim=pass header.d=agency.test"}, False),  # someone else's server
    ({AUTH: "mx.agency.test; dkim=fail header.d=agency.test"}, False),
    ({AUTH: "mx.agency.test; dkim=pass header.d=other.test"}, False),  # wrong signer
    ({AUTH: "mx.agency.test; dkim=pass header.d=agency.test"}, True),
    ({AUTH: "mx.agency.test; spf=pass smtp.mailfrom=paul@agency.test"}, True),
])
def test_only_authenticated_staff_mail_commands_anything(tmp_path: Path, headers: dict,  # type: ignore[type-arg]
                                                        accepted: bool) -> None:
    env = DeskEnv(tmp_path / "sec", extra={"security": {
        "require_authenticated_staff": True, "trusted_authserv_id": "mx.agency.test"}})
    t, notice = open_ticket(env)
    before = len(env.client_mail())
    staff_reply(env, notice, "paul@agency.test", "#priority P1\n\nAll fixed, Carol.", headers)
    after = env.ticket(t["ref"])
    assert (after["priority"] == "P1") is accepted
    assert (len(env.client_mail()) == before + 1) is accepted
    spoofed = [e for e in after["events"] if e["kind"] == "spoofed_staff"]
    assert bool(spoofed) is not accepted
    env.close()


def test_reply_to_resolved_ticket_reopens_it_within_the_window(env: DeskEnv) -> None:
    t, notice = open_ticket(env)
    staff_reply(env, notice, "paul@agency.test", "#status resolved\n\nAll done, Carol.")
    assert env.ticket(t["ref"])["status"] == "resolved"
    [relay] = [m for m in env.client_mail() if "All done" in body(m)]
    env.drop(reply_to(relay, sender="client@client.test", body="It broke again."))
    env.desk("run", "--once")
    assert len(env.tickets()) == 1
    assert env.ticket(t["ref"])["status"] == "open"
    assert "reopened" in [e["kind"] for e in env.ticket(t["ref"])["events"]]


@pytest.mark.parametrize("status, days_ago", [("resolved", 30), ("closed", 0)])
def test_late_or_closed_reply_opens_a_linked_ticket(env: DeskEnv, status: str,
                                                    days_ago: int) -> None:
    t, notice = open_ticket(env)
    staff_reply(env, notice, "paul@agency.test", f"#status {status}\n\nDone.")
    with env.session() as s:
        s.execute(update(Ticket).values(resolved_at=utcnow() - timedelta(days=days_ago)))
        s.commit()
    [relay] = [m for m in env.client_mail() if "Done." in body(m)]
    env.drop(reply_to(relay, sender="client@client.test", body="New problem today."))
    env.desk("run", "--once")
    tickets = env.tickets()
    assert len(tickets) == 2
    assert env.ticket(t["ref"])["status"] == status
    with env.session() as s:
        new = s.get(Ticket, tickets[1]["id"])
        assert new is not None and new.linked_ticket_id == t["id"]


PROMISES = {
    "a@retainer.test": "retainer",
    "a@project.test": "project scope",
    "a@past.test": "best-effort",
    "a@hosting.test": "costed estimate",
    "a@hostsla.test": "Hosting with SLA",
    "a@client.test": "Support & SLA plan",
    "a@unknown.test": "do not recognise",
}


def test_each_tier_acknowledgement_names_the_right_promise(env: DeskEnv) -> None:
    for sender in PROMISES:
        env.drop(make_mail(sender=f"Ann Example <{sender}>", subject=f"Hello from {sender}"))
    env.desk("run", "--once")
    for sender, promise in PROMISES.items():
        [ack] = env.sent_to(sender)
        text = body(ack)
        assert promise in said(text), sender
        assert "Hello Ann," in text
        html = ack.get_body(("html",))
        assert html is not None and promise.replace("&", "&amp;") in html.get_content()
        if sender != "a@hosting.test":
            assert "by " in text and "your time" in text  # a real local time
        else:
            assert "within 3 working days" in text  # courtesy, no clock


def test_message_text_is_inert_in_templates(env: DeskEnv) -> None:
    env.drop(make_mail(sender='"{{ 7*7 }} <b>x</b>" <client@client.test>',
                       subject="{{ 7*7 }} {{ config }} <script>alert(1)</script> {% raw %}"))
    env.desk("run", "--once")
    [ack] = env.client_mail()
    text = body(ack)
    assert "({{ 7*7 }} {{ config }} <script>alert(1)</script> {% raw %})" in said(text)
    # The name is data too, never evaluated; and it names no person, so no name is used.
    assert text.splitlines()[0] == "Hello," and "49" not in text
    html = ack.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content() and "&lt;script&gt;" in html.get_content()


def test_agency_template_override(env: DeskEnv) -> None:
    overrides = env.root / "templates"
    overrides.mkdir()
    (overrides / "ack_support_sla.txt.j2").write_text("Custom hello for #{{ ref }}.\n")
    env.drop(make_mail())
    env.desk("run", "--once")
    [ack] = env.client_mail()
    assert body(ack).startswith("Custom hello for #1.")
    out = env.desk("templates", "preview", "ack_support_sla").stdout
    assert out.startswith("Custom hello for #")


def test_new_owner_is_told_about_an_assignment(env: DeskEnv) -> None:
    t, notice = open_ticket(env)
    staff_reply(env, notice, "paul@agency.test", "#assign ben@agency.test")
    [told] = env.sent_to("ben@agency.test")
    assert told["Subject"].startswith("Assigned to you") and "is now yours" in body(told)
    env.desk("tickets", "set", t["ref"], "--owner", "alice@agency.test")
    env.desk("run", "--once")  # the CLI queues; the daemon delivers
    assert [m["Subject"][:15] for m in env.sent_to("alice@agency.test")] == ["Assigned to you"]
    assert len(env.sent_to("paul@agency.test")) == 1  # the one who assigned: no notice
