"""Building outgoing MIME with the standard library: headers that thread and never loop."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address as HAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from desk.inbox.message import Address

LOOP_HEADER = "X-Desk-Loop"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str) -> str:
    """Header-safe text: CR/LF and other control characters can never add a header."""
    return _CONTROL.sub(" ", text).strip()


def _addr(a: Address) -> HAddress:
    try:
        return HAddress(display_name=one_line(a.name), addr_spec=a.email)
    except (ValueError, IndexError):
        return HAddress(addr_spec=a.email)


def new_message_id(domain: str, hint: str) -> str:
    idstring = re.sub(r"[^A-Za-z0-9.-]", "", hint)[:40] or None
    return make_msgid(idstring=idstring, domain=domain)[1:-1]


def build_mail(
    *,
    from_addr: Address,
    to: Sequence[Address],
    subject: str,
    text: str,
    html: str | None = None,
    message_id: str,
    date: datetime,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    cc: Sequence[Address] = (),
    auto_submitted: str | None = "auto-replied",
    loop_value: str | None = None,
    extra_headers: dict[str, str] | None = None,
    related: Sequence[tuple[str, bytes, str, str]] = (),
) -> EmailMessage:
    """``related``: inline parts for the HTML body as (content-id, bytes, maintype,
    subtype), referenced from the HTML as ``cid:<content-id>``."""
    msg = EmailMessage()
    msg["From"] = _addr(from_addr)
    msg["To"] = [_addr(a) for a in to]
    if cc:
        msg["Cc"] = [_addr(a) for a in cc]
    msg["Subject"] = one_line(subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{message_id}>"
    if reply_to:
        msg["Reply-To"] = reply_to
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = [r for r in dict.fromkeys(references) if r]
    if refs:
        # Long threads: keep the first and the last ids, as RFC 5322 suggests.
        if len(refs) > 20:
            refs = [refs[0], *refs[-19:]]
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    if auto_submitted:
        msg["Auto-Submitted"] = auto_submitted
        # Ask Exchange not to answer our automatic mail with its own automatic mail.
        msg["X-Auto-Response-Suppress"] = "All"
    if loop_value:
        msg[LOOP_HEADER] = loop_value
    for name, value in (extra_headers or {}).items():
        msg[name] = one_line(value)
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
        html_part = msg.get_payload()[1]  # type: ignore[index]
        for cid, data, maintype, subtype in related:
            html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>",
                                  disposition="inline")
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    """Wire format (CRLF), fixed once: a resend is then byte-identical."""
    return msg.as_bytes(policy=SMTP)
