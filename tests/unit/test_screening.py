from __future__ import annotations

from pathlib import Path

import pytest

from desk.inbox.message import Address, ParsedMessage
from desk.inbox.parse import parse_message
from desk.inbox.screening import auto_reply_blockers, is_bounce

RT = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "rt-emails"
OWN = ["support@desk.example", "billing@desk.example"]
LOOP = "desk-7f3a@desk.example"
CLIENT_FROM = "From: Client Person <client@customer.example>"


def _message(headers: str, *, sender: str = CLIENT_FROM) -> ParsedMessage:
    lines = [
        sender,
        "To: support@desk.example",
        "Subject: Website is down",
        "Message-ID: <m1@customer.example>",
        "Date: Tue, 5 Mar 2019 18:03:06 +0100",
        *[line for line in headers.splitlines() if line],
    ]
    raw = "\r\n".join(line for line in lines if line) + "\r\n\r\nPlease help.\r\n"
    return parse_message(raw.encode("utf-8"))


def _blockers(msg: ParsedMessage) -> list[str]:
    return auto_reply_blockers(msg, own_addresses=OWN, loop_header_value=LOOP)


# (case id, extra headers, From line, fragment of the single expected reason or None)
CASES: list[tuple[str, str, str, str | None]] = [
    ("normal client mail", "", CLIENT_FROM, None),
    ("client reply with threading", "In-Reply-To: <t1@desk.example>", CLIENT_FROM, None),
    ("auto-submitted no", "Auto-Submitted: no", CLIENT_FROM, None),
    ("auto-submitted auto-replied", "Auto-Submitted: auto-replied", CLIENT_FROM, "Auto-Submitted"),
    (
        "auto-submitted with comment",
        "Auto-Submitted: auto-generated (failure)",
        CLIENT_FROM,
        "Auto-Submitted",
    ),
    ("auto-submitted empty", "Auto-Submitted:", CLIENT_FROM, "Auto-Submitted"),
    ("precedence bulk", "Precedence: bulk", CLIENT_FROM, "Precedence"),
    ("precedence junk", "Precedence: junk", CLIENT_FROM, "Precedence"),
    ("precedence list", "Precedence: LIST", CLIENT_FROM, "Precedence"),
    ("precedence auto_reply", "Precedence: auto_reply", CLIENT_FROM, "Precedence"),
    ("precedence first-class", "Precedence: first-class", CLIENT_FROM, None),
    ("list-id", "List-Id: Customers <customers.lists.example>", CLIENT_FROM, "list-id"),
    (
        "list-unsubscribe",
        "List-Unsubscribe: <mailto:leave@lists.example>",
        CLIENT_FROM,
        "list-unsubscribe",
    ),
    ("list-post", "List-Post: <mailto:all@lists.example>", CLIENT_FROM, "list-post"),
    ("suppress all", "X-Auto-Response-Suppress: All", CLIENT_FROM, "X-Auto-Response-Suppress"),
    (
        "suppress oof and autoreply",
        "X-Auto-Response-Suppress: DR, OOF, AutoReply",
        CLIENT_FROM,
        "X-Auto-Response-Suppress",
    ),
    ("suppress none", "X-Auto-Response-Suppress: None", CLIENT_FROM, None),
    ("suppress empty", "X-Auto-Response-Suppress:", CLIENT_FROM, None),
    ("x-autoreply", "X-Autoreply: yes", CLIENT_FROM, "x-autoreply"),
    ("x-autorespond", "X-Autorespond: vacation", CLIENT_FROM, "x-autorespond"),
    ("x-autoresponder", "X-AutoResponder: 1", CLIENT_FROM, "x-autoresponder"),
    ("our x-loop", f"X-Loop: {LOOP.upper()}", CLIENT_FROM, "X-Loop"),
    ("foreign x-loop", "X-Loop: other-system@lists.example", CLIENT_FROM, None),
    ("x-desk-loop", "X-Desk-Loop: anything", CLIENT_FROM, "X-Desk-Loop"),
    ("null return-path", "Return-Path: <>", CLIENT_FROM, "Return-Path"),
    ("normal return-path", "Return-Path: <client@customer.example>", CLIENT_FROM, None),
    ("mailer-daemon", "", "From: Mail Delivery System <MAILER-DAEMON@mx.example>", "mailer-daemon"),
    ("bare mailer-daemon", "", "From: MAILER-DAEMON", "mailer-daemon"),
    ("postmaster", "", "From: postmaster@customer.example", "postmaster"),
    ("noreply", "", "From: noreply@shop.example", "no-reply"),
    ("no-reply", "", "From: Shop <No-Reply@shop.example>", "no-reply"),
    ("no_reply", "", "From: no_reply@shop.example", "no-reply"),
    ("no.reply", "", "From: no.reply@shop.example", "no-reply"),
    ("do-not-reply", "", "From: do-not-reply@shop.example", "no-reply"),
    ("donotreply", "", "From: DoNotReply@shop.example", "no-reply"),
    ("noreply plus tag", "", "From: noreply+bounce-42@shop.example", "no-reply"),
    ("noreply with suffix", "", "From: noreply-billing@shop.example", "no-reply"),
    ("name that starts with no", "", "From: Norman <norman@customer.example>", None),
    ("reply mailbox", "", "From: reply@customer.example", None),
    ("our own address", "", "From: Support <support@desk.example>", "own addresses"),
    ("our own address, case", "", "From: BILLING@Desk.Example", "own addresses"),
    ("our own plus address", "", "From: support+123.abc@desk.example", "own addresses"),
    ("same local part elsewhere", "", "From: support@customer.example", None),
    ("no from", "", "", "no sender"),
    ("unparseable from", "", 'From: "broken <<>> ,', "no sender"),
    (
        "delivery report",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
        CLIENT_FROM,
        "report",
    ),
    (
        "read receipt",
        'Content-Type: multipart/report; report-type="disposition-notification"; boundary=b',
        CLIENT_FROM,
        "disposition-notification",
    ),
]


