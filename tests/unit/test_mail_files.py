"""Files and formatting between clients and staff, without servers: the cut of quoted
history from HTML as each mail program marks it, what a staff reply relays, what a mail
carries within its cap, and the MIME the desk writes for it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from desk.inbox.message import Address, Attachment, ParsedMessage
from desk.inbox.parse import parse_message, sanitize_html
from desk.inbox.quotes import reply_html
from desk.outbound.compose import Stamp, build_mail, safe_filename, to_bytes
from desk.outbound.mail import FilePart, InlinePart, OutgoingMail
from desk.work.attachments import (
    FileInfo,
    human_size,
    mark_images,
    pack,
    referenced_cids,
    staff_reply_content,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients"


def _fixture(name: str) -> ParsedMessage:
    return parse_message((FIXTURES / name).read_bytes())


def _reply(name: str, commands: tuple[str, ...] = ()) -> str:
    source = _fixture(name).html_source
    assert source is not None
    return sanitize_html(reply_html(source, commands))


# -- the cut, as each mail program marks it -------------------------------------------
def test_gmail_signature_and_quote_go_the_link_and_bold_stay() -> None:
    html = _reply("gmail_reply.eml")
    assert '<a href="https://status.agency.test/changes/4711"' in html
    assert "<b>expired</b>" in html and "Best," in html
    assert "Project Manager" not in html and "wrote:" not in html and "New ticket" not in html


def test_apple_mail_blockquote_type_cite_goes_with_its_attribution() -> None:
    html = _reply("apple_mail_reply.eml")
    assert "looks like this" in html and "cid:5C0B3A1E" in html
    assert "wrote:" not in html and "checkout works again" not in html


def test_thunderbird_cite_prefix_quote_and_signature_go() -> None:
    html = _reply("thunderbird_reply.eml")
    assert "still not sent" in html and "Carol<br>" in html
    assert "wrote:" not in html and "checkout works again" not in html
    assert "Client Co" not in html


def test_outlook_history_after_the_border_top_separator_goes() -> None:
    html = _reply("outlook_reply.eml")
    assert "<b>under two seconds</b>" in html and "<li>the page cache was rebuilt</li>" in html
    assert "cid:image001.png" in html  # the signature logo, above the separator
    assert "From:" not in html and "image002" not in html and "its worker" not in html
    assert "font-family" not in html and "o:p" not in html


def test_outlook_on_the_web_divrplyfwdmsg_and_its_rule_go() -> None:
    raw = ('<div id="divtagdefaultwrapper"><p>New text</p></div>'
           '<hr style="display:inline-block;width:98%" tabindex="-1">'
           '<div id="divRplyFwdMsg" dir="ltr"><b>From:</b> Support</div><div>old text</div>')
    assert sanitize_html(reply_html(raw)) == "<div><p>New text</p></div>"


def test_signature_delimiter_and_mobile_footer_end_the_reply() -> None:
    assert "Name" not in reply_html("<div>Thanks</div><div>-- </div><div>Name</div>")
    assert "iPhone" not in reply_html("<div>Thanks</div><div><br></div>"
                                      "<div>Sent from my iPhone</div>")
    # A dash pair inside a sentence is no delimiter.
    assert "Name" in reply_html("<p>A <b>b</b> -- <i>c</i> Name</p>")


def test_bottom_posting_keeps_the_reply_below_the_quote() -> None:
    raw = ('<div class="moz-cite-prefix">On 1 Dec 2026, Paul wrote:<br></div>'
           '<blockquote type="cite">old -- <br>Paul</blockquote><p>My answer below.</p>')
    assert sanitize_html(reply_html(raw)) == "<p>My answer below.</p>"


def test_command_lines_at_the_top_go_even_split_over_runs() -> None:
    raw = ('<div dir="ltr"><div>#status waiting</div><div><span>#time</span> <b>1h</b></div>'
           '<div><br></div><div>Hello, #1 is fixed.</div></div>')
    html = sanitize_html(reply_html(raw, ("#status waiting", "#time 1h")))
    assert "#status" not in html and "#time" not in html and "1h" not in html
    assert "Hello, #1 is fixed." in html and not html.startswith("<div><div></div><div><br>")


def test_hostile_nesting_is_cut_in_linear_time() -> None:
    raw = "<div>" * 20000 + "text" + "</span>" * 20000 + '<blockquote type="cite">q' * 5000
    start = time.monotonic()
    assert "text" in reply_html(raw)
    assert time.monotonic() - start < 5


# -- what a staff reply relays ------------------------------------------------------
def test_a_reply_relays_its_own_images_and_files_not_the_historys() -> None:
    content = staff_reply_content(_fixture("outlook_reply.eml"), [], cap=10_000,
                                  intake_cap=10_000)
    assert [p.filename for p in content.related] == ["image001.png"]
    assert content.files == [] and content.refused == []
    assert content.html is not None and "<ul>" in content.html


def test_a_replys_html_keeps_formatting_and_loses_what_hides_tracks_or_runs() -> None:
    source = ('<div style="display:none">hidden offer</div><p>Fixed: <a href="https://x.test/'
              'a" onclick="steal()">see</a>, <i>really</i>.</p><ol><li>one</li></ol>'
              '<img src="https://tracker.example/p.gif" width="1"><script>alert(1)</script>'
              '<form action="https://evil.test"><input name="pw"></form><style>p{}</style>')
    msg = ParsedMessage(message_id="m@x", sender=None, text_body="Fixed: see, really.",
                        html_source=source, html_body=sanitize_html(source))
    html = str(staff_reply_content(msg, [], cap=1000, intake_cap=1000).html)
    assert '<a href="https://x.test/a" rel="noopener noreferrer">see</a>' in html
    assert "<i>really</i>" in html and "<ol><li>one</li></ol>" in html
    for gone in ("display:none", "tracker.example", "<script", "alert", "<form", "<input",
                 "onclick", "<style"):
        assert gone not in html


def test_a_reply_over_the_cap_is_refused_naming_the_file_and_the_limit() -> None:
    msg = _fixture("gmail_reply.eml")
    content = staff_reply_content(msg, [], cap=100, intake_cap=10_000)
    [why] = content.refused
    assert "invoice-4711.pdf (125 bytes)" in why and "100 bytes" in why


def test_a_file_desk_did_not_keep_is_refused() -> None:
    msg = ParsedMessage(message_id="m@x", sender=Address("", "paul@agency.test"),
                        text_body="Here.", attachments=[
                            Attachment("huge.iso", "application/octet-stream", 50_000_000,
                                       None, "over the cap")])
    mib = 1024 * 1024
    [why] = staff_reply_content(msg, [], cap=10 * mib, intake_cap=10 * mib).refused
    assert "huge.iso (47.7 MB)" in why and "10.0 MB" in why


# -- what a notice carries ------------------------------------------------------------
def _file(index: int, size: int, *, cid: str = "", kept: bool = True) -> FileInfo:
    return FileInfo(index, f"f{index}.png", "image/png", size, cid, bool(cid),
                    b"x" * size if kept else None)


def test_pack_puts_inline_images_first_and_lists_the_rest() -> None:
    files = [_file(1, 600), _file(2, 500, cid="a"), _file(3, 300), _file(4, 50, kept=False)]
    packed = pack(files, 1000, "12", 400, {"a"})
    assert [p.cid for p in packed.related] == ["a"]
    assert [f.filename for f in packed.files] == ["f3.png"]  # f1 does not fit beside a
    listed = {e["index"]: e for e in packed.listed}
    assert listed[1]["why"].startswith("not attached") and listed[1]["by_mail"]
    assert listed[1]["command"] == "desk tickets attachment 12 1 --out f1.png"
    assert listed[4]["why"].startswith("not kept") and not listed[4]["by_mail"]
    assert listed[2]["attached"] and listed[2]["inline"]


def test_images_are_found_and_named_where_they_stood() -> None:
    html = '<p>a <img src="cid:x%40y" alt="q>r"> b <img src="cid:z"></p>'
    assert referenced_cids(html) == {"x@y", "z"}
    assert mark_images(html, {"x@y": "shot.png", "z": "z.png"}, keep={"z"}) == \
        '<p>a [image: shot.png] b <img src="cid:z"></p>'


def test_human_sizes() -> None:
    assert [human_size(n) for n in (0, 1023, 4500, 10 * 1024 * 1024)] == \
        ["0 bytes", "1023 bytes", "4 KB", "10.0 MB"]


# -- the MIME the desk writes ---------------------------------------------------------
def _mail(**kw: object) -> OutgoingMail:
    return OutgoingMail(kind="relay", event_key="k", to=[Address("Carol", "c@client.test")],
                        subject="Re: x", template="relay", context={}, **kw)  # type: ignore[arg-type]


def _built(mail: OutgoingMail, html: str | None) -> bytes:
    stamp = Stamp(Address("Desk", "support@agency.test"), "id@agency.test",
                  datetime(2026, 12, 1, tzinfo=UTC))
    return to_bytes(build_mail(mail, stamp, "text", html))


def test_files_follow_the_body_in_multipart_mixed_under_their_names() -> None:
    name = "Überweisung März – Rechnung für Dezember " * 4 + ".pdf"
    raw = _built(_mail(
        related=[InlinePart("ii_1", b"png", "image", "png", "shot.png")],
        attachments=[FilePart(name, b"%PDF", "application", "pdf"),
                     FilePart("fwd.eml", b"From: a\n\nhi", "message", "rfc822"),
                     FilePart("x", b"?", "bad type", "<script>")]), "<p><img src='cid:ii_1'></p>")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    got = [(p.get_filename(), p.get_content_type()) for p in msg.iter_attachments()]
    assert got[0] == (safe_filename(name), "application/pdf")
    assert got[0][0].endswith(".pdf") and len(got[0][0]) == 60
    assert got[1:] == [("fwd.eml", "application/octet-stream"),
                       ("x", "application/octet-stream")]
    [inline] = [p for p in msg.walk() if p["Content-ID"] == "<ii_1>"]
    assert inline.get_content_disposition() == "inline" and inline.get_filename() == "shot.png"


def test_inline_parts_without_html_still_arrive_as_files() -> None:
    raw = _built(_mail(related=[InlinePart("c1", b"png", "image", "png", "a.png")]), None)
    msg = message_from_bytes(raw, policy=policy.default)
    assert [p.get_filename() for p in msg.iter_attachments()] == ["a.png"]


@pytest.mark.parametrize("name, safe", [("../../etc/passwd", "passwd"), ("a\r\nb.txt", "a b.txt"),
                                        ("C:\\x\\y.doc", "y.doc"), (" .hidden. ", "hidden")])
def test_file_names_are_one_line_and_no_path(name: str, safe: str) -> None:
    assert safe_filename(name) == safe
