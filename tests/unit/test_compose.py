"""Outgoing mail is written with a shortcut for short ASCII headers (compose._Wire): what
goes on the wire must be exactly what the standard library's compat32 writer produces,
whatever the subject, names and thread headers are."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import compat32, default

from hypothesis import given, settings
from hypothesis import strategies as st

from desk.inbox.message import Address
from desk.outbound.compose import Stamp, build_mail, to_bytes
from desk.outbound.mail import OutgoingMail, Thread

STDLIB_WIRE = compat32.clone(linesep="\r\n")

header_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
message_ids = st.lists(st.from_regex(r"[a-z0-9.]{1,40}@[a-z0-9]{1,20}\.test", fullmatch=True),
                       max_size=25)


@settings(max_examples=300, deadline=None)
@given(subject=header_text, name=header_text, refs=message_ids)
def test_wire_form_is_what_the_standard_library_writes(subject: str, name: str,
                                                       refs: list[str]) -> None:
    mail = build_mail(
        OutgoingMail(kind="ack", event_key="ack:ticket:12",
                     to=[Address(name, "client@example.test")], subject=subject,
                     template="ack_retainer", context={},
                     thread=Thread(refs[-1] if refs else None, refs)),
        Stamp(from_addr=Address("Agency Support", "support@agency.test"),
              message_id="desk.12.ack.1@agency.test",
              date=datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
              reply_to="support+12.abc@agency.test", loop_value="support@agency.test"),
        "Hello\n")
    wire = to_bytes(mail)
    assert wire == mail.as_bytes(policy=STDLIB_WIRE)
    assert all(len(line) <= 998 for line in wire.split(b"\r\n"))


def test_long_thread_headers_are_folded_and_read_back_whole() -> None:
    refs = [f"message-{i}-with-a-long-identifier@client.example.test" for i in range(20)]
    mail = build_mail(
        OutgoingMail(kind="ack", event_key="ack:ticket:7", to=[Address("Jo", "jo@client.test")],
                     subject="Re: [#7] Slow site", template="ack_retainer", context={},
                     thread=Thread(None, refs)),
        Stamp(from_addr=Address("Agency Support", "support@agency.test"),
              message_id="desk.7.ack.1@agency.test", date=datetime(2026, 12, 2, tzinfo=UTC)),
        "Hi\n")
    wire = to_bytes(mail)
    header_lines = wire.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert max(len(line) for line in header_lines) <= 78
    back = message_from_bytes(wire, policy=default)
    assert str(back["References"]).split() == [f"<{r}>" for r in refs]
    assert str(back["Subject"]) == "Re: [#7] Slow site"
