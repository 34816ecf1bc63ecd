"""Personal data: who an address is in the store (whole addresses only, any case), the
pseudonym, erasure reaching every column that can hold an address, and which tickets'
raw mail retention may prune."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.store.db import session_factory
from desk.store.models import (
    Attachment,
    Client,
    Contact,
    Estimate,
    Event,
    Feedback,
    Message,
    Outbox,
    Participant,
    Quarantine,
    RawMessage,
    Ticket,
    TimeEntry,
)
from desk.work.privacy import ERASED_NAME, Person, erase, pseudonym
from desk.work.retention import oldest_raw_mail, prune_raw_mail
from tests.support import SECRET

EVE = "eve@retainer.test"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_only_whole_addresses_match_in_any_case() -> None:
    eve = Person.of("Eve@Retainer.test", ["Eve Example", "Ev"])
    assert eve.address == EVE and eve.names == ("Eve Example",)  # "Ev" is too short
    assert eve.mentioned_in("From: Eve Example <EVE@retainer.TEST>")
    assert eve.mentioned_in("write to eve@retainer.test.")  # the end of a sentence
    for other in ("steve@retainer.test", "eve@retainer.test.uk", "eve@retainer.testing",
                  "dave.eve@retainer.test"):
        assert not eve.mentioned_in(other), other
    assert eve.mentioned_in_bytes(b"From: =?utf-8?q?Eve?= <eve=40retainer.test>")
    assert eve.scrub("Eve Example <eve@retainer.test> wrote", "X@erased.invalid") == \
        "Erased person <X@erased.invalid> wrote"
    assert eve.scrub_value({"to": ["eve@retainer.test"], "n": 3}, "X") == {"to": ["X"], "n": 3}


def test_the_pseudonym_is_stable_and_needs_the_secret() -> None:
    assert pseudonym("Eve@Retainer.test ", SECRET) == pseudonym(EVE, SECRET)
    assert pseudonym(EVE, SECRET) != pseudonym(EVE, SECRET + "x")
    local, _, domain = pseudonym(EVE, SECRET).partition("@")
    assert domain == "erased.invalid" and len(local) == len("erased-") + 12


def _everything_about_eve(session: Session) -> Ticket:
    client = session.scalar(select(Client).where(Client.name == "retainer client"))
    assert client is not None
    session.add(Contact(email=EVE, name="Eve Example", client=client))
    ticket = Ticket(subject="Broken form", requester_email=EVE, requester_name="Eve Example",
                    client=client, tier="retainer", status="closed", created_at=NOW)
    session.add(ticket)
    session.flush()
    raw = RawMessage(data=b"From: Eve Example <eve@retainer.test>\r\n\r\nmy secret")
    session.add(raw)
    session.flush()
    mine = Message(ticket_id=ticket.id, direction="in", message_id="m1@retainer.test",
                   from_addr=EVE, from_name="Eve Example", to_addrs="support@agency.test",
                   body_text="my secret", body_html="<p>my secret</p>", raw_id=raw.id)
    session.add(mine)
    session.flush()
    session.add(Attachment(message_pk=mine.id, filename="a.txt", size=6, content=b"secret"))
    other = Ticket(subject="Someone else's", requester_email="boss@retainer.test",
                   client=client, tier="retainer", created_at=NOW)
    session.add(other)
    session.flush()
    session.add_all([
        Participant(ticket_id=other.id, email=EVE, kind="cc"),
        Message(ticket_id=other.id, direction="in", message_id="m2@retainer.test",
                from_addr="boss@retainer.test", to_addrs="support@agency.test",
                cc_addrs=f"{EVE}, x@retainer.test", body_text="copying Eve"),
        Message(ticket_id=other.id, direction="in", message_id="m3@retainer.test",
                from_addr="boss@retainer.test", body_text="ask Eve Example, she knows"),
        Event(ticket_id=ticket.id, kind="participant", detail=f"{EVE} joins",
              actor=EVE, data={"who": [EVE]}, at=NOW),
        Estimate(ticket_id=ticket.id, minutes=60, status="approved", decided_by=EVE,
                 decision_words="yes please, Eve Example", decided_at=NOW),
        Feedback(ticket_id=ticket.id, rating=9, comment="lovely", from_addr=EVE),
        Outbox(ticket_id=ticket.id, kind="ack", event_key="ack:1", message_id="o1@agency.test",
               mail_from="support@agency.test", recipient=EVE, rcpt_to=[EVE],
               subject="[#1] Broken form", raw=b"To: eve@retainer.test\r\n\r\nHello Eve"),
        Quarantine(source_key="maildir:1", raw=b"From: eve@retainer.test\r\n\r\n\xff",
                   reason="cannot parse", sender="Eve Example <eve@retainer.test>"),
        TimeEntry(ticket_id=ticket.id, minutes=30, note="called eve@retainer.test"),
    ])
    session.commit()
    return ticket


def _tables_naming(session: Session, needle: str) -> list[str]:
    found = []
    names = session.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
    for (name,) in list(names):
        result = session.execute(text(f'SELECT * FROM "{name}"'))
        columns = list(result.keys())
        for row in result:
            for column, value in zip(columns, row, strict=True):
                shown = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                if needle.lower() in shown.lower():
                    found.append(f"{name}.{column}")
    return sorted(set(found))


def test_erasure_reaches_every_column_and_keeps_the_records(session: Session) -> None:
    ticket = _everything_about_eve(session)
    assert "messages.from_addr" in _tables_naming(session, EVE)

    done = erase(session, EVE.upper(), SECRET, NOW)
    session.commit()

    assert _tables_naming(session, EVE) == []
    assert _tables_naming(session, "Eve Example") == []
    assert _tables_naming(session, "my secret") == []
    alias = pseudonym(EVE, SECRET)
    assert done.pseudonym == alias and done.counts["raw messages deleted"] == 1
    assert done.counts["attachments' content removed"] == 1
    kept = session.get(Ticket, ticket.id)
    assert kept is not None and kept.requester_email == alias and kept.status == "closed"
    assert kept.requester_name == ERASED_NAME and kept.tier == "retainer"
    estimate = session.scalar(select(Estimate))
    assert estimate is not None and estimate.status == "approved" and estimate.decided_by == alias
    feedback = session.scalar(select(Feedback))
    assert feedback is not None and feedback.rating == 9 and feedback.comment == ""
    outbox = session.scalar(select(Outbox))
    assert outbox is not None and outbox.status == "failed" and outbox.raw == b""
    quarantined = session.scalar(select(Quarantine))
    assert quarantined is not None and quarantined.status == "dropped"
    assert session.scalar(select(Contact.name).where(Contact.email == alias)) == ERASED_NAME
    # Someone else's mail naming her keeps its words, not her.
    assert session.scalar(select(Message.body_text).where(
        Message.message_id == "m3@retainer.test")) == "ask Erased person, she knows"
    assert session.scalar(select(Message.body_text).where(
        Message.message_id == "m2@retainer.test")) == ""  # copied to her: her mail too

    assert not erase(session, EVE, SECRET, NOW).found  # twice: nothing left to do


def test_a_dry_run_is_the_same_rolled_back(session: Session) -> None:
    _everything_about_eve(session)
    done = erase(session, EVE, SECRET, NOW)
    session.rollback()
    assert done.found and "messages.from_addr" in _tables_naming(session, EVE)


def test_retention_prunes_only_tickets_finished_long_enough(session: Session,
                                                            settings: Settings) -> None:
    days = settings.retention.raw_mail_days
    old, recent = NOW - timedelta(days=days + 5), NOW - timedelta(days=days - 5)

    def ticket_with_raw(status: str, when: datetime, resolved: datetime | None = None) -> int:
        t = Ticket(subject=status, requester_email="boss@retainer.test", status=status,
                   created_at=when, resolved_at=resolved)
        raw = RawMessage(data=b"bytes")
        session.add_all([t, raw])
        session.flush()
        session.add(Message(ticket_id=t.id, direction="in", message_id=f"{t.id}@x",
                            raw_id=raw.id, created_at=when))
        return t.id

    closed_long_ago = ticket_with_raw("closed", old)
    resolved_long_ago = ticket_with_raw("resolved", old, resolved=old)
    resolved_lately = ticket_with_raw("resolved", old, resolved=recent)
    still_open = ticket_with_raw("open", old)
    closed_but_busy = ticket_with_raw("closed", old)
    session.add(Event(ticket_id=closed_but_busy, kind="note", detail="late word", at=recent))
    session.commit()

    report = prune_raw_mail(session_factory(session.get_bind().engine), settings, NOW)
    assert report.raw_messages == 2
    raw_kept = {t: r for t, r in session.execute(select(Message.ticket_id, Message.raw_id))}
    assert raw_kept[closed_long_ago] is None and raw_kept[resolved_long_ago] is None
    assert all(raw_kept[t] is not None for t in (resolved_lately, still_open, closed_but_busy))
    assert session.scalar(select(RawMessage.id).where(RawMessage.data == b"bytes")) is not None
    assert oldest_raw_mail(session) == old
