"""Default phrases that mark a message as an outage report (P1), several languages."""

from __future__ import annotations

# Messages reporting an outage or serious loss of function are P1 whatever the tier.
DEFAULT_URGENT_PHRASES: tuple[str, ...] = (
    "site down", "site is down", "website down", "website is down", "server down",
    "server is down", "shop is down", "outage", "500 error", "502 bad gateway",
    "503 service unavailable", "internal server error", "can't log in", "cannot log in",
    "can't login", "cannot login", "unable to log in", "not loading", "white screen",
    "hacked", "data loss", "checkout broken", "payments failing",
    # de, fr, es, nl
    "seite down", "nicht erreichbar", "ausfall", "site en panne", "hors service",
    "caído", "no funciona", "ligt eruit",
)
