"""Attachments and formatting travel both ways, over a real Dovecot and a real SMTP server:
the client's files and inline images reach the owner's notice; a staff reply's files,
links and formatting reach the client without the quoted history; a file too big for a
mail stops the reply with a "Not done"; a held junior reply keeps its files through the
approval. The mail is shaped like what Gmail, Apple Mail, Outlook and Thunderbird send
(tests/fixtures/clients/)."""

from __future__ import annotations

import base64
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from desk.store.models import Outbox
from tests.servers import Dovecot, SmtpCapture
from tests.support import (
    SUPPORT_USER,
    DeskEnv,
    EnvFactory,
    imap_mailbox,
    make_mail,
    smtp_to,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients"
PAUL = "Paul Porter <paul@agency.test>"
PDF = base64.b64decode(
    "JVBERi0xLjQKMSAwIG9iajw8L1R5cGUvQ2F0YWxvZy9QYWdlcyAyIDAgUj4+ZW5kb2JqIDIgMCBvYmo8PC9U"
    "eXBlL1BhZ2VzL0tpZHNbXS9Db3VudCAwPj5lbmRvYmoKdHJhaWxlcjw8L1Jvb3QgMSAwIFI+PgolJUVPRgo=")


@pytest.fixture
def env(imap: Dovecot, smtp_capture: SmtpCapture, make_env: EnvFactory) -> DeskEnv:
    return make_env(mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture))


# -- helpers ------------------------------------------------------------------------
def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def readdress(raw: bytes, *, sender: str | None = None, to: str | None = None,
              answers: EmailMessage | None = None, message_id: str | None = None) -> bytes:
    """The fixture as this test's sender would send it: to the address they answer, in the
    thread of the mail they answer."""
    msg = message_from_bytes(raw, policy=policy.compat32)
    changes: dict[str, str | None] = {"From": sender, "To": to, "Message-ID": message_id}
    if answers is not None:
        changes["To"] = to or str(answers["Reply-To"])
        changes["In-Reply-To"] = str(answers["Message-ID"])
        changes["References"] = str(answers["Message-ID"])
        changes["Subject"] = f"Re: {answers['Subject']}"
    for name, value in changes.items():
        if value is not None:
            del msg[name]
            msg[name] = value
    return msg.as_bytes()


def run(env: DeskEnv, imap: Dovecot, raw: bytes) -> None:
    imap.append(SUPPORT_USER, raw)
    env.desk("run", "--once")


def mail_to(smtp: SmtpCapture, who: str) -> list[EmailMessage]:
    return [m.msg for m in smtp.messages() if who in m.rcpt_tos]


def client_mail(smtp: SmtpCapture) -> list[EmailMessage]:
    return [m.msg for m in smtp.messages() if not m.rcpt_tos[0].endswith("@agency.test")]


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(mail: EmailMessage) -> str:
    part = mail.get_body(("html",))
    assert part is not None, "no HTML part"
    return str(part.get_content())


def files(mail: EmailMessage) -> dict[str, bytes]:
    return {str(p.get_filename()): p.get_payload(decode=True) for p in mail.iter_attachments()}


def inline_images(mail: EmailMessage) -> dict[str, bytes]:
    """Content-ID -> bytes of the images shown in the HTML (multipart/related)."""
    found: dict[str, bytes] = {}
    for part in mail.walk():
        if part.get("Content-ID") and part.get_content_maintype() == "image":
            found[str(part["Content-ID"]).strip("<>")] = part.get_payload(decode=True)
    return found


def open_ticket(env: DeskEnv, imap: Dovecot, smtp: SmtpCapture,
                raw: bytes | None = None) -> tuple[dict[str, Any], EmailMessage]:
    """A client's ticket (Client Co: Paul owns it); returns it and Paul's notice."""
    run(env, imap, raw or make_mail(message_id="<start@client.test>",
                                    subject="Checkout page shows an error"))
    t = env.tickets()[-1]
    notice = [m for m in mail_to(smtp, "paul@agency.test")
              if f"[#{t['ref']}]" in str(m["Subject"])][-1]
    return t, notice


