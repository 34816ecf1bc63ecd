"""Is a staff command really from that staff member? Anyone can put a staff address in
From:, so when configured we trust only what the agency's own receiving server vouches
for in Authentication-Results (RFC 8601). Headers from any other authserv-id are
ignored: anyone can write them."""

from __future__ import annotations

import authres

from desk.config.settings import SecuritySection
from desk.inbox.message import ParsedMessage


def _domain_of(value: str) -> str:
    return value.rpartition("@")[2].strip().strip(">").lower()


def staff_mail_authenticated(msg: ParsedMessage, security: SecuritySection) -> tuple[bool, str]:
    if not security.require_authenticated_staff:
        return True, "staff authentication not required"
    if msg.sender is None:
        return False, "no sender"
    domain = msg.sender.domain
    trusted = (security.trusted_authserv_id or "").lower()
    seen_trusted = False
    for value in msg.headers.get("authentication-results", []):
        try:
            header = authres.AuthenticationResultsHeader.parse_value(value)
        except Exception:  # a malformed header proves nothing
            continue
        if str(header.authserv_id).lower() != trusted:
            continue
        seen_trusted = True
        for result in header.results:
            props = {f"{p.type}.{p.name}".lower(): str(p.value) for p in result.properties}
            if result.method == "dkim" and result.result == "pass":
                signer = props.get("header.d") or _domain_of(props.get("header.i", ""))
                if signer.lower() == domain:
                    return True, f"dkim=pass for {domain} ({trusted})"
            if result.method == "spf" and result.result == "pass":
                mailfrom = props.get("smtp.mailfrom", "")
                if _domain_of(mailfrom) == domain:
                    return True, f"spf=pass for {domain} ({trusted})"
    if not seen_trusted:
        return False, f"no Authentication-Results from {trusted}"
    return False, f"{trusted} reports neither dkim=pass nor spf=pass for {domain}"
