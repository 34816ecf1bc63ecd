"""One mail the desk is asked to send, as a single value from the work that causes it to
the outbox.

It holds what the mail *is*: who gets it, what it says (a template and its context),
where it sits in a thread, the event it answers, and who wrote or must approve it. What
the desk stamps on every mail (Message-ID, signed Reply-To, loop headers) is added by
``messages.queue_mail``; how it is queued (``fresh``, ``flush``) are options of that call,
not of the mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from desk.inbox.message import Address


class Thread(NamedTuple):
    """The message a mail answers and the ids of its thread so far (In-Reply-To,
    References). A tuple: one empty thread is shared by every mail that starts one."""

    in_reply_to: str | None = None
    references: Sequence[str] = ()


NO_THREAD = Thread()


class InlinePart(NamedTuple):
    """A part the HTML body shows inline (a chart, a pasted screenshot), referenced from it
    as ``cid:<cid>``."""

    cid: str
    data: bytes
    maintype: str
    subtype: str
    filename: str = ""


class FilePart(NamedTuple):
    """A file the mail carries as an attachment."""

    filename: str
    data: bytes
    maintype: str
    subtype: str


@dataclass(slots=True, kw_only=True)
class OutgoingMail:
    """Treated as immutable, though not frozen: a frozen dataclass's ``__init__`` costs
    six times as much on Python 3.11 (3 µs against 0.5 µs), paid on every mail of a
    backlog. Make a variant with ``dataclasses.replace``."""

    kind: str
    # The idempotency key: unique in the outbox, so one event never yields two mails.
    event_key: str
    to: Sequence[Address]
    subject: str
    # NAME.txt.j2, and NAME.html.j2 as well when that exists.
    template: str
    context: dict[str, Any]
    cc: Sequence[Address] = ()
    thread: Thread = NO_THREAD
    # Shown with the desk's own address (clients only ever see mail from it); None: the
    # desk's name.
    from_name: str | None = None
    # False only for what a person wrote (relayed replies, estimates): everything else
    # says Auto-Submitted, so other robots do not answer it.
    automatic: bool = True
    # Between staff: not part of the conversation the client sees.
    internal: bool = False
    # Waits for approval; it joins the conversation only once approved and sent.
    held: bool = False
    # Ids, not ORM objects: a value that holds no session state can be made anywhere.
    author_id: int | None = None
    approval_of_id: int | None = None
    related: Sequence[InlinePart] = ()
    attachments: Sequence[FilePart] = ()
    # False: the text part only, even where NAME.html.j2 exists (a notice about a
    # plain-text mail costs no HTML rendering).
    html: bool = True
    # The one staff member this mail is for: its Reply-To is bound to them, so their reply
    # proves it was them (desk/work/identity.py).
    staff_id: int | None = None
    # The estimate this mail asks the client to decide: its Reply-To is bound to the
    # estimate and to the first recipient.
    estimate_id: int | None = None
