"""The whole journey on the embedded defaults (SQLite, Maildir in and out), driven by the
real `desk` command: mail in -> ticket -> acknowledgement, exactly once."""

from __future__ import annotations

from pathlib import Path

from tests.support import DeskEnv, make_mail, reply_to


def test_new_mail_becomes_one_ticket_with_one_acknowledgement(env: DeskEnv) -> None:
    env.drop(make_mail(message_id="<first@client.test>"))
    out = env.desk("run", "--once").stdout
    assert "1 new ticket," in out

    [t] = env.tickets()
    assert t["client"] == "Client Co" and t["tier"] == "support_sla"
    assert t["requester"] == "client@client.test" and t["assignee"] == "paul@agency.test"
    assert t["message_count"] == 2  # the client's mail and our acknowledgement

    [ack] = env.client_mail()
    assert ack["To"].addresses[0].addr_spec == "client@client.test"
    assert ack["Subject"] == f"[#{t['ref']}] Contact form broken"
    assert ack["In-Reply-To"] == "<first@client.test>"
    assert "<first@client.test>" in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["Message-ID"].endswith("@agency.test>")
    assert ack["Reply-To"].addresses[0].addr_spec.startswith(f"support+{t['ref']}.")
    body = ack.get_body(("plain",)).get_content()
    assert f"#{t['ref']}" in body and "Paul Porter" in body and "your time" in body

    detail = env.ticket(t["ref"])
    [out_msg] = [m for m in detail["messages"] if m["direction"] == "out" and not m["internal"]]
    assert f"<{out_msg['message_id']}>" == ack["Message-ID"]  # our Message-ID is stored
    # The owner got a notice with the facts and a Reply-To that threads into the ticket:
    # their own, not the client's (a reply there proves it was them).
    [notice] = env.sent_to("paul@agency.test")
    own = notice["Reply-To"].addresses[0].addr_spec
    assert own.startswith(f"support+{t['ref']}.s") and notice["Reply-To"] != ack["Reply-To"]
    assert notice["Auto-Submitted"] == "auto-generated"
    text = notice.get_body(("plain",)).get_content()
    assert "Client Co" in text and "support_sla" in text and "#note" in text
    kinds = [e["kind"] for e in detail["events"]]
    assert kinds[:4] == ["classified", "threaded", "assigned", "acknowledged"]

    # A second run finds nothing new and sends nothing.
    assert "ingested 0" in env.desk("run", "--once").stdout
    assert len(env.tickets()) == 1 and len(env.client_mail()) == 1


def test_reply_to_the_acknowledgement_threads_into_the_same_ticket(env: DeskEnv) -> None:
    env.drop(make_mail())
    env.desk("run", "--once")
    [ack] = env.client_mail()
    env.drop(reply_to(ack, sender="Carol Client <client@client.test>", body="Here is more."))
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["message_count"] == 3
    assert len(env.client_mail()) == 1  # replies to an open ticket are not acknowledged again
    # ...but the owner hears about it.
    assert len(env.sent_to("paul@agency.test")) == 2
    detail = env.ticket(t["ref"])
    assert "Here is more." in detail["messages"][-1]["body_text"]


def test_same_message_id_twice_is_processed_once(env: DeskEnv) -> None:
    raw = make_mail(message_id="<dup@client.test>")
    env.drop(raw, "a")
    env.drop(raw, "b")
    out = env.desk("run", "--once").stdout
    assert "1 duplicate," in out
    assert len(env.tickets()) == 1 and len(env.client_mail()) == 1


def test_processed_files_move_to_cur_only_after_commit(env: DeskEnv) -> None:
    env.drop(make_mail(), "one")
    env.desk("run", "--once")
    inbox = env.root / "inbox"
    assert list((inbox / "new").iterdir()) == []
    assert [p.name for p in (inbox / "cur").iterdir()] == ["one:2,S"]


def test_broken_message_is_quarantined_and_the_run_continues(env: DeskEnv) -> None:
    env.drop(b"no headers at all, just words\n", "broken")
    env.drop(make_mail(subject="Fine message"), "fine")
    proc = env.desk("run", "--once")
    assert "1 quarantined" in proc.stdout
    [t] = env.tickets()
    assert t["subject"] == "Fine message"
    [q] = env.desk_json("quarantine", "list")
    assert "From" in q["reason"] and q["status"] == "held"
    shown = env.desk_json("quarantine", "show", str(q["id"]))
    assert "no headers at all" in shown["raw"]
    # Retrying does not help this one; it stays held. Dropping hides it.
    assert env.desk("quarantine", "retry", str(q["id"]), check=False).returncode == 1
    env.desk("quarantine", "drop", str(q["id"]))
    assert env.desk_json("quarantine", "list") == []


def test_quarantine_retry_processes_once_the_cause_is_fixed(tmp_path: Path) -> None:
    # Over the size cap: quarantined; the admin raises the cap and retries: ticketed once.
    capped = DeskEnv(tmp_path / "capped", extra={"intake": {"max_message_bytes": 2000}})
    capped.drop(make_mail(body="x" * 5000, message_id="<big@client.test>"))
    capped.desk("run", "--once")
    [q] = capped.desk_json("quarantine", "list")
    assert "cap" in q["reason"]
    capped.config.write_text(capped.config.read_text().replace(
        "max_message_bytes = 2000", "max_message_bytes = 2000000"))
    assert "ticket #1" in capped.desk("quarantine", "retry", str(q["id"])).stdout
    assert capped.desk_json("quarantine", "list") == []
    assert [e["status"] for e in capped.desk_json("quarantine", "list", "--all")] == ["retried"]
    capped.desk("run", "--once")
    assert len(capped.tickets()) == 1 and len(capped.client_mail()) == 1
    # Retrying again is refused: it is no longer held.
    assert capped.desk("quarantine", "retry", str(q["id"]), check=False).returncode == 1
    capped.close()


