"""Mail over `[intake] max_message_bytes` on a real Dovecot: never downloaded, quarantined by
its headers and size, left on the server unflagged and not listed again; after the cap is
raised `desk quarantine retry` fetches it by UIDVALIDITY/UID, tickets it and marks it
processed at the source."""

from __future__ import annotations

import re

import pytest

from tests.servers import Dovecot, SmtpCapture
from tests.support import (
    SUPPORT_USER,
    DeskEnv,
    EnvFactory,
    imap_mailbox,
    make_mail,
    smtp_to,
)

CAP = 20_000
RAISED = 2_000_000
BODY_MARK = "BODY-LINE-OF-THE-BIG-ONE"


@pytest.fixture
def env(imap: Dovecot, smtp_capture: SmtpCapture, make_env: EnvFactory) -> DeskEnv:
    return make_env(mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture),
                    extra={"intake": {"max_message_bytes": CAP}})


def big_mail() -> bytes:
    return make_mail(subject="Huge server logs attached", message_id="<big-1@client.test>",
                     body=f"{BODY_MARK} and then some padding to make it long\n" * 1000)


def raise_cap(env: DeskEnv) -> None:
    text = env.config.read_text()
    assert f"max_message_bytes = {CAP}" in text
    env.config.write_text(text.replace(f"max_message_bytes = {CAP}",
                                       f"max_message_bytes = {RAISED}"))


def flags_by_uid(imap: Dovecot) -> dict[int, set[str]]:
    return {m.uid: m.flags for m in imap.fetch_all(SUPPORT_USER)}


def held(env: DeskEnv) -> list[dict[str, object]]:
    return list(env.desk_json("quarantine", "list"))


def test_oversized_mail_waits_on_the_server_until_retried(env: DeskEnv, imap: Dovecot) -> None:
    first = imap.append(SUPPORT_USER, make_mail(subject="Small before",
                                                message_id="<small-1@client.test>"))
    big = imap.append(SUPPORT_USER, raw := big_mail())
    after = imap.append(SUPPORT_USER, make_mail(subject="Small after",
                                                message_id="<small-2@client.test>"))
    assert len(raw) > CAP

    out = env.desk("run", "--once").stdout
    assert "2 new tickets" in out and "1 quarantined" in out, out
    assert sorted(t["subject"] for t in env.tickets()) == ["Small after", "Small before"]

    [entry] = held(env)
    assert entry["subject"] == "Huge server logs attached"
    assert str(entry["source"]).endswith(f":{imap.uidvalidity(SUPPORT_USER)}:{big}")
    # Listed with its real size (the server's RFC822.SIZE), not the headers' length.
    size = re.search(r"message is ([\d,]+) bytes", str(entry["reason"]))
    assert size and int(size.group(1).replace(",", "")) >= len(raw) - 50, entry["reason"]
    # Headers only: the body never left the server.
    stored = env.desk("quarantine", "show", str(entry["id"]), "--raw").stdout
    assert "Subject: Huge server logs attached" in stored and BODY_MARK not in stored
    assert int(str(entry["size"])) < 2000

    # Left on the server as it was; the small ones around it are done.
    flags = flags_by_uid(imap)
    assert "\\Seen" not in flags[big]
    assert "\\Seen" in flags[first] and "\\Seen" in flags[after]

    # Not listed again on the next sync, and what comes after it still flows.
    imap.append(SUPPORT_USER, make_mail(subject="Later", message_id="<small-3@client.test>"))
    out = env.desk("run", "--once").stdout
    assert "ingested 1 " in out and "0 quarantined" in out, out
    assert len(held(env)) == 1

    # Still too big: retry says so and changes nothing.
    refused = env.desk("quarantine", "retry", str(entry["id"]), check=False)
    assert refused.returncode == 1 and "over the 20,000 byte cap" in refused.stderr, refused
    assert "\\Seen" not in flags_by_uid(imap)[big]

    raise_cap(env)
    done = env.desk("quarantine", "retry", str(entry["id"])).stdout
    assert f"quarantine {entry['id']} processed: ticket #" in done, done
    [ticket] = [t for t in env.tickets() if t["subject"] == "Huge server logs attached"]
    assert BODY_MARK in env.ticket(ticket["ref"])["messages"][0]["body_text"]
    assert "\\Seen" in flags_by_uid(imap)[big]  # acknowledged at the source
    assert held(env) == []

    # Nothing comes twice: the sync after the retry has nothing new.
    out = env.desk("run", "--once").stdout
    assert "ingested 0 " in out and "0 quarantined" in out, out
    assert len(env.tickets()) == 4


def test_retry_moves_it_to_the_processed_folder(imap: Dovecot, smtp_capture: SmtpCapture,
                                                make_env: EnvFactory) -> None:
    with imap.connect(SUPPORT_USER) as c:
        c.create_folder("Done")
    env = make_env(mailbox=imap_mailbox(imap, processed_folder="Done"),
                   smtp=smtp_to(smtp_capture), extra={"intake": {"max_message_bytes": CAP}})
    imap.append(SUPPORT_USER, big_mail())
    env.desk("run", "--once")
    assert len(imap.fetch_all(SUPPORT_USER)) == 1  # not moved: left where it was
    [entry] = held(env)
    raise_cap(env)
    env.desk("quarantine", "retry", str(entry["id"]))
    assert imap.fetch_all(SUPPORT_USER) == []
    [moved] = imap.fetch_all(SUPPORT_USER, "Done")
    assert BODY_MARK.encode() in moved.raw


def test_retry_after_the_message_is_gone_says_so(env: DeskEnv, imap: Dovecot) -> None:
    imap.append(SUPPORT_USER, big_mail())
    env.desk("run", "--once")
    [entry] = held(env)
    imap.reset_mailbox(SUPPORT_USER)  # someone deleted it on the server
    raise_cap(env)
    gone = env.desk("quarantine", "retry", str(entry["id"]), check=False)
    assert gone.returncode == 1
    assert "is no longer in INBOX" in gone.stderr, gone.stderr
    assert len(held(env)) == 1  # kept: the admin decides (drop)


def test_uidvalidity_change_is_refused_then_followed(env: DeskEnv, imap: Dovecot) -> None:
    imap.append(SUPPORT_USER, make_mail(subject="Small", message_id="<small-1@client.test>"))
    imap.append(SUPPORT_USER, big_mail())
    env.desk("run", "--once")
    [entry] = held(env)
    old, new = imap.uidvalidity(SUPPORT_USER), imap.reset_uidvalidity(SUPPORT_USER)

    refused = env.desk("quarantine", "retry", str(entry["id"]), check=False)
    assert refused.returncode == 1
    assert f"UIDVALIDITY of INBOX changed from {old} to {new}" in refused.stderr, refused.stderr

    # The re-scan finds it at its new UID and the entry follows it (no second entry); the
    # small one is known by its Message-ID.
    out = env.desk("run", "--once").stdout
    assert "0 new tickets" in out and "0 quarantined" in out, out
    [moved] = held(env)
    assert moved["id"] == entry["id"] and str(moved["source"]).split(":")[-2] == str(new)

    raise_cap(env)
    done = env.desk("quarantine", "retry", str(entry["id"])).stdout
    assert "processed: ticket #" in done
    assert sorted(t["subject"] for t in env.tickets()) == ["Huge server logs attached", "Small"]
