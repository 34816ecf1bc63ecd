"""OAuth2 logins end to end against real servers on loopback: a token server (RFC 6749
token endpoint + RFC 7662 introspection), Dovecot with an ``oauth2`` passdb asking that
introspection endpoint, and the SMTP sink in its own process doing AUTH XOAUTH2 against
the same endpoint. The generic provider, Microsoft 365 through msal (the token server
behind TLS) and Google through google-auth (service account, refresh token)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desk.config.oauth2 import Oauth2Section
from desk.credentials import TokenRejected, TokenSource, TokenUnavailable
from tests.servers import Dovecot, SmtpCapture, ThrowawayCa, TokenServer, make_root
from tests.support import (
    DESK,
    SUPPORT_USER,
    DaemonProcess,
    DeskEnv,
    EnvFactory,
    make_mail,
    wait_until,
)

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
    assert "1 new ticket," in out and "sent 2" in out
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
    assert "1 new ticket," in out and "sent 2" in out
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
        status = env.desk("status")
        assert "TROUBLE since" in status.stdout and "unreachable" in status.stdout, status.stdout
        tokens.start_token_endpoint()
        assert len(oauth_smtp.wait_for(2, timeout=60)) == 2
        daemon.wait_for_log("recovered")
        wait_until(lambda: "TROUBLE" not in env.desk("status").stdout)
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
        # The admin who looks at `desk status` (not the log) is told what to fix.
        status = env.desk("status", "--json")
        [trouble] = json.loads(status.stdout)["trouble"]
        assert "OAuth2 login refused" in trouble["trouble"], trouble
        assert "oauth2.client_secret_env" in trouble["trouble"], trouble
        assert CLIENT_SECRET not in status.stdout
    finally:
        daemon.stop()
    text = daemon.output()
    assert "oauth2.client_secret_env" in text and f"${SECRET_VAR}" in text, text
    assert "Traceback" not in text and CLIENT_SECRET not in text
    assert env.tickets() == []


def test_token_expiry_while_idling_reauthenticates_and_loses_nothing(
        env: DeskEnv, tokens: TokenServer, oauth_imap: Dovecot,
        oauth_smtp: SmtpCapture) -> None:
    daemon = DaemonProcess(env)
    try:
        oauth_imap.append(SUPPORT_USER, make_mail(message_id="<idle-1@client.test>"))
        oauth_smtp.wait_for(2, timeout=30)
        time.sleep(1.0)  # the intake is in IDLE again, on the session its token opened
        fetched = len(tokens.requests)
        # The token desk holds expires while it idles, and the server ends the session
        # as Exchange Online and Gmail do; meanwhile new mail arrives.
        tokens.revoke_tokens()
        oauth_imap.restart()
        oauth_imap.append(SUPPORT_USER, make_mail(message_id="<idle-2@client.test>",
                                                  subject="Arrived while desk was away"))
        assert len(oauth_smtp.wait_for(4, timeout=60)) == 4
        daemon.wait_for_log("fetching a new one")
    finally:
        assert daemon.stop() == 0
    text = daemon.output()
    assert "Traceback" not in text, text
    assert len(tokens.requests) == fetched + 1, "one fresh token, shared by IMAP and SMTP"
    assert sorted(t["subject"] for t in env.tickets()) == [
        "Arrived while desk was away", "Contact form broken"]


def test_check_mail_with_oauth2(env: DeskEnv, oauth_smtp: SmtpCapture) -> None:
    proc = env.desk("check-mail", "--send-test", "client@client.test")
    assert "logged in as support@agency.test (oauth2)" in proc.stdout
    assert "AUTH" in proc.stdout and "mail servers OK" in proc.stdout
    [mail] = oauth_smtp.wait_for(1)
    assert mail.rcpt_tos == ["client@client.test"]


# --------------------------------------------------------------------------- msal, google-auth
# The same token server behind TLS from a throwaway CA (msal takes only https authorities);
# it shares its clients and issued tokens with ``tokens``, whose introspection endpoint
# Dovecot and the SMTP sink ask, so a token from either is good for a login.


@pytest.fixture(scope="module")
def ca() -> ThrowawayCa:
    return ThrowawayCa(make_root("desk-ca-"))


@pytest.fixture(scope="module")
def tls_tokens(tokens: TokenServer, ca: ThrowawayCa) -> Iterator[TokenServer]:
    server = TokenServer(tls=ca.issue("token", ["127.0.0.1"]))
    server.clients, server.issued = tokens.clients, tokens.issued
    server.start()
    yield server
    server.stop()


def microsoft365(tls_tokens: TokenServer, ca: ThrowawayCa) -> dict[str, Any]:
    return {"provider": "microsoft365", "tenant_id": "tenant-1", "client_id": CLIENT_ID,
            "client_secret_env": SECRET_VAR, "authority_host": tls_tokens.base_url,
            "ca_file": str(ca.cert_path)}


def test_microsoft365_through_msal_logs_in(tls_tokens: TokenServer, ca: ThrowawayCa,
                                           oauth_imap: Dovecot, oauth_smtp: SmtpCapture,
                                           make_env: EnvFactory) -> None:
    oauth_imap.reset_user(SUPPORT_USER)
    config = oauth2_config(tls_tokens, oauth_imap, oauth_smtp)
    config["extra"] = {"oauth2": microsoft365(tls_tokens, ca)}
    env = make_env("msal", **config)
    before = len(tls_tokens.requests)
    proc = env.desk("check-mail", "--send-test", "client@client.test")
    assert "logged in as support@agency.test (oauth2)" in proc.stdout, proc.stdout
    assert "mail servers OK" in proc.stdout
    assert len(oauth_smtp.wait_for(1)) == 1
    [request] = tls_tokens.requests[before:]  # one token for IMAP and SMTP
    assert request["grant_type"] == "client_credentials"
    assert request["scope"] == "https://outlook.office365.com/.default"
    assert CLIENT_SECRET not in proc.stdout


def test_microsoft365_token_refreshes_and_names_a_bad_secret(
        tls_tokens: TokenServer, ca: ThrowawayCa, monkeypatch: pytest.MonkeyPatch) -> None:
    source = TokenSource(Oauth2Section(**microsoft365(tls_tokens, ca)))
    first = source.token()
    assert first in tls_tokens.issued and source.token() == first
    second = source.refresh(first)
    assert second != first and second in tls_tokens.issued and source.fetches == 2
    monkeypatch.setenv(SECRET_VAR, "wrong-Secret")
    with pytest.raises(TokenRejected, match=r"invalid_client.*oauth2.client_secret_env"):
        TokenSource(Oauth2Section(**microsoft365(tls_tokens, ca))).token()
    # The CA is trusted through ca_file only.
    untrusted = {**microsoft365(tls_tokens, ca), "ca_file": None}
    with pytest.raises(TokenUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        TokenSource(Oauth2Section(**untrusted)).token()


def service_account_key(path: Path, email: str, token_uri: str) -> bytes:
    """Write a Google service-account key file; the public key, PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "desk-test", "private_key_id": "k1",
        "private_key": key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(),
        "client_email": email, "client_id": "1234567890", "token_uri": token_uri}))
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_google_service_account_signs_its_assertion(tls_tokens: TokenServer, ca: ThrowawayCa,
                                                    tmp_path: Path) -> None:
    email = "desk@desk-test.iam.gserviceaccount.com"
    key_file = tmp_path / "sa.json"
    tls_tokens.service_accounts[email] = CLIENT_ID
    tls_tokens.service_account_keys[email] = service_account_key(
        key_file, email, tls_tokens.token_url)
    settings = Oauth2Section(provider="google", service_account_file=str(key_file),
                             subject=SUPPORT_USER, token_uri=tls_tokens.token_url,
                             ca_file=str(ca.cert_path))
    source = TokenSource(settings)
    first = source.token()
    assert first in tls_tokens.issued
    assert source.refresh(first) != first and source.fetches == 2
    assertion = tls_tokens.requests[-1]["assertion"]
    import jwt

    claims = jwt.decode(assertion, tls_tokens.service_account_keys[email],
                        algorithms=["RS256"], audience="https://oauth2.googleapis.com/token")
    assert claims["sub"] == SUPPORT_USER and claims["scope"] == "https://mail.google.com/"
    # A key the server does not know for the account: refused, naming the key file.
    service_account_key(key_file, email, tls_tokens.token_url)
    with pytest.raises(TokenRejected, match=r"oauth2\.service_account_file"):
        TokenSource(settings).token()


