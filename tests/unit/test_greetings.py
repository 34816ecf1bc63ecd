"""Whom a mail greets: the name after "Hello" from a display name ("Dr. Rosa Elm" is
"Rosa", never "Dr."), a contact's name from the directory before the From line, a plain
"Hello," when there is no person to name; and the same greeting in every mail to a
client that has one (acknowledgement, estimate, feedback request, status update)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.inbox.parse import parse_message
from desk.names import greeting_name, staff_greeting
from desk.sla.schedule import Action
from desk.store.models import Contact, Estimate, Outbox, Staff, Ticket
from desk.work.escalation import Clock
from desk.work.estimates import estimate_context
from desk.work.feedback import request_feedback
from desk.work.people import greeting_for, is_stranger
from desk.work.pipeline import process

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("display_name", "greeting"), [
    # a person: the given name
    ("Rosa Elm", "Rosa"),
    ("Dr. Rosa Elm", "Rosa"),
    ("Prof. Dr. Hans Meier", "Hans"),
    ("Sir John Smith", "John"),
    ("Jean-Luc Picard", "Jean-Luc"),
    ("Jan van der Berg", "Jan"),
    ("Robert De Niro", "Robert"),
    ("J. Robert Smith", "Robert"),
    ("John Smith Jr.", "John"),
    ("Zoë Ångström", "Zoë"),
    ("山田 太郎", "山田"),
    # "Last, First" and capitals
    ("Elm, Rosa", "Rosa"),
    ("SMITH, JOHN", "John"),
    ("O'NEIL, SEAN", "Sean"),
    ("Smith, John, PhD", "John"),
    ("RONALD MCDONALD", "Ronald"),
    ("JEAN-LUC PICARD", "Jean-Luc"),
    ("rosa elm", "Rosa"),
    # a title and a family name only: both, politely
    ("Dr. Elm", "Dr. Elm"),
    ("Dr Elm", "Dr Elm"),
    ("Mr. SMITH", "Mr. Smith"),
    ("Mr. MCDONALD", "Mr. McDonald"),
    ("Mrs. O'Neil", "Mrs. O'Neil"),
    ("Mr. DeVries", "Mr. DeVries"),
    ("MR. VAN DER BERG", "Mr. van der Berg"),
    ("MR. LE", "Mr. Le"),
    ("Herr Müller", "Herr Müller"),
    ("Frau Dr. Schmidt", "Frau Dr. Schmidt"),
    ("Mme Dupont", "Mme Dupont"),
    ("M. Dupont", "M. Dupont"),
    ("M. Jean Dupont", "Jean"),
    # initials only: the whole name rather than "Hello J.,"
    ("J. Smith", "J. Smith"),
    ("Dr. J. Smith", "Dr. Smith"),
    ("J. VAN DER BERG", "J. van der Berg"),
    ("J. LE", "J. Le"),
    # quoted, commented, relayed
    ('"Rosa Elm"', "Rosa"),
    ('"Elm, Rosa"', "Rosa"),
    ("'Rosa Elm'", "Rosa"),
    ("Rosa Elm (Elm Bakery)", "Rosa"),
    ("Rosa Elm via Support", "Rosa"),
    ("Rosa Elm | Elm Bakery", "Rosa"),
    # nobody to name: "Hello,"
    ("", ""),
    ("   ", ""),
    ("Dr.", ""),
    ("Support Team", ""),
    ("noreply", ""),
    ("No-Reply", ""),
    ("info", ""),
    ("Elm Bakery Ltd", ""),
    ("The Web Team", ""),
    ("Rosa & Tom", ""),
    ("rosa@elmbakery.test", ""),
    ("rosa.elm", ""),
    ("user123", ""),
    ("{{ 7*7 }} <b>x</b>", ""),
])
def test_greeting_name(display_name: str, greeting: str) -> None:
    assert greeting_name(display_name) == greeting


def _name_contact(session: Session, email: str, name: str) -> None:
    contact = session.scalar(select(Contact).where(Contact.email == email))
    assert contact is not None
    contact.name = name
    session.flush()


def test_the_contact_record_comes_before_the_from_line(session: Session) -> None:
    _name_contact(session, "boss@retainer.test", "Rosa Elm")
    assert greeting_for(session, "BOSS@retainer.test", "R. ELM (ACCOUNTS)") == "Rosa"
    assert greeting_for(session, "other@retainer.test", "Tom Oak") == "Tom"
    _name_contact(session, "boss@retainer.test", "")
    assert greeting_for(session, "boss@retainer.test", "Dr. Rosa Elm") == "Rosa"


def _mail(sender: str, subject: str = "The contact form sends nothing", *,
          extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: support@agency.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash((sender, subject)))}@client.test>\r\n{extra}"
            "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nThe form sends nothing.\r\n"
            ).encode()


def _text(row: Outbox) -> str:
    body = message_from_bytes(row.raw, policy=default).get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def _sent(session: Session, kind: str) -> list[str]:
    session.flush()
    return [_text(r) for r in session.scalars(select(Outbox).where(Outbox.kind == kind)
                                              .order_by(Outbox.id))]


def _open(session: Session, settings: Settings, sender: str, **kw: str) -> Ticket:
    outcome = process(session, parse_message(_mail(sender, **kw)), settings, now=NOW,
                      source="test")
    ticket = session.get(Ticket, outcome.ticket_id)
    assert ticket is not None
    return ticket


def test_the_acknowledgement_greets_by_first_name(session: Session,
                                                  settings: Settings) -> None:
    _open(session, settings, '"Dr. Rosa Elm" <boss@retainer.test>')
    _open(session, settings, "Support Team <boss@project.test>")
    _name_contact(session, "boss@hosting.test", "Tom Oak")
    _open(session, settings, '"OAK, T." <boss@hosting.test>')
    greetings = [text.splitlines()[0] for text in _sent(session, "ack")]
    assert greetings == ["Hello Rosa,", "Hello,", "Hello Tom,"]


def test_every_mail_to_the_client_greets_the_same_way(session: Session,
                                                      settings: Settings) -> None:
    ticket = _open(session, settings, '"ELM, ROSA" <boss@retainer.test>')
    estimate = Estimate(ticket_id=ticket.id, client_id=ticket.client_id, minutes=60,
                        text="Fix it")
    session.add(estimate)
    session.flush()
    assert estimate_context(session, settings, ticket, estimate, NOW)["first_name"] == "Rosa"

    ticket.resolved_at = NOW
    request_feedback(session, settings, ticket, NOW)
    [feedback] = _sent(session, "feedback_request")
    assert feedback.startswith("Hello Rosa,\n")

    clock = Clock(sessionmaker(), settings, lambda: NOW)
    clock._status_update(session, ticket, Action(at=NOW, key="update:1", kind="nudge"), NOW)
    [update] = _sent(session, "status_update")
    assert update.startswith("Hello Rosa,\n")


def test_a_reply_from_a_stranger_is_flagged_in_the_notice(session: Session,
                                                          settings: Settings) -> None:
    ticket = _open(session, settings, "Rosa Elm <boss@retainer.test>")
    assert ticket.owner is not None
    original = f"<{abs(hash(('Rosa Elm <boss@retainer.test>', ticket.subject)))}@client.test>"
    later = NOW + timedelta(hours=1)
    for sender, subject in [("Tom Oak <tom@retainer.test>", "Re: colleague"),
                            ("Sam Else <sam@elsewhere.example>", "Re: stranger")]:
        msg = parse_message(_mail(sender, subject, extra=f"In-Reply-To: {original}\r\n"
                                                           f"References: {original}\r\n"))
        assert process(session, msg, settings, now=later, source="test").ticket_id == ticket.id
        later += timedelta(minutes=1)
    session.flush()
    rows = list(session.scalars(select(Outbox).where(Outbox.kind == "notice_reply")
                                .order_by(Outbox.id)))
    assert [r.subject.split(":")[0] for r in rows] == ["Client replied", "Not the client"]
    colleague, stranger = (_text(r) for r in rows)
    assert "Careful" not in colleague
    assert " ".join(stranger.split()).startswith(
        f"Hi {ticket.owner.name.split()[0]}, Careful, not the client: Sam Else "
        "<sam@elsewhere.example> is none of retainer client's people")
    assert is_stranger(session, ticket, "sam@elsewhere.example")
    assert not is_stranger(session, ticket, "TOM@retainer.test")
    assert not is_stranger(session, ticket, "paul@agency.test")
    # The client's subdomains are the client's, as classification has it; someone who has
    # left the agency is not our people any more.
    assert not is_stranger(session, ticket, "rosa@eu.retainer.test")
    assert is_stranger(session, ticket, "rosa@notretainer.test")
    paul = session.scalars(select(Staff).where(Staff.email == "paul@agency.test")).one()
    paul.active = False
    session.flush()
    assert is_stranger(session, ticket, "paul@agency.test")


@pytest.mark.parametrize(("name", "email", "expected"), [
    ("Dr. Paul Porter", "paul@agency.test", "Paul"),
    ("PORTER, PAUL", "paul@agency.test", "Paul"),
    ("Support Team", "team@agency.test", "Support"),
    ("", "paul@agency.test", "paul@agency.test"),
])
def test_a_colleague_is_greeted_by_first_name_never_by_title(name: str, email: str,
                                                             expected: str) -> None:
    assert staff_greeting(name, email) == expected
