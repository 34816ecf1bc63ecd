"""Reply-token addresses: ``support+<ref>.<signature>@domain`` and its bound kinds.

Every outgoing mail carries one as Reply-To. The HMAC means a stranger who guesses a
ticket number still cannot forge an address that threads into it. Three kinds:

* ``support+12.<sig>``: the ticket's address, given to clients. It threads; it proves
  nobody's identity.
* ``support+12.s7.<sig>``: given to staff member 7 only (every notice to them). A reply
  sent there by staff member 7 proves it was them.
* ``support+12.e5.<sig>``: on estimate 5, signed for the one recipient it was sent to.
  A decision sent there from that recipient proves it was them.

A signature is checked against the current secret and every previous one, so a secret
rotation breaks no reply address already in people's mailboxes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

_SIG_LEN = 12  # 60 bits of base32: unguessable by brute force through a mail server

TokenKind = Literal["ticket", "staff", "estimate"]
_PREFIX: dict[str, TokenKind] = {"": "ticket", "s": "staff", "e": "estimate"}


def _sign(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:_SIG_LEN]


def signature(secret: str, ref: str) -> str:
    return _sign(secret, f"ticket:{ref}")


def _message(kind: TokenKind, ref: str, holder: int | None, recipient: str) -> str:
    if kind == "staff":
        return f"staff:{ref}:{holder}"
    if kind == "estimate":
        return f"estimate:{ref}:{holder}:{recipient.lower()}"
    return f"ticket:{ref}"


def token_address(address: str, secret: str, ref: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local}+{ref}.{signature(secret, ref)}@{domain}"


def staff_token_address(address: str, secret: str, ref: str, staff_id: int) -> str:
    local, _, domain = address.partition("@")
    return f"{local}+{ref}.s{staff_id}.{_sign(secret, _message('staff', ref, staff_id, ''))}" \
           f"@{domain}"


def estimate_token_address(address: str, secret: str, ref: str, estimate_id: int,
                           recipient: str) -> str:
    local, _, domain = address.partition("@")
    sig = _sign(secret, _message("estimate", ref, estimate_id, recipient))
    return f"{local}+{ref}.e{estimate_id}.{sig}@{domain}"


@dataclass(frozen=True, slots=True)
class Token:
    """A reply-token address of ours, as read from a recipient header (unchecked)."""

    address: str
    ref: str
    kind: TokenKind
    holder: int | None  # the staff member or the estimate it is bound to
    sig: str

    def valid(self, secrets: Sequence[str], *, recipient: str = "") -> bool:
        """Signed by one of ``secrets``; an estimate token also for ``recipient``."""
        message = _message(self.kind, self.ref, self.holder, recipient)
        return any(hmac.compare_digest(self.sig, _sign(s, message)) for s in secrets)


def parse_token(candidate: str, address: str) -> Token | None:
    """The token in ``candidate`` when it is a token address of ours, else None."""
    local, _, domain = address.lower().partition("@")
    m = re.fullmatch(rf"{re.escape(local)}\+(\d+)\.(?:([se])(\d+)\.)?([a-z2-7]+)"
                     rf"@{re.escape(domain)}", candidate.lower())
    if not m:
        return None
    ref, prefix, holder, sig = m.groups()
    return Token(candidate.lower(), ref, _PREFIX[prefix or ""],
                 int(holder) if holder else None, sig)


def ref_from_address(candidate: str, address: str, secret: str | Sequence[str]
                     ) -> tuple[str | None, bool]:
    """Return (ref, valid) when ``candidate`` is a ticket or staff token address of ours.

    ref is None when the address is not a token address at all; valid is False when it
    looks like one but the signature does not match (a forgery or a typo). An estimate
    token is valid only with its recipient: see ``Token.valid``."""
    token = parse_token(candidate, address)
    if token is None:
        return None, False
    secrets = (secret,) if isinstance(secret, str) else secret
    return token.ref, token.kind != "estimate" and token.valid(secrets)
