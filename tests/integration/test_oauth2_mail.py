"""OAuth2 logins end to end against real servers on loopback: a token server (RFC 6749
token endpoint + RFC 7662 introspection), Dovecot with an ``oauth2`` passdb asking that
introspection endpoint, and the SMTP sink in its own process doing AUTH XOAUTH2 against
the same endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Dovecot, SmtpCapture, TokenServer, make_root
from tests.support import SUPPORT_USER, DaemonProcess, DeskEnv, EnvFactory, make_mail

CLIENT_ID = "desk-app"
CLIENT_SECRET = "client-Secret-9fK2mQ7x"
SECRET_VAR = "DESK_TEST_OAUTH_SECRET"


@pytest.fixture(scope="module")
def tokens() -> Iterator[TokenServer]:
    server = TokenServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _client(tokens: TokenServer, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens.add_client(CLIENT_ID, CLIENT_SECRET, SUPPORT_USER)
    tokens.start_token_endpoint()
    monkeypatch.setenv(SECRET_VAR, CLIENT_SECRET)


@pytest.fixture(scope="module")
def oauth_imap(tokens: TokenServer) -> Iterator[Dovecot]:
    root = make_root()
    server = Dovecot(oauth2_introspection_url=tokens.introspection_url).start(root)
    yield server
    server.stop()


@pytest.fixture
def oauth_smtp(tokens: TokenServer, tmp_path: Path) -> Iterator[SmtpCapture]:
    sink = SmtpCapture().start(tmp_path / "smtp",
                               oauth2_introspection_url=tokens.introspection_url)
    yield sink
    sink.stop()


def oauth2_config(tokens: TokenServer, imap: Dovecot, smtp: SmtpCapture,
                  **oauth2: Any) -> dict[str, Any]:
    return {
        "mailbox": {"source": "imap", "host": imap.host, "port": imap.imap_port, "tls": False,
                    "username": SUPPORT_USER, "auth": "oauth2"},
        "smtp": {"transport": "smtp", "host": smtp.host, "port": smtp.port,
                 "security": "none", "username": SUPPORT_USER, "auth": "oauth2",
                 "timeout_seconds": 10},
        "extra": {"oauth2": {"provider": "generic", "token_url": tokens.token_url,
                             "client_id": CLIENT_ID, "client_secret_env": SECRET_VAR,
                             "scope": "mail", **oauth2}},
    }


@pytest.fixture
def env(tokens: TokenServer, oauth_imap: Dovecot, oauth_smtp: SmtpCapture,
        make_env: EnvFactory) -> Iterator[DeskEnv]:
    oauth_imap.reset_user(SUPPORT_USER)
    yield make_env(**oauth2_config(tokens, oauth_imap, oauth_smtp))


def test_generic_provider_reads_and_sends(env: DeskEnv, oauth_imap: Dovecot,
                                          oauth_smtp: SmtpCapture) -> None:
    oauth_imap.append(SUPPORT_USER, make_mail(message_id="<oauth-1@client.test>"))
    out = env.desk("run", "--once").stdout
    assert "1 new tickets" in out and "sent 2" in out
    assert len(oauth_smtp.wait_for(2)) == 2
    assert CLIENT_SECRET not in out


def test_tokens_expire_mid_run_and_nothing_is_lost(env: DeskEnv, tokens: TokenServer,
                                                   oauth_imap: Dovecot,
                                                   oauth_smtp: SmtpCapture) -> None:
    oauth_imap.append(SUPPORT_USER, make_mail(message_id="<oauth-2@client.test>"))
    env.desk("run", "--once")
    oauth_smtp.wait_for(2)
    before = len(tokens.requests)
    # The servers stop accepting every token desk holds (expired or revoked early):
    # desk must notice the refusal (IMAP NO [AUTHENTICATIONFAILED], SMTP 535), fetch one
    # new token and carry on.
    tokens.revoke_tokens()
    oauth_imap.append(SUPPORT_USER, make_mail(message_id="<oauth-3@client.test>",
                                              subject="Second problem"))
    out = env.desk("run", "--once").stdout
    assert "1 new tickets" in out and "sent 2" in out
    assert len(oauth_smtp.wait_for(4)) == 4
    assert len(tokens.requests) == before + 1  # one token shared by IMAP and SMTP
    assert len(env.tickets()) == 2


def test_token_endpoint_down_is_transient(env: DeskEnv, tokens: TokenServer,
                                          oauth_imap: Dovecot,
                                          oauth_smtp: SmtpCapture) -> None:
    tokens.stop_token_endpoint()
    oauth_imap.append(SUPPORT_USER, make_mail(message_id="<oauth-4@client.test>"))
    daemon = DaemonProcess(env)
    try:
        daemon.wait_for_log("unreachable")
        time.sleep(3.5)  # several retries with backoff: still one line for the incident
        text = daemon.output()
        assert text.count("unreachable") == 1, text
        assert "Traceback" not in text
        assert env.tickets() == []
        tokens.start_token_endpoint()
        assert len(oauth_smtp.wait_for(2, timeout=60)) == 2
        daemon.wait_for_log("recovered")
    finally:
        assert daemon.stop() == 0
    assert len(env.tickets()) == 1


def test_revoked_client_secret_says_which_setting(env: DeskEnv, tokens: TokenServer,
                                                  oauth_imap: Dovecot) -> None:
    tokens.add_client(CLIENT_ID, "rotated-Secret-4hT8", SUPPORT_USER)
    tokens.revoke_tokens()
    oauth_imap.append(SUPPORT_USER, make_mail(message_id="<oauth-5@client.test>"))
    daemon = DaemonProcess(env)
    try:
        daemon.wait_for_log("invalid_client")
    finally:
        daemon.stop()
    text = daemon.output()
    assert "oauth2.client_secret_env" in text and f"${SECRET_VAR}" in text, text
    assert "Traceback" not in text and CLIENT_SECRET not in text
    assert env.tickets() == []


def test_check_mail_with_oauth2(env: DeskEnv, oauth_smtp: SmtpCapture) -> None:
    proc = env.desk("check-mail", "--send-test", "client@client.test")
    assert "logged in as support@agency.test (oauth2)" in proc.stdout
    assert "AUTH" in proc.stdout and "mail servers OK" in proc.stdout
    [mail] = oauth_smtp.wait_for(1)
    assert mail.rcpt_tos == ["client@client.test"]