@pytest.mark.parametrize(
    ("headers", "sender", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_auto_reply_blockers(headers: str, sender: str, fragment: str | None) -> None:
    reasons = _blockers(_message(headers, sender=sender))

    if fragment is None:
        assert reasons == []
    else:
        assert len(reasons) == 1, reasons
        assert fragment.lower() in reasons[0].lower()


def test_every_matching_rule_is_reported() -> None:
    msg = _message(
        "Auto-Submitted: auto-replied\nPrecedence: bulk\nList-Id: <l.example>\nReturn-Path: <>",
        sender="From: noreply@shop.example",
    )

    assert len(_blockers(msg)) == 5  # Auto-Submitted, Precedence, List-Id, <>, noreply


def test_loop_header_ignored_without_configured_value() -> None:
    msg = _message(f"X-Loop: {LOOP}")

    assert auto_reply_blockers(msg, own_addresses=OWN) == []


def test_own_addresses_accept_any_iterable() -> None:
    msg = _message("", sender="From: support@desk.example")

    assert auto_reply_blockers(msg, own_addresses=iter(OWN))
    assert auto_reply_blockers(msg, own_addresses=()) == []


def test_dsn_fields_alone_block_and_mark_bounce() -> None:
    msg = ParsedMessage(
        message_id="x@y",
        sender=Address(name="", email="client@customer.example"),
        dsn_original_message_id="ours@desk.example",
    )

    assert is_bounce(msg)
    assert any("bounce" in reason for reason in _blockers(msg))


@pytest.mark.parametrize(
    ("headers", "sender", "expected"),
    [
        ("", CLIENT_FROM, False),
        (
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
            CLIENT_FROM,
            True,
        ),
        (
            "Content-Type: multipart/report; report-type=disposition-notification; boundary=b",
            CLIENT_FROM,
            False,
        ),
        ("", "From: MAILER-DAEMON@mx.example", True),
        # A vacation reply also uses the null sender, but it is not a bounce.
        ("Return-Path: <>\nAuto-Submitted: auto-replied", CLIENT_FROM, False),
    ],
)
def test_is_bounce(headers: str, sender: str, expected: bool) -> None:
    assert is_bounce(_message(headers, sender=sender)) is expected


def test_rt_multipart_report_is_a_bounce() -> None:
    path = RT / "multipart-report"
    if not path.is_file():
        pytest.skip(f"RT corpus not available at {RT}")
    msg = parse_message(path.read_bytes())

    assert is_bounce(msg)
    reasons = _blockers(msg)
    assert any("Auto-Submitted" in r for r in reasons)
    assert any("mailer-daemon" in r.lower() for r in reasons)
    assert any("bounce" in r for r in reasons)


def test_rt_list_mail_forwarded_inside_is_not_screened_as_list_mail() -> None:
    # The List-* headers belong to the attached message, not to the mail we received.
    path = RT / "nested-rfc-822"
    if not path.is_file():
        pytest.skip(f"RT corpus not available at {RT}")

    assert _blockers(parse_message(path.read_bytes())) == []
