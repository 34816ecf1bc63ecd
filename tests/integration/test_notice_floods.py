"""Notice floods: past [notices] max_per_staff notices in a window, an engineer gets the
rest as one summary mail, each ticket with their own reply address; clients' acks are
untouched, P1 pages never wait, and nothing is lost or told twice. Against the real SMTP
server, through `desk run --once` and through the daemon's own loops."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from urllib.parse import unquote

import pytest

from desk.config.settings import load_settings
from desk.daemon.supervisor import Daemon
from desk.routing.tokens import staff_token_address
from desk.store.models import Staff
from tests.servers import SmtpCapture
from tests.support import SECRET, DeskEnv, EnvFactory, make_mail, reply_to, smtp_to

MON_10 = "2026-11-23T10:00:00Z"
PAUL = "paul@agency.test"


@pytest.fixture
def env(smtp_capture: SmtpCapture, make_env: EnvFactory) -> DeskEnv:
    return make_env(smtp=smtp_to(smtp_capture),
                    extra={"notices": {"max_per_staff": 3, "window_minutes": 15}})


def to_paul(capture: SmtpCapture) -> list[EmailMessage]:
    return [m.msg for m in capture.messages() if m.rcpt_tos == [PAUL]]


def text(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html(mail: EmailMessage) -> str:
    part = mail.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def refs(subjects: list[str]) -> list[str]:
    return [re.search(r"\[#(\d+)\]", s).group(1) for s in subjects]  # type: ignore[union-attr]


def paul_address(env: DeskEnv, ref: str) -> str:
    with env.session() as s:
        paul = s.query(Staff).filter_by(email=PAUL).one()
        return staff_token_address(env.address, SECRET, ref, paul.id)


def flood(env: DeskEnv, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        env.drop(make_mail(sender=f"user{i}@client.test", subject=f"Request {i}"),
                 name=f"flood-{i:03d}.eml")


def test_past_the_cap_an_engineer_gets_one_summary_with_every_ticket(
        env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    flood(env, 8)
    assert "; 1 notice summary" in env.desk("run", "--once", "--now", MON_10).stdout
    mails = to_paul(smtp_capture)
    notices = [m for m in mails if str(m["Subject"]).startswith("New ticket")]
    [summary] = [m for m in mails if "more tickets for you" in str(m["Subject"])]
    assert len(mails) == 4 and len(notices) == 3
    # Each ticket once: told alone, or listed in the summary, never both.
    noticed = refs([str(m["Subject"]) for m in notices])
    listed = re.findall(r"^#(\d+) Request", text(summary), re.M)
    assert sorted(noticed + listed, key=int) == [str(n) for n in range(1, 9)]
    assert len(listed) == 5 and not set(noticed) & set(listed)
    assert str(summary["Subject"]).startswith("5 more tickets for you, 10:00-10:15")
    # A reply address per ticket, bound to Paul as a notice's is: in the text, and as a
    # mailto: link in the HTML.
    for ref in listed:
        address = paul_address(env, ref)
        assert f"Reply to: {address}" in text(summary)
        links = [unquote(h) for h in re.findall(r'href="(mailto:[^"]+)"', html(summary))]
        assert any(link.startswith(f"mailto:{address}?subject=Re:") for link in links)
    assert "Hello, the contact form" in text(summary)  # what each client wrote
    # The ticket itself says where its notice went.
    [event] = [e for e in env.ticket(listed[0])["events"] if e["kind"] == "notice_summarised"]
    assert "paul@agency.test" in event["detail"] and "10:00-10:15" in event["detail"]
    assert not [e for e in env.ticket(noticed[0])["events"] if e["kind"] == "notice_summarised"]
    # Clients are not affected: every one of them was acknowledged.
    acks = [m for m in smtp_capture.messages() if m.rcpt_tos[0].startswith("user")]
    assert len(acks) == 8
    # Nothing waits any more, and nothing is sent again by a later run.
    rows = env.desk_json("outbox", "list", "--all")
    assert {r["status"] for r in rows} <= {"sent", "summarised"}
    assert sum(r["status"] == "summarised" for r in rows) == 5
    env.desk("run", "--once", "--now", "2026-11-23T10:05:00Z")
    assert len(to_paul(smtp_capture)) == 4


def test_a_reply_written_from_the_summary_proves_the_engineer(
        env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    flood(env, 5)
    env.desk("run", "--once", "--now", MON_10)
    [summary] = [m for m in to_paul(smtp_capture) if "more tickets" in str(m["Subject"])]
    ref = re.findall(r"^#(\d+) Request", text(summary), re.M)[-1]
    link = re.search(rf'href="(mailto:[^"]*?{ref}\.s[^"]+)"', html(summary))
    assert link is not None
    address, _, query = unquote(link.group(1)).removeprefix("mailto:").partition("?")
    # A new mail to that address (no In-Reply-To, no header from the agency's server):
    # the bound address alone is Paul's proof.
    env.drop(make_mail(sender="Paul Porter <paul@agency.test>", to=address,
                       subject=query.removeprefix("subject="),
                       body="Hi, we are on it and will call you at 11."))
    env.desk("run", "--once", "--now", "2026-11-23T10:20:00Z")
    client = f"user{int(ref) - 1}@client.test"
    relayed = [m.msg for m in smtp_capture.messages() if m.rcpt_tos == [client]
               and "on it" in text(m.msg)]
    assert len(relayed) == 1
    assert "spoofed_staff" not in [e["kind"] for e in env.ticket(ref)["events"]]


def test_p1_pages_never_wait(env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    flood(env, 4)
    env.drop(make_mail(sender="ops@client.test", subject="Site down since 9:55"),
             name="flood-999.eml")
    env.desk("run", "--once", "--now", MON_10)
    notices = [str(m["Subject"]) for m in to_paul(smtp_capture)
               if str(m["Subject"]).startswith("New ticket")]
    assert any("Site down" in s and "(P1" in s for s in notices)
    [summary] = [m for m in to_paul(smtp_capture) if "more ticket" in str(m["Subject"])]
    assert "Site down" not in text(summary)


def test_a_clients_mail_loop_is_one_line_of_the_summary(
        env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    env.drop(make_mail(subject="Contact form broken"))
    env.desk("run", "--once", "--now", MON_10)
    [ack] = [m.msg for m in smtp_capture.messages() if m.rcpt_tos == ["client@client.test"]]
    for i in range(6):  # a forwarding rule gone wrong sends the same reply again and again
        env.drop(reply_to(ack, sender="Carol Client <client@client.test>",
                          body=f"Any news? ({i})"), name=f"loop-{i}.eml")
    # and someone else, who got the thread forwarded, answers it too
    env.drop(reply_to(ack, sender="Sid Stranger <sid@elsewhere.test>",
                      body="Please take me off this thread."), name="loop-x.eml")
    env.desk("run", "--once", "--now", "2026-11-23T10:05:00Z")
    mails = to_paul(smtp_capture)
    replies = [m for m in mails if str(m["Subject"]).startswith("Client replied")]
    [summary] = [m for m in mails if "more ticket for you" in str(m["Subject"])]
    assert len(replies) == 2  # the new ticket's notice took the first of 3
    assert re.findall(r"^#(\d+) ", text(summary), re.M) == ["1"]
    assert "5 replies" in text(summary)
    # the latest, as its notice would have, says it is not from the client's people
    assert "Sid Stranger <sid@elsewhere.test> (NOT one of the client's people)" \
        in text(summary) and "take me off this thread" in text(summary)


def test_the_daemon_sends_the_summary_when_the_window_ends_and_only_once(
        env: DeskEnv, smtp_capture: SmtpCapture) -> None:
    now = [datetime(2026, 11, 23, 10, 7, tzinfo=UTC)]
    daemon = Daemon(load_settings(env.config), clock=lambda: now[0])

    async def loop_rounds(at: datetime) -> int:
        """What `desk run` does on its own at ``at``: the clock loop's round, delivery."""
        now[0] = at
        await daemon._clock_round()
        await daemon.sender.deliver_due()
        return len(to_paul(smtp_capture))

    async def scenario() -> None:
        try:
            [source] = daemon.sources
            source.sync_once()
            assert await loop_rounds(now[0]) == 3  # the cap; the rest wait for 10:15
            assert await loop_rounds(datetime(2026, 11, 23, 10, 14, 59, tzinfo=UTC)) == 3
            assert await loop_rounds(datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)) == 4
            # and never again, at the next window's end either
            assert await loop_rounds(datetime(2026, 11, 23, 10, 31, tzinfo=UTC)) == 4
        finally:
            await daemon.sender.transport.close()
            daemon._close_journal()
            daemon.engine.dispose()

    flood(env, 6)
    asyncio.run(scenario())
    [summary] = [m for m in to_paul(smtp_capture) if "more tickets" in str(m["Subject"])]
    assert len(re.findall(r"^#(\d+) Request", text(summary), re.M)) == 3


