"""Classification, threading (including hijack attempts), tokens and subjects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from desk.inbox.message import Address, ParsedMessage
from desk.routing.classify import classify
from desk.routing.subject import base_subject, strip_prefixes, subject_refs, tagged
from desk.routing.tokens import ref_from_address, signature, token_address
from desk.store.models import Message, Participant, Ticket
from desk.work.which_ticket import ThreadMatch, find_thread
from tests.support import SECRET

SUPPORT = "support@agency.test"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def msg(sender: str = "boss@supportsla.test", subject: str = "Help", body: str = "",
        **kw: object) -> ParsedMessage:
    return ParsedMessage(message_id=f"m{id(kw)}@x", sender=Address("", sender), subject=subject,
                         text_body=body, to=[Address("", SUPPORT)], **kw)  # type: ignore[arg-type]


# -- subjects and tokens -------------------------------------------------------------

@pytest.mark.parametrize("raw, clean", [
    ("Re: Hello", "Hello"),
    ("RE[2]: Hello", "Hello"),
    ("Fwd: FW: Hello", "Hello"),
    ("AW: WG: Hallo", "Hallo"),
    ("SV: Hej", "Hej"),
    ("VS: Moi", "Moi"),
    ("Antw: Hoi", "Hoi"),
    ("Réf : Bonjour", "Bonjour"),
    ("Re: [#12] Site down", "Site down"),
    ("Regarding the invoice", "Regarding the invoice"),
    ("Reply needed", "Reply needed"),
    ("", "(no subject)"),
])
def test_base_subject_strips_reply_prefixes_and_tags(raw: str, clean: str) -> None:
    assert base_subject(raw) == clean


def test_strip_prefixes_keeps_words_that_only_start_like_a_prefix() -> None:
    assert strip_prefixes("Fwdable: x") == "Fwdable: x"


def test_subject_refs_and_tagging() -> None:
    assert subject_refs("Re: [#12] and [#7]") == ["12", "7"]
    assert tagged("Re: [#12] Site down", "12") == "[#12] Site down"


def test_token_roundtrip_and_forgery() -> None:
    addr = token_address(SUPPORT, SECRET, "42")
    assert addr.startswith("support+42.") and addr.endswith("@agency.test")
    assert ref_from_address(addr, SUPPORT, SECRET) == ("42", True)
    assert ref_from_address(addr.upper(), SUPPORT, SECRET) == ("42", True)
    forged = f"support+43.{signature(SECRET, '42')}@agency.test"
    assert ref_from_address(forged, SUPPORT, SECRET) == ("43", False)
    assert ref_from_address("support+42.abc@agency.test", SUPPORT, "another-secret")[1] is False
    assert ref_from_address("client@client.test", SUPPORT, SECRET) == (None, False)


# -- classification --------------------------------------------------------------------

@pytest.mark.parametrize("sender, client, tier, priority", [
    ("boss@supportsla.test", "support_sla client", "support_sla", "P2"),
    ("someone@hostingsla.test", "hosting_sla client", "hosting_sla", "P2"),
    ("x@retainer.test", "retainer client", "retainer", "P3"),
    ("x@project.test", "project client", "project", "P3"),
    ("x@postproject.test", "post_project client", "post_project", "P4"),
    ("x@hosting.test", "hosting client", "hosting", "P4"),
    ("x@mail.eu.retainer.test", "retainer client", "retainer", "P3"),  # subdomain
    ("stranger@elsewhere.test", None, None, "P3"),
])
def test_classify_by_contact_then_domain(session: Session, sender: str, client: str | None,
                                         tier: str | None, priority: str) -> None:
    c = classify(session, msg(sender))
    assert (c.client.name if c.client else None) == client
    assert c.tier == tier
    assert c.priority == priority
    assert c.reason


@pytest.mark.parametrize("subject, body, p1", [
    ("Site down!", "", True),
    ("Question", "Since this morning we get a 500 error on checkout.", True),
    ("Login", "Our editors can't log in to WordPress.", True),
    ("Seite nicht erreichbar", "", True),
    ("Newsletter", "Please update the footer text.", False),
    ("Price is down", "Our prices went down, update the shop.", False),
])
def test_outage_reports_are_p1_whatever_the_tier(session: Session, subject: str, body: str,
                                                 p1: bool) -> None:
    c = classify(session, msg("x@hosting.test", subject, body))
    assert (c.priority == "P1") is p1
    if p1:
        assert "outage" in c.reason


def test_outage_phrase_in_quoted_history_far_below_does_not_make_p1(session: Session) -> None:
    body = "Thanks, all fine now.\n" + "\n" * 50 + "> the site is down"
    assert classify(session, msg("x@hosting.test", "Re: hi", body)).priority == "P4"


# -- threading -------------------------------------------------------------------------

def _ticket(session: Session, requester: str = "boss@supportsla.test",
            client_name: str = "support_sla client") -> Ticket:
    from sqlalchemy import select

    from desk.store.models import Client

    client = session.scalar(select(Client).where(Client.name == client_name))
    t = Ticket(subject="Help", requester_email=requester, client=client, created_at=NOW,
               updated_at=NOW)
    session.add(t)
    session.flush()
    session.add(Message(ticket_id=t.id, direction="out", message_id=f"ack{t.id}@agency.test"))
    session.add(Message(ticket_id=t.id, direction="in", message_id=f"orig{t.id}@client"))
    session.flush()
    return t


def thread(session: Session, m: ParsedMessage) -> ThreadMatch:
    return find_thread(session, m, support_address=SUPPORT, secret=SECRET)


def test_signed_token_address_threads(session: Session) -> None:
    t = _ticket(session)
    m = msg("anyone@else.test", "totally different")
    m.to = [Address("", token_address(SUPPORT, SECRET, t.ref))]
    match = thread(session, m)
    assert match.ticket is t and match.how == "token"


def test_forged_token_is_refused_and_recorded(session: Session) -> None:
    t = _ticket(session)
    m = msg("attacker@evil.test", "hi")
    m.to = [Address("", f"support+{t.ref}.aaaaaaaaaaaa@agency.test")]
    match = thread(session, m)
    assert match.ticket is None and match.how == "new"
    assert match.refused and match.refused[0][0] is t


@pytest.mark.parametrize("field", ["in_reply_to", "references"])
def test_references_to_our_or_their_message_ids(session: Session, field: str) -> None:
    t = _ticket(session)
    for mid in (f"ack{t.id}@agency.test", f"orig{t.id}@client"):
        match = thread(session, msg("boss@supportsla.test", "x", **{field: [mid]}))
        assert match.ticket is t and match.how == "references"


def test_in_reply_to_wins_over_older_references(session: Session) -> None:
    old, new = _ticket(session), _ticket(session)
    m = msg(in_reply_to=[f"ack{new.id}@agency.test"], references=[f"ack{old.id}@agency.test"])
    assert thread(session, m).ticket is new


@pytest.mark.parametrize("sender, accepted", [
    ("boss@supportsla.test", True),  # the requester
    ("colleague@supportsla.test", False),  # same domain but not a participant or contact
    ("sam@agency.test", True),  # staff
    ("stranger@elsewhere.test", False),
    ("boss@retainer.test", False),  # a contact of ANOTHER client
])
def test_subject_ref_only_from_participants(session: Session, sender: str,
                                            accepted: bool) -> None:
    t = _ticket(session)
    match = thread(session, msg(sender, f"Re: [#{t.ref}] Help"))
    assert (match.ticket is t) is accepted
    if not accepted:
        assert match.how == "new"
        assert any(target is t for target, _ in match.refused)


def test_subject_ref_from_cc_participant(session: Session) -> None:
    t = _ticket(session)
    t.participants.append(Participant(email="cc@supportsla.test", kind="cc"))
    session.flush()
    assert thread(session, msg("cc@supportsla.test", f"[#{t.ref}] more")).ticket is t


def test_guessing_numbers_never_reaches_another_ticket(session: Session) -> None:
    tickets = [_ticket(session) for _ in range(5)]
    for t in tickets:
        match = thread(session, msg("stranger@elsewhere.test", f"[#{t.ref}] hello",
                                    in_reply_to=[f"guess{t.id}@agency.test"]))
        assert match.ticket is None


def test_unknown_reference_is_a_new_ticket(session: Session) -> None:
    match = thread(session, msg(subject="[#999999] hi", in_reply_to=["nope@x"]))
    assert match.ticket is None and match.how == "new" and not match.refused
