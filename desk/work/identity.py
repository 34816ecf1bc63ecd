"""Who really wrote this? Anyone can write any From: header, so a mail's powers (a staff
member's relay, commands and approvals; a client's decision with money attached) rest on
proof, of two kinds:

* a bound reply address: the mail was sent to the reply address desk gave that very
  person (a staff member's on their notices, a client's on their estimate) and its From
  is them;
* authentication by the agency's own receiving server: the topmost
  Authentication-Results header carrying the trusted authserv-id (RFC 8601 §5: the one
  our server added; anything below it may have been written by the sender), or with
  ``receiving_server = "microsoft365"`` the topmost one, which Exchange Online writes
  without an authserv-id, showing dkim=pass aligned with the From domain, spf=pass for
  it, or dmarc=pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import authres

from desk.config.settings import SecuritySection, Settings
from desk.inbox.message import ParsedMessage
from desk.routing.tokens import parse_token, staff_token_address

# A staff member's own forwarding address is their bound token without a ticket:
# ``support+0.s<id>.<sig>@``. Forwarding a client's mail there proves it was them.
FORWARDING_REF = "0"


def forwarding_address(settings: Settings, staff_id: int) -> str:
    return staff_token_address(settings.desk.address, settings.desk.secret, FORWARDING_REF,
                               staff_id)


@dataclass(frozen=True, slots=True)
class Proof:
    ok: bool
    how: str  # what proved it, or why nothing did


def _domain_of(value: str) -> str:
    return value.rpartition("@")[2].strip().strip(">").lower()


def _aligned(domain: str, other: str) -> bool:
    """Relaxed alignment (DMARC): the same domain or one of its subdomains either way."""
    other = other.lower().strip(".")
    return bool(other) and (other == domain or other.endswith("." + domain)
                            or domain.endswith("." + other))


def trusted_results(msg: ParsedMessage, security: SecuritySection) -> str | None:
    """The Authentication-Results header our receiving server wrote, or None."""
    headers = msg.headers.get("authentication-results", [])
    if security.receiving_server == "microsoft365":
        return headers[0] if headers else None
    trusted = (security.trusted_authserv_id or "").lower()
    if not trusted:
        return None
    for value in headers:  # top to bottom: the first with our id is our server's
        if value.split(";", 1)[0].strip().lower().split()[:1] == [trusted]:
            return value
    return None


def _parse(value: str, security: SecuritySection) -> authres.AuthenticationResultsHeader:
    if security.receiving_server == "microsoft365":
        value = f"microsoft365; {value}"  # authres needs an authserv-id to parse
    return authres.AuthenticationResultsHeader.parse_value(value)


def authenticated(msg: ParsedMessage, domains: Iterable[str], security: SecuritySection
                  ) -> Proof:
    """Does our receiving server vouch for the From address, at one of ``domains``?"""
    if not security.can_authenticate:
        return Proof(False, "no trusted receiving server configured ([security])")
    if msg.sender is None:
        return Proof(False, "no sender")
    domain = msg.sender.domain
    if domain not in {d.lower() for d in domains}:
        return Proof(False, f"{domain} is not a domain of the sender's organisation")
    server = ("Microsoft 365" if security.receiving_server == "microsoft365"
              else security.trusted_authserv_id)
    value = trusted_results(msg, security)
    if value is None:
        return Proof(False, f"no Authentication-Results from {server}")
    try:
        header = _parse(value, security)
    except Exception:  # a malformed header proves nothing
        return Proof(False, f"the Authentication-Results from {server} cannot be read")
    for result in header.results:
        props = {f"{p.type}.{p.name}".lower(): str(p.value) for p in result.properties}
        if str(result.result).lower() != "pass":
            continue
        method = str(result.method).lower()
        if method == "dkim":
            signer = props.get("header.d") or _domain_of(props.get("header.i", ""))
            if _aligned(domain, signer):
                return Proof(True, f"dkim=pass for {domain} ({server})")
        elif method == "spf":
            if _aligned(domain, _domain_of(props.get("smtp.mailfrom", ""))):
                return Proof(True, f"spf=pass for {domain} ({server})")
        elif method == "dmarc" and _aligned(domain, props.get("header.from", "")):
            return Proof(True, f"dmarc=pass for {domain} ({server})")
    return Proof(False, f"{server} reports no dkim, spf or dmarc pass for {domain}")


def staff_proof(msg: ParsedMessage, staff_id: int, staff_email: str, ref: str | None,
                settings: Settings) -> Proof:
    """Did staff member ``staff_id`` really write this (about ticket ``ref``, if any)?"""
    security = settings.security
    kind = security.proof
    if msg.sender is None or msg.sender.email != staff_email:
        return Proof(False, "the From is not theirs")
    why: list[str] = []
    if kind in ("either", "reply_address"):
        by_address = _bound_address(msg, ref, "staff", staff_id, settings.desk.address,
                                    settings.desk.secrets, staff_email)
        if by_address.ok or kind == "reply_address":
            return by_address
        why.append(by_address.how)
    if kind in ("either", "authenticated"):
        by_server = authenticated(msg, [msg.sender.domain], security)
        if by_server.ok:
            return by_server
        why.append(by_server.how)
    return Proof(False, "; ".join(why))


def client_proof(msg: ParsedMessage, ref: str, estimate_id: int, domains: Sequence[str],
                 settings: Settings) -> Proof:
    """Did the client really send this decision on estimate ``estimate_id``?"""
    if msg.sender is None:
        return Proof(False, "no sender")
    by_address = _bound_address(msg, ref, "estimate", estimate_id, settings.desk.address,
                                settings.desk.secrets, msg.sender.email)
    if by_address.ok:
        return by_address
    by_server = authenticated(msg, domains, settings.security)
    if by_server.ok:
        return by_server
    return Proof(False, f"{by_address.how}; {by_server.how}")


def _bound_address(msg: ParsedMessage, ref: str | None, kind: str, holder: int,
                   support: str, secrets: Sequence[str], sender: str) -> Proof:
    what = "their own reply address" if kind == "staff" else "the estimate's reply address"
    if ref is None:
        return Proof(False, f"not sent to {what}")
    for addr in msg.recipients():
        token = parse_token(addr, support)
        if token is not None and token.kind == kind and token.ref == ref and \
                token.holder == holder and token.valid(secrets, recipient=sender):
            return Proof(True, f"sent to {what}" + (f" for #{ref}" if ref != FORWARDING_REF
                                                    else " (their forwarding address)"))
    return Proof(False, f"not sent to {what}" + (f" for #{ref}" if ref != FORWARDING_REF
                                                  else " (their forwarding address)"))
