"""Files on their way between clients and staff: which travel with a mail, which are only
listed (and how to get them), inline images, and what a staff reply may relay.

One cap governs every mail that carries files, ``[notices] max_attachment_bytes`` for all
its files together: mail servers refuse big mail, and a notice that never arrives is worse
than a notice that lists a file. Files over ``[intake] max_attachment_bytes`` were never
kept (metadata only) and can only be listed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.inbox.message import ParsedMessage
from desk.inbox.parse import html_to_text, sanitize_html
from desk.inbox.quotes import reply_html, reply_text
from desk.names import staff_greeting
from desk.outbound.compose import safe_filename
from desk.outbound.mail import FilePart, InlinePart, OutgoingMail, Thread
from desk.outbound.messages import queue_mail, staff_address
from desk.routing.subject import tagged
from desk.store.models import Attachment, Message, Staff, Ticket
from desk.work.actions import Refused

_MIB = 1024 * 1024
# Whole <img> tags, quoted attribute values included (nh3 writes them double-quoted).
_IMG = re.compile(r"""<img\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_CID_SRC = re.compile(r"""\bsrc\s*=\s*(?:"cid:([^"]*)"|'cid:([^']*)'|cid:([^\s>]+))""",
                      re.IGNORECASE)


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < _MIB:
        return f"{size / 1024:.0f} KB"
    return f"{size / _MIB:.1f} MB"


def _cid(tag: str) -> str | None:
    m = _CID_SRC.search(tag)
    if m is None:
        return None
    # RFC 2392: a cid: URL is the Content-ID, URL-encoded.
    return unquote(next(g for g in m.groups() if g is not None)).strip("<>")


def referenced_cids(html: str | None) -> set[str]:
    """The Content-IDs the HTML shows as images."""
    if not html or "cid:" not in html.lower():
        return set()
    return {cid for tag in _IMG.findall(html) if (cid := _cid(tag))}


def shown_inline(content_type: str, content_id: str, html: str | None) -> bool:
    """An image the message's HTML shows where it stands (not a file beside the text)."""
    return bool(content_id) and content_type.lower().startswith("image/") and \
        content_id in referenced_cids(html)


