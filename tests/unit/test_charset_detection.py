"""Undeclared and mislabelled 8-bit mail decoded as a reader would see it.

Each sample is a few lines of support mail in its own language, sent in the charsets its
mail programs use, once with the charset declared and once without (body and raw 8-bit
subject alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desk.inbox.parse import charsets, parse_message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "text-quality"

GREEK = """Καλημέρα σας,

από σήμερα το πρωί η σελίδα πληρωμής εμφανίζει σφάλμα και οι πελάτες μας
δεν μπορούν να ολοκληρώσουν τις παραγγελίες τους. Άλλαξε κάτι στον διακομιστή;
Μπορείτε να το ελέγξετε το συντομότερο;

Ευχαριστώ πολύ,
Μαρία Παπαδοπούλου"""

HEBREW = """שלום רב,

מאז הבוקר דף התשלום באתר מציג שגיאה, והלקוחות שלנו לא מצליחים להשלים הזמנות.
ניסינו לנקות את המטמון אבל זה לא עזר.
אפשר לבדוק את זה בהקדם?

תודה רבה,
דנה כהן"""

POLISH = """Dzień dobry,

od rana strona płatności wyświetla błąd i klienci nie mogą złożyć zamówienia.
Czy możecie to sprawdzić jak najszybciej? Zależy nam na tym, bo trwa wyprzedaż.
Świąteczna promocja kończy się w piątek.

Pozdrawiam serdecznie,
Łukasz Żółkiewski"""

JAPANESE = """お世話になっております。

今朝から決済ページでエラーが表示され、お客様が注文を完了できません。
キャッシュを削除しても改善しませんでした。
お手数ですが、至急ご確認いただけますでしょうか。

よろしくお願いいたします。
田中"""

WESTERN = """Hello,

the invoice for March says “€1,250.00” but we agreed on €1,100 – could you check?
It’s the second time this happens… our accountant isn’t amused.

Thanks,
Zoë Müller"""

RUSSIAN = """Здравствуйте,

с утра страница оплаты показывает ошибку, клиенты не могут оформить заказ.
Посмотрите, пожалуйста, как можно скорее.

