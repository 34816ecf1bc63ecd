"""Rules for ``[desk] secret`` and the ``*_env`` settings that read a value from the
environment instead of the file.

The secret signs reply addresses: whoever knows it can write as any staff member into any
ticket. A value copied from the shipped example or short enough to guess is refused at
start rather than trusted.
"""

from __future__ import annotations

import os
from typing import Any

MIN_SECRET_LENGTH = 32
# Secrets signed with before a rotation. Desk asked for 16 characters before it asked for
# 32: a secret that was valid then must stay usable as a previous one, or rotating away
# from it would break every thread it signed.
MIN_PREVIOUS_SECRET_LENGTH = 16
MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
# Placeholders shipped in config/desk.toml and README: they are public, so anything signed
# with them is forgeable. Matched as parts, so "change-me-2" is caught too.
_PLACEHOLDERS = ("change-me", "changeme", "change_me", "your-secret", "random-string")


def check_secret(value: str, source: str, *, minimum: int = MIN_SECRET_LENGTH,
                 advice: str = f"Make a secret with: {MAKE_ONE}") -> str:
    """``value`` if it is fit to sign with; ``source`` says where it came from, for the
    message (the value itself is never repeated)."""
    lowered = value.lower()
    if any(p in lowered for p in _PLACEHOLDERS):
        raise ValueError(f"{source} is the example value: anyone who has read the example "
                         f"can forge reply addresses. {advice}")
    if len(value) < minimum:
        raise ValueError(f"{source} is {len(value)} characters, at least {minimum} are "
                         f"needed. {advice}")
    return value


def take_from_environment(data: dict[str, Any], key: str, *, required: bool = False,
                          hint: str = "") -> None:
    """Put the value of the variable named by ``<key>_env`` into ``data[key]``, so the rest
    of desk reads one field whichever way it was given."""
    env_key = f"{key}_env"
    env_name = data.get(env_key)
    if env_name is None:
        if required and data.get(key) is None:
            raise ValueError(f"{key} or {env_key} is required{hint}")
        return
    if data.get(key) is not None:
        raise ValueError(f"set {key} or {env_key}, not both")
    if not isinstance(env_name, str) or not env_name:
        raise ValueError(f"{env_key} must name an environment variable")
    if env_name not in os.environ:
        raise ValueError(f"{env_key} names ${env_name}, which is not set{hint}")
    data[key] = os.environ[env_name]