def test_auto_replies_are_ticketed_but_never_acknowledged(env: DeskEnv) -> None:
    env.drop(make_mail(subject="Out of office", headers={"Auto-Submitted": "auto-replied"}))
    env.drop(make_mail(sender="MAILER-DAEMON@client.test", subject="Undeliverable"))
    env.drop(make_mail(sender="news@client.test", subject="Newsletter",
                       headers={"List-Id": "<news.client.test>", "Precedence": "bulk"}))
    env.desk("run", "--once")
    assert len(env.tickets()) == 3
    assert env.sent() == []
    for t in env.tickets():
        assert "ack_suppressed" in [e["kind"] for e in env.ticket(t["ref"])["events"]]


def test_acknowledgements_are_rate_capped_per_sender(env: DeskEnv) -> None:
    for i in range(12):
        env.drop(make_mail(subject=f"Question number {i}"))
    env.drop(make_mail(subject="Question number 0"))  # same subject again
    env.desk("run", "--once")
    assert len(env.tickets()) == 13
    assert len(env.client_mail()) == 10  # default cap: 10 per sender per 3 hours


def test_unknown_sender_goes_to_triage(env: DeskEnv) -> None:
    env.drop(make_mail(sender="Marco <marco@prospect.test>", subject="Quote please"))
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["client"] is None and t["tier"] is None and t["assignee"] == "alice@agency.test"
    assert "unknown sender" in " ".join(e["detail"] for e in env.ticket(t["ref"])["events"])
    [ack] = env.client_mail()
    assert "account manager" in ack.get_body(("plain",)).get_content()


def test_stranger_quoting_a_reference_gets_a_new_ticket(env: DeskEnv) -> None:
    env.drop(make_mail())
    env.desk("run", "--once")
    [first] = env.tickets()
    env.drop(make_mail(sender="mallory@evil.test", subject=f"Re: [#{first['ref']}] hi"))
    env.desk("run", "--once")
    tickets = env.tickets()
    assert len(tickets) == 2 and tickets[1]["requester"] == "mallory@evil.test"
    assert env.ticket(first["ref"])["message_count"] == 2  # untouched
    refused = [e for e in env.ticket(first["ref"])["events"] if e["kind"] == "thread_refused"]
    assert refused and "mallory@evil.test" in refused[0]["detail"]


def test_directory_changes_apply_to_the_next_message(env: DeskEnv) -> None:
    env.desk("client", "add", "New Co", "--tier", "hosting_sla", "--domain", "newco.test",
             "--project-manager", "ben@agency.test")
    env.drop(make_mail(sender="a@newco.test"))
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["client"] == "New Co" and t["assignee"] == "ben@agency.test"


def test_init_is_safe_to_run_twice(env: DeskEnv) -> None:
    assert "revision" in env.desk("init").stdout
    assert len(env.desk_json("staff", "list")) == 5


def test_bounce_joins_the_ticket_of_the_mail_that_bounced(env: DeskEnv) -> None:
    env.drop(make_mail(sender="client@client.test"))
    env.desk("run", "--once")
    [ack] = env.client_mail()
    dsn = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.client.test>\r\n"
        "To: support@agency.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.client.test>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.client.test\r\n"
        "\r\nFinal-Recipient: rfc822; client@client.test\r\nAction: failed\r\n"
        "Status: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {ack['Message-ID']}\r\nSubject: {ack['Subject']}\r\n\r\n--B--\r\n"
    ).encode()
    env.drop(dsn)
    env.desk("run", "--once")
    [t] = env.tickets()  # no new ticket for the bounce
    events = env.ticket(t["ref"])["events"]
    assert any(e["kind"] == "bounce" and "client@client.test" in e["detail"] for e in events)
    assert len(env.client_mail()) == 1  # and certainly no reply to MAILER-DAEMON
    with env.session() as s:
        from sqlalchemy import select

        from desk.store.models import Contact

        assert s.scalar(select(Contact.bouncing).where(Contact.email == "client@client.test"))


def test_attachment_over_the_cap_keeps_metadata_and_notes_the_ticket(tmp_path: Path) -> None:
    env = DeskEnv(tmp_path / "cap", extra={"intake": {"max_attachment_bytes": 1000}})
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "client@client.test", "support@agency.test", "Logo"
    m["Message-ID"] = "<att@client.test>"
    m.set_content("New logo attached.")
    m.add_attachment(b"\x89PNG" + b"x" * 5000, maintype="image", subtype="png",
                     filename="logo.png")
    m.add_attachment(b"small", maintype="text", subtype="plain", filename="notes.txt")
    env.drop(m.as_bytes())
    env.desk("run", "--once")
    [t] = env.tickets()
    detail = env.ticket(t["ref"])
    atts = {a["filename"]: a for a in detail["messages"][0]["attachments"]}
    assert atts["logo.png"]["stored"] is False and atts["logo.png"]["size"] >= 5000
    assert atts["notes.txt"]["stored"] is True
    assert any(e["kind"] == "attachment_not_stored" and "logo.png" in e["detail"]
               for e in detail["events"])
    env.close()
