"""Reply-token addresses: ``support+<ref>.<signature>@domain``.

Every outgoing mail carries one as Reply-To. The HMAC means a stranger who
guesses a ticket number still cannot forge an address that threads into it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_SIG_LEN = 12  # 60 bits of base32: unguessable by brute force through a mail server


def signature(secret: str, ref: str) -> str:
    digest = hmac.new(secret.encode(), f"ticket:{ref}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:_SIG_LEN]


def token_address(address: str, secret: str, ref: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local}+{ref}.{signature(secret, ref)}@{domain}"


def ref_from_address(candidate: str, address: str, secret: str) -> tuple[str | None, bool]:
    """Return (ref, valid) when ``candidate`` is a token address of ours.

    ref is None when the address is not a token address at all; valid is False when it
    looks like one but the signature does not match (a forgery or a typo)."""
    local, _, domain = address.lower().partition("@")
    m = re.fullmatch(
        rf"{re.escape(local)}\+(\d+)\.([a-z2-7]+)@{re.escape(domain)}", candidate.lower()
    )
    if not m:
        return None, False
    ref, sig = m.groups()
    return ref, hmac.compare_digest(sig, signature(secret, ref))
