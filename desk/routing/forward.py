"""Staff forwarding a client's email to the support address: find the original sender,
so the ticket opens on the client's behalf rather than the colleague's."""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import parseaddr

from desk.inbox.message import Address, ParsedMessage

_MARKERS = re.compile(
    r"^\s*(?:-{2,}\s*(?:Forwarded message|Original Message|Forwarded Message|"
    r"Weitergeleitete Nachricht|Ursprüngliche Nachricht|Message transféré|Message d'origine|"
    r"Mensaje reenviado|Mensaje original|Doorgestuurd bericht|Oorspronkelijk bericht)"
    r"\s*-{2,}|Begin forwarded message:|Anfang der weitergeleiteten Nachricht:)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_FROM = re.compile(r"^\s*[*>]*\s*(?:From|Von|De|Van|Från|Fra)\s*:\s*\**\s*(.+)$",
                   re.IGNORECASE | re.MULTILINE)
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|fw|wg|tr|enc|rv|doorst)\s*:", re.IGNORECASE)


def _address(text: str) -> Address | None:
    # Outlook writes "Name [mailto:a@b]"; everyone else "Name <a@b>" or a bare address.
    text = re.sub(r"\[mailto:([^\]]+)\]", r"<\1>", text.strip())
    name, email = parseaddr(text)
    if "@" not in email:
        return None
    return Address(name.strip().strip('"'), email.lower())


def original_sender(msg: ParsedMessage) -> Address | None:
    """The sender of the mail a staff member forwarded, or None if this is no forward."""
    for att in msg.attachments:
        if att.content_type == "message/rfc822" and att.content:
            headers = BytesHeaderParser(policy=default).parsebytes(att.content)
            found = _address(str(headers.get("From", "")))
            if found:
                return found
    marker = _MARKERS.search(msg.text_body)
    if marker is None and not _FORWARD_SUBJECT.match(msg.subject):
        return None
    start = marker.end() if marker else 0
    m = _FROM.search(msg.text_body, start, start + 2000)
    return _address(m.group(1)) if m else None