def mark_images(html: str, names: dict[str, str], keep: set[str] | None = None) -> str:
    """Images whose Content-ID is in ``names`` and not in ``keep`` become ``[image: name]``
    where they stood (``keep`` None: every one of them)."""
    def swap(m: re.Match[str]) -> str:
        cid = _cid(m.group(0))
        if cid is None or cid not in names or (keep is not None and cid in keep):
            return m.group(0)
        return str(escape(f"[image: {names[cid]}]"))
    return _IMG.sub(swap, html)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file of a ticket, numbered across the ticket (``desk tickets attachment REF N``)."""

    index: int
    name: str
    content_type: str
    size: int
    cid: str
    inline: bool
    data: bytes | None
    note: str = ""

    @property
    def kept(self) -> bool:
        return self.data is not None

    @property
    def parts(self) -> tuple[str, str]:
        maintype, _, subtype = self.content_type.partition("/")
        return maintype or "application", subtype or "octet-stream"


def display_name(a: Attachment | FileInfo, index: int) -> str:
    name = a.filename if isinstance(a, Attachment) else a.name
    return safe_filename(name) or f"attachment-{index}"


def ticket_offset(session: Session, message: Message) -> int:
    """How many files the ticket's earlier messages hold: this message's first is one more."""
    # Flushed first: an earlier message of the same batch may still hold its rows.
    count = session.scalar(
        select(func.count(Attachment.id)).join(Message, Attachment.message_pk == Message.id)
        .where(Message.ticket_id == message.ticket_id, Message.id < message.id))
    return int(count or 0)


def files_of(message: Message, offset: int) -> list[FileInfo]:
    return [FileInfo(offset + n, display_name(a, offset + n), a.content_type, a.size,
                     a.content_id or "", a.inline, a.content, a.note)
            # Loaded rows in the order they were written; new ones (no id yet) as listed.
            for n, a in enumerate(sorted(message.attachments, key=lambda a: a.id or 0), 1)]


def ticket_files(session: Session, ticket_id: int) -> list[FileInfo]:
    rows = session.scalars(
        select(Attachment).join(Message, Attachment.message_pk == Message.id)
        .where(Message.ticket_id == ticket_id).order_by(Message.id, Attachment.id))
    return [FileInfo(n, display_name(a, n), a.content_type, a.size, a.content_id or "",
                     a.inline, a.content, a.note) for n, a in enumerate(rows, 1)]


@dataclass(slots=True)
class Packed:
    """What one mail carries within the cap, and every file in words for its text."""

    related: list[InlinePart] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)


def pack(files: list[FileInfo], cap: int, ref: str, intake_cap: int,
         inline_cids: set[str]) -> Packed:
    """Inline images first (the text shows where they stand), then the rest in order,
    each while the total stays within ``cap``; whatever is left is listed with how to get
    it."""
    packed, total = Packed(), 0
    attached: set[int] = set()
    for f in sorted(files, key=lambda f: (f.cid not in inline_cids, f.index)):
        if f.data is not None and total + f.size <= cap:
            total += f.size
            attached.add(f.index)
            maintype, subtype = f.parts
            if f.cid in inline_cids:
                packed.related.append(InlinePart(f.cid, f.data, maintype, subtype, f.name))
            else:
                packed.files.append(FilePart(f.name, f.data, maintype, subtype))
    for f in files:
        entry: dict[str, Any] = {
            "index": f.index, "name": f.name, "type": f.content_type, "size": human_size(f.size),
            "attached": f.index in attached, "inline": f.cid in inline_cids, "why": "",
            "command": f"desk tickets attachment {ref} {f.index} --out {shlex.quote(f.name)}",
            "by_mail": f.kept and f.size <= cap}
        if f.index not in attached and f.kept:
            entry["why"] = f"not attached: over the {human_size(cap)} a mail may carry"
        elif f.index not in attached:
            entry["why"] = (f"not kept by desk: over the {human_size(intake_cap)} limit for "
                            "stored files")
            entry["command"] += " (from the original mail, while desk keeps that)"
        packed.listed.append(entry)
    return packed


@dataclass(slots=True)
class NoticeBody:
    """A notice's account of the client's mail, when it has files or HTML."""

    text: str
    html: Markup | None
    packed: Packed


def notice_body(session: Session, message: Message, kind: str, ref: str, cap: int,
                intake_cap: int, parsed: ParsedMessage | None) -> NoticeBody | None:
    """None for a plain-text mail without files: the notice is what it always was (the
    backlog's commonest case costs no query and no MIME work)."""
    if message.body_html is None and not message.attachments:
        return None
    reply = kind == "reply"
    html = message.body_html
    if reply and parsed is not None and parsed.html_source:
        html = sanitize_html(reply_html(parsed.html_source))
    offset = ticket_offset(session, message) if message.attachments and reply else 0
    files = files_of(message, offset)
    names = {f.cid: f.name for f in files if f.cid}
    shown = {f.cid for f in files if f.inline} & referenced_cids(html)
    packed = pack(files, cap, ref, intake_cap, shown)
    text = reply_text(message.body_text) if reply else message.body_text
    if html is not None and shown:
        # The client's text part rarely says where the images stood; their HTML does.
        text = html_to_text(mark_images(html, names))
        text = reply_text(text) if reply else text
    if html is not None and names:
        html = mark_images(html, names, keep={p.cid for p in packed.related})
    # Only a reply's HTML was cut here (reading it as text costs a parse of the HTML):
    # what the client wrote as a new mail is kept whole.
    if html is not None and (not html.strip() or (reply and _blank(html))):
        html = None
    # Sanitised by nh3 (here, or by the parser before it was stored): safe to show as is.
    return NoticeBody(text, Markup(html) if html is not None else None, packed)


@dataclass(slots=True)
class ReplyContent:
    """What a staff reply sends the client besides its text."""

    html: Markup | None = None
    related: list[InlinePart] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)
    # Why it cannot go as it is (a file too big): then nothing goes.
    refused: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [f.filename for f in self.files] + [p.filename for p in self.related]