def staff_mail(sender: str, notice: EmailMessage, text: str, *,
               html: str | None = None, attach: list[tuple[str, bytes, str]] = ()) -> bytes:
    """What a staff member's mail program sends when they answer ``notice``."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = str(notice["Reply-To"])
    msg["Subject"] = f"Re: {notice['Subject']}"
    msg["Message-ID"] = f"<staff.{abs(hash((text, sender)))}@agency.test>"
    msg["In-Reply-To"] = str(notice["Message-ID"])
    msg["References"] = str(notice["Message-ID"])
    msg["Date"] = "Mon, 23 Nov 2026 11:00:00 +0000"
    msg.set_content(text + "\n\nOn Mon, 23 Nov 2026, Agency Support wrote:\n> earlier text\n")
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for name, data, ctype in attach:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


# -- client -> staff ----------------------------------------------------------------
def test_a_clients_inline_image_and_attachment_reach_the_owners_notice(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture, tmp_path: Path) -> None:
    sent = message_from_bytes(fixture("gmail_new_ticket.eml"), policy=policy.default)
    originals = {str(p.get_filename()): p.get_content() for p in sent.walk()
                 if p.get_filename()}
    t, notice = open_ticket(env, imap, smtp_capture, fixture("gmail_new_ticket.eml"))

    # The inline image stays where it stood in the HTML part, and travels with it.
    html = html_of(notice)
    assert '<img src="cid:ii_mi9k2j9m0"' in html and "<b>Pay now</b>" in html
    assert inline_images(notice)["ii_mi9k2j9m0"] == originals["checkout-error.png"]
    # The screenshot attached beside the text is attached to the notice.
    assert files(notice) == {"console.png": originals["console.png"]}
    text = text_of(notice)
    assert "[image: checkout-error.png]" in text
    assert "1. checkout-error.png (image/png" in text and "2. console.png (image/png" in text

    [message] = [m for m in env.ticket(t["ref"])["messages"] if m["direction"] == "in"]
    assert [(a["index"], a["name"], a["type"], a["inline"], a["kept"])
            for a in message["attachments"]] == [
        (1, "checkout-error.png", "image/png", True, True),
        (2, "console.png", "image/png", False, True)]
    assert message["attachments"][1]["size"] == len(originals["console.png"])
    out = tmp_path / "console.png"
    env.desk("tickets", "attachment", t["ref"], "2", "--out", str(out))
    assert out.read_bytes() == originals["console.png"]
    assert out.stat().st_mode & 0o077 == 0  # a client's file: its owner's only
    shown = env.desk("tickets", "show", t["ref"]).stdout
    assert "[attachment 1 inline] checkout-error.png" in shown
    assert "[attachment 2] console.png" in shown


def test_outlook_winmail_dat_is_listed_by_name(env: DeskEnv, imap: Dovecot,
                                               smtp_capture: SmtpCapture) -> None:
    t, notice = open_ticket(env, imap, smtp_capture, fixture("outlook_winmail.eml"))
    assert "1. winmail.dat (application/ms-tnef" in text_of(notice)
    assert "winmail.dat" in files(notice)
    assert notice.get_body(("html",)) is None  # a plain-text mail: a plain-text notice
    [message] = [m for m in env.ticket(t["ref"])["messages"] if m["direction"] == "in"]
    assert [a["name"] for a in message["attachments"]] == ["winmail.dat"]


def test_a_plain_mail_gets_the_plain_notice_it_always_had(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    _, notice = open_ticket(env, imap, smtp_capture)
    assert not notice.is_multipart() and notice.get_content_type() == "text/plain"
    assert "Attachments:" not in text_of(notice)


def test_a_plain_mail_costs_no_attachment_work(make_env: EnvFactory) -> None:
    """The backlog's commonest mail (plain text, no files): its journey, notice included,
    touches the attachments table not once, and builds no MIME beyond the text part."""
    env = make_env("plain")
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        env.drop(make_mail(message_id="<plain@client.test>"))
        env.drop(make_mail(message_id="<plain2@client.test>", subject="Re: [#1] Contact form",
                           in_reply_to="<plain@client.test>"))
        env.desk("run", "--once")
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert len(env.tickets()) == 1 and env.ticket(1)["message_count"] >= 2
    assert any("INSERT INTO messages" in q for q in statements)
    assert not [q for q in statements if "attachments" in q]
    notices = env.sent_to("paul@agency.test")
    assert len(notices) == 2 and all(not m.is_multipart() for m in notices)


def test_files_beyond_the_cap_are_listed_with_how_to_get_them(
        imap: Dovecot, smtp_capture: SmtpCapture, make_env: EnvFactory,
        tmp_path: Path) -> None:
    env = make_env(mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture),
                   extra={"notices": {"max_attachment_bytes": 5000},
                          "intake": {"max_attachment_bytes": 6000}})
    raw = EmailMessage()
    raw["From"], raw["To"] = "Carol Client <client@client.test>", "support@agency.test"
    raw["Subject"], raw["Message-ID"] = "Logs", "<logs@client.test>"
    raw.set_content("Our logs are attached.\n")
    small, middle, big = b"s" * 1000, b"m" * 4500, b"b" * 8000
    for name, data in (("small.txt", small), ("middle.log", middle), ("big.log", big)):
        raw.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    t, notice = open_ticket(env, imap, smtp_capture, raw.as_bytes())

    assert files(notice) == {"small.txt": small}
    text = text_of(notice)
    ref = t["ref"]
    assert "2. middle.log (application/octet-stream, 4 KB)" in text
    assert "not attached: over the 5 KB a mail may carry" in text
    assert f"desk tickets attachment {ref} 2 --out middle.log" in text
    assert "reply with #attachments 2" in text
    assert "3. big.log" in text and "not kept by desk" in text
    [message] = [m for m in env.ticket(ref)["messages"] if m["direction"] == "in"]
    assert [a["kept"] for a in message["attachments"]] == [True, True, False]
    # Kept as metadata only, but the original mail still holds it.
    out = tmp_path / "big.log"
    env.desk("tickets", "attachment", ref, "3", "--out", str(out))
    assert out.read_bytes() == big

    # #attachments: every file that fits a mail, to the one who asked, a mail per cap.
    before = len(mail_to(smtp_capture, "paul@agency.test"))
    run(env, imap, staff_mail(PAUL, notice, "#attachments"))
    answers = mail_to(smtp_capture, "paul@agency.test")[before:]
    assert [sorted(files(m)) for m in answers] == [["small.txt"], ["middle.log"]]
    assert "big.log" in text_of(answers[0]) and "not kept by desk" in text_of(answers[0])
    assert len(client_mail(smtp_capture)) == 1  # the acknowledgement, nothing more


def test_an_apple_mail_reply_keeps_its_image_inline_without_the_history(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    open_ticket(env, imap, smtp_capture)
    [ack] = client_mail(smtp_capture)
    run(env, imap, readdress(fixture("apple_mail_reply.eml"), answers=ack))
    [notice] = [m for m in mail_to(smtp_capture, "paul@agency.test")
                if str(m["Subject"]).startswith("Client replied")]
    html = html_of(notice)
    assert 'src="cid:5C0B3A1E-8D2F-4F6A-B7C9-0E1D2C3B4A59"' in html
    assert "The checkout works again" not in html  # the quoted history
    assert "5C0B3A1E-8D2F-4F6A-B7C9-0E1D2C3B4A59" in inline_images(notice)
    text = text_of(notice)
    # Apple's text part leaves an empty line where the image was: the notice names it.
    assert re.search(r"looks like this:\s+\[image: IMG_0042\.png\]\s+Carol", text)
    assert "The checkout works again" not in text.split("-------------------------")[0]


def test_a_thunderbird_reply_loses_its_cite_prefix_history_and_signature(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    open_ticket(env, imap, smtp_capture)
    [ack] = client_mail(smtp_capture)
    run(env, imap, readdress(fixture("thunderbird_reply.eml"), answers=ack))
    [notice] = [m for m in mail_to(smtp_capture, "paul@agency.test")
                if str(m["Subject"]).startswith("Client replied")]
    html = html_of(notice)
    assert "still not sent" in html and 'src="cid:part1.Xy7Qa2Zb.Lm3Nc4Od@client.test"' in html
    assert "wrote:" not in html and "The checkout works again" not in html
    assert "Client Co</pre>" not in html  # the signature
    assert "[image: mail-log.png]" in text_of(notice)


# -- staff -> client ----------------------------------------------------------------
def test_the_owners_reply_with_a_pdf_and_a_link_reaches_the_client(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    t, notice = open_ticket(env, imap, smtp_capture)
    run(env, imap, readdress(fixture("gmail_reply.eml"), sender=PAUL, answers=notice))

    [relay] = [m for m in client_mail(smtp_capture) if "Best," in text_of(m)]
    assert files(relay) == {"invoice-4711.pdf": PDF}
    html = html_of(relay)
    assert '<a href="https://status.agency.test/changes/4711"' in html
    assert "<b>expired</b>" in html
    for history in ("New ticket #1", "their message", "wrote:", "Project Manager"):
        assert history not in html and history not in text_of(relay)
    assert "The checkout works again" in text_of(relay)  # the text part stays readable
    assert relay["Auto-Submitted"] is None
    kinds = [e["kind"] for e in env.ticket(t["ref"])["events"]]
    assert "replied" in kinds and "first_response" in kinds


def test_an_outlook_reply_keeps_its_formatting_and_logo_but_not_the_history(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    _, notice = open_ticket(env, imap, smtp_capture)
    run(env, imap, readdress(fixture("outlook_reply.eml"), sender=PAUL, answers=notice))
    [relay] = [m for m in client_mail(smtp_capture) if "cleared the server cache" in
               text_of(m)]
    html = html_of(relay)
    assert "<b>under two seconds</b>" in html and "<li>the payment plugin was updated</li>" in html
    assert "From:" not in html and "You are its worker" not in html
    assert "<style" not in html and "<o:p>" not in html
    # The signature logo is shown; the image Outlook re-attached from the history is not.
    assert set(inline_images(relay)) == {"image001.png@01DB3F2A.5C8E1B90"}
    assert files(relay) == {}


def test_a_reply_attachment_over_the_cap_is_not_done_and_nothing_reaches_the_client(
        imap: Dovecot, smtp_capture: SmtpCapture, make_env: EnvFactory) -> None:
    env = make_env(mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture),
                   extra={"notices": {"max_attachment_bytes": 4096}})
    t, notice = open_ticket(env, imap, smtp_capture)
    clients_before = len(client_mail(smtp_capture))
    run(env, imap, staff_mail(PAUL, notice, "#status waiting\n\nHere is the full export.",
                              attach=[("export.zip", b"z" * 10_000, "application/zip")]))

    assert len(client_mail(smtp_capture)) == clients_before
    [refusal] = [m for m in mail_to(smtp_capture, "paul@agency.test")
                 if str(m["Subject"]).startswith("Not done")]
    text = text_of(refusal)
    assert "export.zip" in text and "4 KB" in text
    after = env.ticket(t["ref"])
    assert after["status"] == t["status"]  # the command did not run either
    assert any(e["kind"] == "command_refused" and "export.zip" in e["detail"]
               for e in after["events"])


def test_a_held_junior_reply_keeps_its_files_and_formatting_through_approval(
        env: DeskEnv, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    t, _ = open_ticket(env, imap, smtp_capture)
    env.desk("tickets", "set", t["ref"], "--owner", "jo@agency.test")  # joins as a worker
    env.desk("run", "--once")
    [jo_notice] = mail_to(smtp_capture, "jo@agency.test")
    clients_before = len(client_mail(smtp_capture))
    html = ('<div dir="ltr">Hello Carol, the <b>patch</b> is attached; details on '
            '<a href="https://status.agency.test/p/9">the status page</a>.</div>'
            '<div class="gmail_quote"><blockquote class="gmail_quote">old</blockquote></div>')
    run(env, imap, staff_mail("Jo Junior <jo@agency.test>", jo_notice,
                              "Hello Carol, the patch is attached.", html=html,
                              attach=[("patch.diff", b"--- a\n+++ b\n", "text/x-diff")]))
    assert len(client_mail(smtp_capture)) == clients_before  # held
    [request] = [m for m in mail_to(smtp_capture, "paul@agency.test")
                 if str(m["Subject"]).startswith("Approve")]
    assert "patch.diff" in text_of(request)
    with env.session() as s:
        held = s.scalar(select(Outbox).where(Outbox.status == "held"))
        assert held is not None
        held_bytes = held.raw

    run(env, imap, staff_mail(PAUL, request, "#approve"))
    [relay] = client_mail(smtp_capture)[clients_before:]
    assert files(relay) == {"patch.diff": b"--- a\n+++ b\n"}
    assert '<a href="https://status.agency.test/p/9"' in html_of(relay)
    assert "old" not in html_of(relay)
    with env.session() as s:
        sent = s.scalar(select(Outbox).where(Outbox.kind == "relay"))
        assert sent is not None and sent.status == "sent" and sent.raw == held_bytes
