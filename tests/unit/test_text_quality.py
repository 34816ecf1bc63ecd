"""Text quality of parsed mail: format=flowed unwrapped (RFC 3676), and HTML rendered as
text with its links, lists and quoting. Charsets: test_charset_detection.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from desk.inbox.parse import html_to_text, parse_message
from desk.inbox.parse.flowed import unflow
from desk.inbox.quotes import reply_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "text-quality"


# --------------------------------------------------------------------------- flowed


@pytest.mark.parametrize(
    ("flowed", "delsp", "expected"),
    [
        pytest.param("the checkout page \nshows an error\n", False,
                     "the checkout page shows an error\n", id="soft-break-joins"),
        pytest.param("one \ntwo \nthree\nfour\n", False, "one two three\nfour\n",
                     id="hard-break-ends-paragraph"),
        pytest.param("the checkout page  \nshows an error", True,
                     "the checkout page shows an error", id="delsp-deletes-marker"),
        pytest.param("決済ページで \nエラーが表示されます。", True,
                     "決済ページでエラーが表示されます。", id="delsp-between-cjk"),
        pytest.param("決済ページで \nエラー", False, "決済ページで エラー",
                     id="no-delsp-keeps-space"),
        pytest.param(" From the start\n  indented\n >quoted? no\n", False,
                     "From the start\n indented\n>quoted? no\n", id="space-stuffing"),
        pytest.param("> quoted text \n> continues\n>> deeper \n>> too\n", False,
                     "> quoted text continues\n>> deeper too\n", id="quote-depths"),
        pytest.param("> ends soft \nnot quoted\n", False, "> ends soft\nnot quoted\n",
                     id="depth-change-is-hard"),
        pytest.param("Sophie \n-- \nBakery \nLyon\n", False, "Sophie\n-- \nBakery Lyon\n",
                     id="separator-stands-alone"),
        pytest.param("> Sophie \n> -- \n> Bakery\n", False, "> Sophie\n> -- \n> Bakery\n",
                     id="quoted-separator"),
        pytest.param("Thanks\n-- \nSophie\n", False, "Thanks\n-- \nSophie\n",
                     id="signature-separator-is-hard"),
        pytest.param(">\n> \n>> x\n", False, ">\n>\n>> x\n", id="empty-quoted-lines"),
        pytest.param("last line soft ", False, "last line soft", id="dangling-soft-break"),
        pytest.param("", False, "", id="empty"),
    ],
)
def test_unflow(flowed: str, delsp: bool, expected: str) -> None:
    assert unflow(flowed, delsp=delsp) == expected


def test_apple_mail_flowed_delsp_reads_as_typed() -> None:
    msg = parse_message((FIXTURES / "apple-mail-flowed-delsp.eml").read_bytes())

    assert msg.text_body.startswith(
        "Hi Tom,\n\nthanks for the quick answer. The checkout page still shows the same error"
        ' when a customer pays by card: "Payment could not be processed (code 502)".'
        " PayPal works.\n\nFrom what our customers tell us it started around 7:30 this"
        " morning, right after the price update.\n\n"
        "Our Japanese supplier wrote: 決済ページでエラーが表示されます。\n\n-- \nSophie Martin\n"
    )
    assert msg.text_body.endswith(
        "> Hi Sophie, could you tell us which payment method your customers use when the"
        " error shows up?\n>\n>> The checkout page shows an error since this morning and"
        " nobody can pay."
    )
    # The quoted history and the signature still come off what staff read as the reply.
    assert reply_text(msg.text_body).endswith("決済ページでエラーが表示されます。")


def test_thunderbird_flowed_quoted_printable() -> None:
    msg = parse_message((FIXTURES / "thunderbird-flowed.eml").read_bytes())

    assert "winter ones. From 1 April we open at 8:00 instead of 9:00" in msg.text_body
    assert "Thank you in advance." in msg.text_body
    assert msg.text_body.endswith(
        "> Hello Jan, we have updated the opening hours as you asked. Please check the"
        " contact page and tell us if anything is missing."
    )
    assert reply_text(msg.text_body).endswith("Best regards,\nJan")


def _mail(content_type: str, body: str) -> bytes:
    return (f"From: a@example.com\r\nContent-Type: {content_type}\r\n\r\n"
            + body.replace("\n", "\r\n")).encode()


def test_fixed_text_keeps_its_line_ends() -> None:
    msg = parse_message(_mail("text/plain; charset=utf-8", "a line with a space \nnext\n"))

    assert msg.text_body == "a line with a space \nnext"


def test_flowed_parameters_are_case_insensitive() -> None:
    msg = parse_message(_mail('text/plain; Format="Flowed"; DelSp="Yes"', "ab \ncd\n"))

    assert msg.text_body == "abcd"


def test_flowed_in_alternative_and_html_untouched() -> None:
    raw = _mail(
        "multipart/alternative; boundary=B",
        "--B\nContent-Type: text/plain; format=flowed\n\nsoft \nbreak\n"
        "--B\nContent-Type: text/html; format=flowed\n\n<p>soft <br>\nbreak</p>\n--B--\n",
    )

    msg = parse_message(raw)

    assert msg.text_body == "soft break"
    assert msg.html_body == "<p>soft <br>\nbreak</p>"


# --------------------------------------------------------------------------- HTML


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        pytest.param('<p>See <a href="https://shop.example/order/17">your order</a>.</p>',
                     "See your order [https://shop.example/order/17].", id="link-target"),
        pytest.param('<a href="https://www.example.com/">www.example.com</a> and '
                     '<a href="mailto:sophie@example.com">sophie@example.com</a>',
                     "www.example.com and sophie@example.com", id="text-already-the-url"),
        pytest.param('<a href="mailto:billing@example.com?subject=x">Billing</a>',
                     "Billing [mailto:billing@example.com?subject=x]", id="mailto-named"),
        pytest.param('<a href="#top">Back to top</a> <a href="cid:logo"><img src="cid:logo">'
                     '</a><a href="/relative">here</a>', "Back to top here",
                     id="targets-a-reader-cannot-follow"),
        pytest.param('<a href="https://x.example/?a=1&amp;b=&quot;2&quot;">x</a>',
                     'x [https://x.example/?a=1&b="2"]', id="entities-in-href"),
        pytest.param("<ul><li>Homepage</li><li>Shop<ul><li>Cart</li></ul></li></ul>",
                     "- Homepage\n- Shop\n  - Cart", id="nested-bullets"),
        pytest.param('<ol><li>Open</li><li>Pay</li></ol><ol start="4"><li>Ship</li></ol>',
                     "1. Open\n2. Pay\n4. Ship", id="numbers-and-start"),
        pytest.param("<p>Hi</p><blockquote>Earlier<br>mail<blockquote>older</blockquote>"
                     "</blockquote><p>Bye</p>",
                     "Hi\n\n> Earlier\n> mail\n\n> > older\n\nBye", id="blockquote-quoted"),
        pytest.param("<blockquote><pre>line 1\n  line 2</pre></blockquote>",
                     "> line 1\n>   line 2", id="pre-inside-quote"),
        pytest.param("<p>a <b> b</b>  <i>c</i>\n d</p>", "a b c d", id="whitespace-collapses"),
        pytest.param("<table><tr><td>Qty</td><td>Item</td></tr><tr><th>2</th><td>Bread</td>"
                     "</tr></table>", "Qty Item\n2 Bread", id="table-cells"),
        pytest.param("<div><div><div></div></div>text</div><div></div><div>more</div>",
                     "text\nmore", id="empty-wrappers-add-nothing"),
        pytest.param("x &lt;b&gt; &amp;&nbsp;&euro; &#8212; &unknown;", "x <b> & € — &unknown;",
                     id="entities"),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p title='a>b' class=x>visible", "visible"),
        ("<div>one<p>two<li>three", "one\n\ntwo\n\n- three"),
        ("<!-- <p>hidden</p> -->shown<script>var x = '<p>no</p>';</script>", "shown"),
        ("<style>p { color: red }</style><p>styled</p>", "styled"),
        ("text with a < sign and a > sign", "text with a < sign and a > sign"),
        ("<b>unclosed <i>tags <u>everywhere", "unclosed tags everywhere"),
        ("<o:p>Word</o:p><st1:place>markup</st1:place>", "Wordmarkup"),
    ],
)
def test_tag_soup_is_read_like_a_browser(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


def test_hostile_nesting_stays_small() -> None:
    html = "<blockquote>x" * 3000 + "<ul><li>y" * 3000

    text = html_to_text(html)

    # A prefix for every level on every line would be ~50 MB of "> ".
    assert len(text) < 500_000
    assert text.splitlines()[-1].lstrip("> ").strip() in ("- y", "y")


def test_html_only_mail_text_keeps_links_and_lists() -> None:
    html = ('<html><body><p>Dear support,</p><p>the new <a href="https://shop.example/sale">'
            "sale page</a> shows:</p><ol><li>the old prices</li><li>no &euro; sign</li></ol>"
            "</body></html>")
    msg = parse_message(_mail("text/html; charset=utf-8", html))

    assert msg.text_body == (
        "Dear support,\n\nthe new sale page [https://shop.example/sale] shows:\n\n"
        "1. the old prices\n2. no € sign"
    )
