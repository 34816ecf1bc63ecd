"""The token cache: fetched once, replaced before expiry and after a refusal; the
[oauth2] settings' rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from desk.config.oauth2 import Oauth2Section
from desk.config.settings import ConfigError, parse_settings
from desk.credentials import TokenSource, oauthbearer, xoauth2
from desk.logs import mask_secrets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source(lifetime: float = 3600.0) -> tuple[TokenSource, Clock, list[str]]:
    clock, issued = Clock(), []

    def fetch() -> tuple[str, float]:
        issued.append(f"token-number-{len(issued) + 1}")
        return issued[-1], lifetime

    settings = Oauth2Section(provider="generic", token_url="http://x/token", client_id="c",
                             grant="refresh_token", refresh_token_file="/nonexistent")
    return TokenSource(settings, fetch=fetch, clock=clock), clock, issued


def test_fetched_once_then_cached_until_shortly_before_expiry() -> None:
    tokens, clock, issued = source()
    assert tokens.token() == tokens.token() == "token-number-1"
    clock.now += 3600 - 301
    assert tokens.token() == "token-number-1"
    clock.now += 2  # inside the 300 s margin
    assert tokens.token() == "token-number-2"
    assert len(issued) == 2


def test_short_lived_tokens_are_still_reused() -> None:
    tokens, clock, _ = source(lifetime=60)
    first = tokens.token()
    clock.now += 20
    assert tokens.token() == first
    clock.now += 15
    assert tokens.token() != first


def test_refresh_after_a_refusal_only_once_per_rejected_token() -> None:
    tokens, _, issued = source()
    old = tokens.token()
    new = tokens.refresh(rejected=old)
    assert new != old
    # A second thread that saw the same refusal gets the new token, not a third one.
    assert tokens.refresh(rejected=old) == new
    assert len(issued) == 2


def test_fetched_tokens_are_masked() -> None:
    tokens, _, _ = source()
    assert "token-number-1" not in mask_secrets(f"login with {tokens.token()}")


def test_sasl_strings() -> None:
    assert xoauth2("a@b.test", "T") == b"user=a@b.test\x01auth=Bearer T\x01\x01"
    assert oauthbearer("a@b.test", "T") == b"n,a=a@b.test,\x01auth=Bearer T\x01\x01"


BASE = {"desk": {"address": "support@agency.test", "secret": "x" * 40},
        "smtp": {"transport": "maildir", "path": "sent"}}


def test_microsoft_defaults_fill_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MS_SECRET", "s" * 20)
    s = parse_settings({
        **BASE,
        "mailbox": {"source": "imap", "username": "support@agency.test", "auth": "oauth2"},
        "smtp": {"transport": "smtp", "username": "support@agency.test", "auth": "oauth2"},
        "oauth2": {"provider": "microsoft365", "tenant_id": "t", "client_id": "c",
                   "client_secret_env": "MS_SECRET"}}, Path("."))
    assert s.mailbox is not None and s.mailbox.host == "outlook.office365.com"
    assert s.mailbox.effective_port == 993
    assert (s.smtp.host, s.smtp.effective_port, s.smtp.security) == (
        "smtp.office365.com", 587, "starttls")
    assert s.smtp.oauth2 is not None
    assert s.smtp.oauth2.effective_scope == "https://outlook.office365.com/.default"


def test_oauth2_without_section_or_with_missing_keys_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox = {"source": "imap", "host": "h", "username": "u", "auth": "oauth2"}
    with pytest.raises(ConfigError, match=r"needs an \[oauth2\] section"):
        parse_settings({**BASE, "mailbox": mailbox}, Path("."))
    with pytest.raises(ConfigError, match="tenant_id"):
        parse_settings({**BASE, "mailbox": mailbox,
                        "oauth2": {"provider": "microsoft365", "client_id": "c"}}, Path("."))
    with pytest.raises(ConfigError, match=r"\$NOT_SET_HERE"):
        parse_settings({**BASE, "mailbox": mailbox,
                        "oauth2": {"provider": "generic", "token_url": "http://t",
                                   "client_id": "c", "client_secret_env": "NOT_SET_HERE"}},
                       Path("."))


def test_password_path_is_unchanged() -> None:
    s = parse_settings({**BASE, "mailbox": {"source": "imap", "host": "h", "username": "u",
                                            "password": "pw"}}, Path("."))
    assert s.mailbox is not None and s.mailbox.auth == "password" and s.mailbox.oauth2 is None
    assert s.oauth2 is None
