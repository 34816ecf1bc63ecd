"""Subject clean-up: reply/forward prefixes in common languages and ``[#REF]`` tags."""

from __future__ import annotations

import re

# Re, RE[2], Fwd, FW, AW (de), WG (de), SV (nordic), VS (fi), Antw (nl), Réf/RE (fr),
# TR (fr transfert), R (it), RIF (it), Odp (pl), Ynt (tr), Atb (lv), Vá/Továbbítás (hu).
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|fw|aw|wg|sv|vs|antw|doorst|réf|ref|tr|rif|odp|ynt|atb|vá|továbbítás"
    r"|enc|res|r)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)
_REF_TAG = re.compile(r"\[#(\d{1,12})\]")


def strip_prefixes(subject: str) -> str:
    return _PREFIX.sub("", subject).strip()


def subject_refs(subject: str) -> list[str]:
    return _REF_TAG.findall(subject)


def base_subject(subject: str) -> str:
    """The subject without prefixes and our ``[#REF]`` tags: what the ticket is about."""
    without_tags = _REF_TAG.sub("", subject)
    return strip_prefixes(re.sub(r"\s+", " ", without_tags)).strip() or "(no subject)"


def tagged(subject: str, ref: str) -> str:
    """Our outgoing subject: the ticket's subject with exactly one ``[#REF]`` tag."""
    return f"[#{ref}] {base_subject(subject)}"