def staff_reply_content(msg: ParsedMessage, command_lines: list[str], cap: int,
                        intake_cap: int) -> ReplyContent:
    """The reply's HTML without quoted history, signature and commands, sanitised; the
    images it shows and the files it carries. Images that only the quoted history or the
    signature showed (mail programs attach them again) stay behind."""
    content = ReplyContent()
    html: str | None = None
    if msg.html_source:
        html = sanitize_html(reply_html(msg.html_source, command_lines))
        if not _shows_something(html, command_lines):
            html = None
    shown = referenced_cids(html)
    history = referenced_cids(msg.html_body) - shown
    total = 0
    for n, att in enumerate(msg.attachments, 1):
        if att.content_id and att.content_id in history:
            continue
        name = safe_filename(att.filename) or f"attachment-{n}"
        if att.content is None:
            content.refused.append(
                f"{name} ({human_size(att.size)}) is over the {human_size(intake_cap)} limit "
                "for files desk keeps: share it by link instead")
            continue
        total += att.size
        maintype, _, subtype = att.content_type.partition("/")
        if shown_inline(att.content_type, att.content_id, html):
            content.related.append(InlinePart(att.content_id, att.content, maintype, subtype,
                                              name))
        else:
            content.files.append(FilePart(name, att.content, maintype, subtype or "octet-stream"))
    if total > cap:
        sizes = ", ".join(f"{name} ({human_size(len(data))})" for name, data in [
            *((f.filename, f.data) for f in content.files),
            *((p.filename, p.data) for p in content.related)])
        content.refused.append(
            f"the attachments ({sizes}) come to {human_size(total)}, over the "
            f"{human_size(cap)} one mail to the client may carry: send fewer or smaller "
            "files, or share them by link")
    content.html = Markup(html) if html is not None else None
    return content


_NOTHING_SHOWN = re.compile(r"<[^>]*>|&nbsp;|&#160;|\s")


def _blank(html: str) -> bool:
    # Sanitised HTML with no text and no image: a regular expression, not a parse.
    return "<img" not in html and not _NOTHING_SHOWN.sub("", html)


def _shows_something(html: str, command_lines: list[str]) -> bool:
    if _blank(html):
        return False
    if not command_lines:
        return True
    text = html_to_text(html).strip()
    # Belt and braces: a command the HTML cut missed must never reach the client.
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return not any(first == " ".join(c.split()) for c in command_lines)


def _wanted(arg: str, count: int, ref: str) -> set[int]:
    wanted: set[int] = set()
    for word in re.split(r"[\s,]+", arg.strip()):
        if not word:
            continue
        if not word.isdigit() or not 1 <= int(word) <= count:
            raise Refused(f"there is no attachment {word} on #{ref} (it has 1 to {count}; "
                          f"`desk tickets show {ref}` lists them)")
        wanted.add(int(word))
    return wanted


def mail_attachments(session: Session, settings: Settings, ticket: Ticket, staff: Staff,
                     inbound: Message, arg: str, now: datetime) -> str:
    """``#attachments [N ...]``: the ticket's files (or those numbered) to the staff member
    who asked, in as many mails as the cap needs; what no mail may carry is listed."""
    files = ticket_files(session, ticket.id)
    if not files:
        raise Refused(f"#{ticket.ref} has no attachments")
    wanted = _wanted(arg, len(files), ticket.ref)
    cap = settings.notices.max_attachment_bytes
    batches: list[list[FileInfo]] = []
    left: list[FileInfo] = []
    for f in files:
        if wanted and f.index not in wanted:
            continue
        if f.data is None or f.size > cap:
            left.append(f)
        elif batches and sum(b.size for b in batches[-1]) + f.size <= cap:
            batches[-1].append(f)
        else:
            batches.append([f])
    listing = pack(left, cap, ticket.ref, settings.intake.max_attachment_bytes, set()).listed
    parts = max(len(batches), 1)
    for k in range(parts):
        batch = batches[k] if batches else []
        queue_mail(session, settings, OutgoingMail(
            kind="attachments", event_key=f"attachments:{inbound.id}:{k + 1}",
            to=[staff_address(staff)], staff_id=staff.id,
            subject=f"Attachments{f' ({k + 1} of {parts})' if parts > 1 else ''}: "
                    f"{tagged(ticket.subject, ticket.ref)}",
            template="attachments",
            context={"staff_name": staff_greeting(staff.name, staff.email),
                     "ref": ticket.ref, "subject": ticket.subject, "part": k + 1,
                     "parts": parts, "cap": human_size(cap),
                     "files": [{"index": f.index, "name": f.name, "type": f.content_type,
                                "size": human_size(f.size)} for f in batch],
                     "left": listing if k == 0 else []},
            attachments=[FilePart(f.name, f.data, *f.parts) for f in batch
                         if f.data is not None],
            thread=Thread(inbound.message_id, [inbound.message_id]), internal=True,
        ), ticket=ticket, now=now)
    sent = sum(len(b) for b in batches)
    return f"{sent} file(s) of #{ticket.ref} mailed to {staff.email}" + (
        f"; {len(left)} listed (too big for a mail or not kept)" if left else "")