def test_summaries_on_postgresql(smtp_capture: SmtpCapture, pg_url: str,
                                 make_env: EnvFactory) -> None:
    # There the waiting notices are taken with FOR UPDATE SKIP LOCKED.
    env = make_env(smtp=smtp_to(smtp_capture), database_url=pg_url,
                   extra={"notices": {"max_per_staff": 3, "window_minutes": 15}})
    flood(env, 5)
    env.desk("run", "--once", "--now", MON_10)
    [summary] = [m for m in to_paul(smtp_capture) if "more tickets" in str(m["Subject"])]
    assert re.findall(r"^#(\d+) Request", text(summary), re.M) == ["4", "5"]
    assert len(to_paul(smtp_capture)) == 4


def test_a_crash_while_summaries_are_written_loses_and_repeats_nothing(
        env: DeskEnv, smtp_capture: SmtpCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    from desk.work import notice_summary

    flood(env, 5)  # Paul's clients: 2 wait
    for i in range(5):  # strangers go to triage, Alice: 2 wait
        env.drop(make_mail(sender=f"someone{i}@elsewhere.test", subject=f"Hello {i}"),
                 name=f"stranger-{i}.eml")
    settings = load_settings(env.config)
    daemon = Daemon(settings, clock=lambda: datetime(2026, 11, 23, 10, 7, tzinfo=UTC))
    try:
        daemon.sources[0].sync_once()
        queued: list[str] = []
        real = notice_summary._queue_summary

        def dies_on_the_second(*args: object, **kw: object) -> None:
            if queued:
                raise RuntimeError("killed")
            queued.append("first")
            real(*args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(notice_summary, "_queue_summary", dies_on_the_second)
        later = datetime(2026, 11, 23, 10, 16, tzinfo=UTC)
        with pytest.raises(RuntimeError):
            notice_summary.send_due_summaries(daemon.factory, settings, later)
        rows = env.desk_json("outbox", "list", "--all")
        assert not [r for r in rows if r["kind"] == "notice_summary"]
        assert sum(r["status"] == "waiting" for r in rows) == 4  # all still waiting
        monkeypatch.setattr(notice_summary, "_queue_summary", real)
        assert notice_summary.send_due_summaries(daemon.factory, settings, later) == 2
        assert notice_summary.send_due_summaries(daemon.factory, settings, later) == 0
    finally:
        daemon._close_journal()
        daemon.engine.dispose()
    env.desk("run", "--once", "--now", "2026-11-23T10:17:00Z")
    summaries = [m for m in smtp_capture.messages() if "more tickets" in str(m.msg["Subject"])]
    assert sorted(m.rcpt_tos[0] for m in summaries) == ["alice@agency.test", PAUL]