Спасибо,
Ольга"""

SAMPLES = [
    # (language, body, subject, charsets its mail programs send)
    ("greek", GREEK, "Σφάλμα στη σελίδα πληρωμής", ["iso-8859-7", "windows-1253"]),
    ("hebrew", HEBREW, "שגיאה בדף התשלום", ["windows-1255", "iso-8859-8"]),
    ("polish", POLISH, "Błąd na stronie płatności", ["iso-8859-2", "windows-1250"]),
    ("japanese", JAPANESE, "決済ページのエラーについて", ["iso-2022-jp", "shift_jis"]),
    ("western", WESTERN, "Invoice “March” – wrong amount", ["windows-1252"]),
    ("russian", RUSSIAN, "Ошибка на странице оплаты", ["koi8-r", "windows-1251"]),
]
CASES = [
    pytest.param(body, subject, charset, declared, id=f"{lang}-{charset}-{tag}")
    for lang, body, subject, charset_list in SAMPLES
    for charset in charset_list
    for declared, tag in ((True, "declared"), (False, "undeclared"))
]


def _raw(body: bytes, content_type: str, subject: bytes = b"Checkout error") -> bytes:
    head = (b"From: Client <client@example.com>\r\nTo: support@agency.test\r\n"
            b"Subject: " + subject + b"\r\nMessage-ID: <cs@example.com>\r\n"
            b"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: " + content_type.encode() + b"\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n")
    return head + body.replace(b"\n", b"\r\n") + b"\r\n"


@pytest.mark.parametrize(("text", "subject", "charset", "declared"), CASES)
def test_reader_sees_the_text_declared_or_not(
    text: str, subject: str, charset: str, declared: bool
) -> None:
    content_type = f'text/plain; charset="{charset}"' if declared else "text/plain"

    msg = parse_message(_raw(text.encode(charset), content_type, subject.encode(charset)))

    assert msg.text_body == text
    # A raw 8-bit subject declares nothing itself: it is read like the message's body.
    assert msg.subject == subject
    # Only text that declared nothing is reported (the subject never declares).
    assert bool([d for d in msg.defects if d.startswith("body:")]) == (not declared)


def test_outlook_express_fixture_with_no_charset_anywhere() -> None:
    msg = parse_message((FIXTURES / "outlook-express-greek-undeclared.eml").read_bytes())

    assert msg.subject == "Σφάλμα στη σελίδα πληρωμής"
    assert msg.text_body == GREEK
    assert "body: 8-bit text without a charset, read as cp1253" in msg.defects


def _no_detection(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("charset detection ran on text that needs none")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (POLISH.encode("utf-8"), "text/plain"),
        (POLISH.encode("utf-8"), "text/plain; charset=utf-8"),
        (POLISH.encode("iso-8859-2"), "text/plain; charset=iso-8859-2"),
        (GREEK.encode("cp1253"), "text/plain; charset=windows-1253"),
        (WESTERN.encode("cp1252"), "text/plain; charset=iso-8859-1"),
        (JAPANESE.encode("shift_jis"), "text/plain; charset=Shift_JIS"),
    ],
)
def test_utf8_and_declared_charsets_never_reach_the_detector(
    body: bytes, content_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charsets, "from_bytes", _no_detection)

    msg = parse_message(_raw(body, content_type))

    assert msg.text_body in (POLISH, GREEK, WESTERN, JAPANESE)
    assert not [d for d in msg.defects if "charset" in d]


def test_text_not_valid_in_its_declared_charset_is_detected() -> None:
    # A webmail that labels everything UTF-8 but passes the user's Windows text through.
    msg = parse_message(_raw(POLISH.encode("cp1250"), "text/plain; charset=utf-8"))

    assert msg.text_body == POLISH
    assert any("not valid 'utf-8'" in d for d in msg.defects)


def test_unknown_charset_label_is_detected() -> None:
    msg = parse_message(_raw(HEBREW.encode("cp1255"), "text/plain; charset=x-mac-hebrew-ish"))

    assert msg.text_body == HEBREW
    assert any("unknown charset" in d for d in msg.defects)


def test_iso_2022_jp_labelled_us_ascii_is_japanese() -> None:
    msg = parse_message(_raw(JAPANESE.encode("iso-2022-jp"), "text/plain; charset=us-ascii"))

    assert msg.text_body == JAPANESE


def test_raw_subject_follows_the_charset_the_body_declares() -> None:
    # Too short to detect on its own: "שגיאה בדף התשלום" alone reads as Cyrillic.
    raw = _raw(HEBREW.encode("cp1255"), "text/plain; charset=windows-1255",
               "שגיאה בדף התשלום".encode("cp1255"))

    msg = parse_message(raw)

    assert msg.subject == "שגיאה בדף התשלום"
    assert "like the rest of the message" in " ".join(msg.defects)


def test_undeclared_part_follows_a_sibling_that_declares() -> None:
    raw = (b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/alternative; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + "Dziękuję, działa!".encode("cp1250") + b"\r\n"
           b"--B\r\nContent-Type: text/html; charset=windows-1250\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           + "<p>Dziękuję, działa!</p>".encode("cp1250") + b"\r\n--B--\r\n")

    msg = parse_message(raw)

    assert msg.text_body == "Dziękuję, działa!"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Zoë".encode("cp1252"), "Zoë"),  # ties among Latin charsets: cp1252 first
        ("Grüße aus Köln".encode("cp1252"), "Grüße aus Köln"),
        ("Błąd".encode("cp1250"), "Błąd"),  # not "B陰d": no Han inside a Latin word
    ],
)
def test_a_few_words_still_read_right(data: bytes, expected: str) -> None:
    assert parse_message(_raw(data, "text/plain")).text_body == expected
