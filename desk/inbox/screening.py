"""Mail-loop safety: may the desk send an automatic acknowledgement to this message?

Rules follow RFC 3834 (automatic responses) plus what mail software does in practice:
never auto-answer list traffic, other robots, bounces, or ourselves. Every rule that
matches contributes a human-readable reason, so staff can see *why* no
acknowledgement went out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from desk.inbox.message import ParsedMessage

__all__ = ["Blocker", "auto_reply_blockers", "is_bounce", "screen"]

_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply", "auto-reply"})
_LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post")
_AUTORESPONDER_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder")
# Local parts of robot mailboxes, compared with "-", "_" and "." removed.
_DAEMON_LOCAL_PARTS = frozenset({"mailerdaemon", "postmaster"})
_NOREPLY_PREFIXES = ("noreply", "donotreply")


@dataclass(frozen=True, slots=True)
class Blocker:
    """A screening rule that matched: its name (shown in the ticket's events) and why."""

    rule: str
    reason: str


def screen(
    msg: ParsedMessage,
    *,
    own_addresses: Iterable[str],
    loop_header_value: str | None = None,
) -> list[Blocker]:
    """Every screening rule that matches ``msg``, in order; none means acknowledging is
    safe."""
    own = {_canonical_address(addr) for addr in own_addresses if addr.strip()}
    rules: tuple[tuple[str, Callable[[ParsedMessage], str | None]], ...] = (
        ("auto-submitted", _auto_submitted),
        ("precedence", _precedence),
        ("list-headers", _list_headers),
        ("auto-response-suppress", _auto_response_suppress),
        ("autoresponder-headers", _autoresponder_headers),
        ("loop-header", lambda m: _loop_headers(m, loop_header_value)),
        ("null-return-path", _null_return_path),
        ("missing-sender", _missing_sender),
        ("robot-sender", _robot_sender),
        ("own-sender", lambda m: _own_sender(m, own)),
        ("report", _report),
    )
    return [Blocker(name, reason) for name, check in rules if (reason := check(msg))]


def auto_reply_blockers(
    msg: ParsedMessage,
    *,
    own_addresses: Iterable[str],
    loop_header_value: str | None = None,
) -> list[str]:
    """Reasons not to auto-reply to ``msg``; an empty list means acknowledging is safe."""
    return [b.reason for b in screen(msg, own_addresses=own_addresses,
                                     loop_header_value=loop_header_value)]


def is_bounce(msg: ParsedMessage) -> bool:
    """Whether ``msg`` is a delivery failure report rather than mail from a person.

    Structured DSNs (RFC 3464) are recognised by their parsed fields or content type;
    older MTAs send plain-text bounces, so a MAILER-DAEMON sender counts too.
    """
    if msg.dsn_original_message_id or msg.dsn_failed_recipients:
        return True
    if _report_type(msg) == "delivery-status":
        return True
    return msg.sender is not None and _local_key(msg.sender.email) == "mailerdaemon"


# ---------------------------------------------------------------------------- helpers


def _values(msg: ParsedMessage, name: str) -> list[str]:
    return [value.strip() for value in msg.headers.get(name, [])]


def _first_token(value: str) -> str:
    # "auto-generated (failure)" / "bulk; comment" -> the keyword alone
    match = re.match(r"\s*([^\s;(]*)", value)
    return match.group(1).lower() if match else ""


def _local_part(address: str) -> str:
    local, at, _ = address.rpartition("@")
    return local if at else address


def _local_key(address: str) -> str:
    """Local part without +tag and without the punctuation robots vary (no-reply, no_reply)."""
    local = _local_part(address).lower().split("+", 1)[0]
    return re.sub(r"[-_.]", "", local)


def _canonical_address(address: str) -> str:
    """support+123.abc@x -> support@x: plus-addressing still reaches the same mailbox."""
    address = address.strip().strip("<>").lower()
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    return f"{local.split('+', 1)[0]}@{domain}"


def _content_type(msg: ParsedMessage) -> str:
    value = msg.header("content-type") or ""
    return value.split(";", 1)[0].strip().lower()


def _report_type(msg: ParsedMessage) -> str | None:
    if _content_type(msg) != "multipart/report":
        return None
    match = re.search(r'report-type\s*=\s*"?([\w.-]+)', msg.header("content-type") or "", re.I)
    return match.group(1).lower() if match else ""


# ---------------------------------------------------------------------------- rules


def _auto_submitted(msg: ParsedMessage) -> str | None:
    for value in _values(msg, "auto-submitted"):
        if _first_token(value) != "no":
            return f"Auto-Submitted: {value or '(empty)'} (automatic message, RFC 3834)"
    return None


def _precedence(msg: ParsedMessage) -> str | None:
    for value in _values(msg, "precedence"):
        if _first_token(value) in _BULK_PRECEDENCE:
            return f"Precedence: {value} (bulk or list mail)"
    return None


def _list_headers(msg: ParsedMessage) -> str | None:
    present = [name for name in _LIST_HEADERS if name in msg.headers]
    if present:
        return f"mailing-list headers present ({', '.join(present)})"
    return None


def _auto_response_suppress(msg: ParsedMessage) -> str | None:
    # Exchange's way of asking for no auto-replies: "All", "OOF", "AutoReply", "DR"...
    for value in _values(msg, "x-auto-response-suppress"):
        tokens = {tok.strip().lower() for tok in value.split(",") if tok.strip()}
        if tokens - {"none"}:
            return f"X-Auto-Response-Suppress: {value}"
    return None


def _autoresponder_headers(msg: ParsedMessage) -> str | None:
    present = [name for name in _AUTORESPONDER_HEADERS if name in msg.headers]
    if present:
        return f"sent by an autoresponder ({', '.join(present)})"
    return None


def _loop_headers(msg: ParsedMessage, loop_header_value: str | None) -> str | None:
    if "x-desk-loop" in msg.headers:
        return "X-Desk-Loop present: this message came from a desk"
    if loop_header_value:
        ours = loop_header_value.strip().lower()
        if any(value.lower() == ours for value in _values(msg, "x-loop")):
            return f"X-Loop: {loop_header_value} is our own loop marker"
    return None


def _null_return_path(msg: ParsedMessage) -> str | None:
    if msg.return_path == "":
        return "null envelope sender (Return-Path: <>)"
    return None


def _missing_sender(msg: ParsedMessage) -> str | None:
    if msg.sender is None or not msg.sender.email:
        return "no sender address to reply to"
    return None


def _robot_sender(msg: ParsedMessage) -> str | None:
    if msg.sender is None:
        return None
    key = _local_key(msg.sender.email)
    if key in _DAEMON_LOCAL_PARTS or key.startswith(_NOREPLY_PREFIXES):
        return f"sender {msg.sender.email} is a system or no-reply mailbox"
    return None


def _own_sender(msg: ParsedMessage, own: set[str]) -> str | None:
    if msg.sender is not None and _canonical_address(msg.sender.email) in own:
        return f"sender {msg.sender.email} is one of our own addresses"
    return None


def _report(msg: ParsedMessage) -> str | None:
    if msg.dsn_original_message_id or msg.dsn_failed_recipients:
        return "delivery status notification (bounce)"
    report_type = _report_type(msg)
    if report_type is not None:
        return f"multipart/report ({report_type or 'unknown type'}): a machine-generated report"
    return None