def test_google_refresh_token(tls_tokens: TokenServer, ca: ThrowawayCa,
                              tmp_path: Path) -> None:
    tls_tokens.refresh_tokens["rt-google-1"] = CLIENT_ID
    stored = tmp_path / "refresh-token"
    stored.write_text("rt-google-1\n")
    settings = Oauth2Section(provider="google", client_id=CLIENT_ID,
                             client_secret_env=SECRET_VAR, refresh_token_file=str(stored),
                             token_uri=tls_tokens.token_url, ca_file=str(ca.cert_path))
    source = TokenSource(settings)
    first = source.token()
    assert first in tls_tokens.issued and source.refresh(first) != first
    request = tls_tokens.requests[-1]
    assert request["grant_type"] == "refresh_token"
    assert request["refresh_token"] == "rt-google-1"
    del tls_tokens.refresh_tokens["rt-google-1"]  # revoked
    with pytest.raises(TokenRejected, match=r"invalid_grant.*oauth2.refresh_token_file"):
        TokenSource(settings).token()


# --------------------------------------------------------------------------- desk init-oauth


def test_init_oauth_google_stores_the_refresh_token(tokens: TokenServer, oauth_imap: Dovecot,
                                                    oauth_smtp: SmtpCapture,
                                                    make_env: EnvFactory,
                                                    tmp_path: Path) -> None:
    oauth_imap.reset_user(SUPPORT_USER)
    stored = tmp_path / "state" / "google-refresh-token"
    config = oauth2_config(tokens, oauth_imap, oauth_smtp)
    config["extra"] = {"oauth2": {
        "provider": "google", "client_id": CLIENT_ID, "client_secret_env": SECRET_VAR,
        "refresh_token_file": str(stored), "token_uri": tokens.token_url}}
    env = make_env("consent", **config)
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps({"installed": {
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "auth_uri": "https://accounts.example.test/o/oauth2/auth",
        "token_uri": tokens.token_url, "redirect_uris": ["http://localhost"]}}))
    proc = subprocess.Popen(
        [*DESK, "--config", str(env.config), "init-oauth", "google",
         "--client-secrets", str(secrets_file), "--no-browser", "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=env.root)
    try:
        assert proc.stdout is not None
        url = ""
        while not url.startswith("https://"):
            url = proc.stdout.readline().strip()
            assert url or proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        assert url.startswith("https://accounts.example.test/o/oauth2/auth?")
        assert query["scope"] == "https://mail.google.com/"
        assert (query["access_type"], query["prompt"]) == ("offline", "consent")
        assert query["code_challenge_method"] == "S256" and query["client_id"] == CLIENT_ID
        assert query["redirect_uri"].startswith("http://127.0.0.1:")
        # The "consent screen": the user allows, the browser follows the redirect.
        tokens.codes["code-from-consent"] = (CLIENT_ID, query["code_challenge"])
        back = f"{query['redirect_uri']}?state={query['state']}&code=code-from-consent"
        with urllib.request.urlopen(back, timeout=10) as answer:
            assert b"close this tab" in answer.read()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    token = stored.read_text().strip()
    assert tokens.refresh_tokens.get(token) == CLIENT_ID
    assert stored.stat().st_mode & 0o777 == 0o600
    assert token not in out + err and CLIENT_SECRET not in out + err
    [exchange] = [r for r in tokens.requests if r.get("grant_type") == "authorization_code"]
    assert exchange["redirect_uri"] == query["redirect_uri"] and exchange["code_verifier"]
    # desk now logs in with it: google-auth's refresh-token credential, IMAP and SMTP.
    check = env.desk("check-mail")
    assert "logged in as support@agency.test (oauth2)" in check.stdout, check.stdout
    assert "mail servers OK" in check.stdout


def test_init_oauth_refuses_without_refresh_token_file(tokens: TokenServer,
                                                       oauth_imap: Dovecot,
                                                       oauth_smtp: SmtpCapture,
                                                       make_env: EnvFactory,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_TEST_REFRESH", "rt-unused")
    config = oauth2_config(tokens, oauth_imap, oauth_smtp)
    config["extra"] = {"oauth2": {
        "provider": "google", "client_id": CLIENT_ID, "client_secret_env": SECRET_VAR,
        "refresh_token_env": "DESK_TEST_REFRESH", "token_uri": tokens.token_url}}
    env = make_env("consent-env", **config)
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps({"installed": {
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "auth_uri": "https://accounts.example.test/auth", "token_uri": tokens.token_url}}))
    proc = env.desk("init-oauth", "google", "--client-secrets", str(secrets_file),
                    "--no-browser", check=False)
    assert proc.returncode == 1 and "refresh_token_file" in proc.stderr, proc.stderr
    proc = env.desk("init-oauth", "google", "--client-secrets", str(tmp_path / "nope.json"),
                    "--no-browser", check=False)
    assert proc.returncode == 1 and "cannot read the client secrets file" in proc.stderr
