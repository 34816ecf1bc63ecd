"""Outgoing mail is written with a shortcut for ASCII headers (compose._Wire): what goes
on the wire must be exactly what the standard library's compat32 writer produces,
whatever the subject, names and thread headers are; with one rule of ours on top: a
header that fits in one line of 998 characters (RFC 5322's limit) stays on one line,
and only a longer one, or RFC 2047 encoded text, is folded (at 78, as the stdlib does).
Delivery is at least once with a stable Message-ID, so the bytes of a mail must also be
the same every time it is built."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from email.policy import compat32, default
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from desk.inbox.message import Address
from desk.outbound.compose import Stamp, build_mail, to_bytes
from desk.outbound.mail import OutgoingMail, Thread

STDLIB_WIRE = compat32.clone(linesep="\r\n")
STDLIB_ONE_LINE = compat32.clone(linesep="\r\n", max_line_length=998)

header_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
message_ids = st.lists(st.from_regex(r"[a-z0-9.]{1,40}@[a-z0-9]{1,20}\.test", fullmatch=True),
                       max_size=25)


def _stdlib_headers(msg: Message) -> bytes:
    """The header block as the standard library folds each header: in one line of up to
    998 characters where a plain value fits, else at 78."""
    out = b""
    for name, value in msg.items():
        fits = isinstance(value, str) and len(name) + 2 + len(value) <= 998
        out += (STDLIB_ONE_LINE if fits else STDLIB_WIRE).fold_binary(name, value)
    return out


def _mail(subject: str, name: str, refs: list[str], message_id: str) -> Message:
    return build_mail(
        OutgoingMail(kind="ack", event_key="ack:ticket:12",
                     to=[Address(name, "client@example.test")], subject=subject,
                     template="ack_retainer", context={},
                     thread=Thread(refs[-1] if refs else None, refs)),
        Stamp(from_addr=Address("Agency Support", "support@agency.test"),
              message_id=message_id,
              date=datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
              reply_to="support+12.abc@agency.test", loop_value="support@agency.test"),
        "Hello\n")


@settings(max_examples=300, deadline=None)
@given(subject=header_text, name=header_text, refs=message_ids)
def test_wire_form_is_what_the_standard_library_writes(subject: str, name: str,
                                                       refs: list[str]) -> None:
    mail = _mail(subject, name, refs, "desk.12.ack.1@agency.test")
    wire = to_bytes(mail)
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head + b"\r\n" == _stdlib_headers(mail)
    assert body == mail.as_bytes(policy=STDLIB_WIRE).partition(b"\r\n\r\n")[2]
    assert all(len(line) <= 998 for line in wire.split(b"\r\n"))
    # No header starts with an empty line ("Message-ID: " CRLF " <...>").
    lines = head.split(b"\r\n")
    assert not [a for a, b in pairwise(lines)
                if a.rstrip().endswith(b":") and b[:1] in (b" ", b"\t")]
    # Built again (a resend after a crash): the very same bytes.
    assert to_bytes(_mail(subject, name, refs, "desk.12.ack.1@agency.test")) == wire


def test_a_long_message_id_stays_on_its_header_line() -> None:
    # desk's own ids run past 78 columns with a long hint and domain.
    mid = "desk.1234.status_update.170000000000.12345.6789@support.agency-with-a-long-name.example"
    wire = to_bytes(_mail("Re: [#1234] The contact form", "Rosa Elm", [], mid))
    assert f"\r\nMessage-ID: <{mid}>\r\n".encode() in wire
    assert len(f"Message-ID: <{mid}>") > 78


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
