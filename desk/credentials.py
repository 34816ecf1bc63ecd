"""OAuth2 access tokens for IMAP and SMTP logins, fetched once and shared by both.

A layer of its own, just above ``desk/config``, because the inbox and the outbound layer
both log in with the same token and neither may import the other's code for it.
A token is kept in memory only, replaced ``refresh_margin_seconds`` before it expires, and
replaced at once when a server rejects it (``refresh()``). Every secret read and every
token fetched goes through ``desk.logs.hide`` so no log line or error can show it.

Two kinds of failure, because the daemon must treat them differently:
``TokenUnavailable`` (the endpoint is down, times out, answers 5xx): try again later,
nothing is lost. ``TokenRejected`` (the client secret, refresh token or key was refused):
retrying does not help; the message names the setting to fix.
"""

from __future__ import annotations

import functools
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desk.config.oauth2 import GOOGLE_TOKEN_URI, MICROSOFT_AUTHORITY, Oauth2Section
from desk.logs import hide

if TYPE_CHECKING:
    import requests

# A token whose lifetime the endpoint did not say is used this long before a fresh one.
DEFAULT_LIFETIME = 3600.0


class TokenError(Exception):
    """No access token could be had."""


class TokenUnavailable(TokenError):
    """The token endpoint could not answer now: transient, try again later."""


class TokenRejected(TokenError):
    """The token endpoint refused our credentials: retrying will not help."""


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # on the monotonic clock


Fetch = Callable[[], tuple[str, float]]  # -> (access token, lifetime in seconds)


class TokenSource:
    """The current access token for one ``[oauth2]`` section; thread-safe."""

    def __init__(self, settings: Oauth2Section, *, fetch: Fetch | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.s = settings
        self._fetch = fetch or _fetcher(settings)
        self._clock = clock
        self._token: Token | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0  # how many tokens were fetched: tests and check-mail show it

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._token.expires_at - self._margin():
                self._token = self._new(now)
            return self._token.value

    def refresh(self, rejected: str | None = None) -> str:
        """A new token, because a server refused ``rejected`` (revoked, expired early).
        Another thread may have replaced it already: then that one is used."""
        with self._lock:
            if self._token is None or self._token.value == rejected or rejected is None:
                self._token = self._new(self._clock())
            return self._token.value

    def _margin(self) -> float:
        # Short-lived tokens (tests, some IdPs) would otherwise always count as expiring.
        lifetime = self._token.expires_at - self._fetched_at if self._token else 0.0
        return min(self.s.refresh_margin_seconds, lifetime / 2)

    def _new(self, now: float) -> Token:
        value, lifetime = self._fetch()
        hide(value)
        self.fetches += 1
        self._fetched_at = now
        return Token(value, now + max(lifetime, 1.0))


_sources: dict[Oauth2Section, TokenSource] = {}
_sources_lock = threading.Lock()


def token_source(settings: Oauth2Section) -> TokenSource:
    """One source per configuration in the process: IMAP and SMTP share the token."""
    with _sources_lock:
        if settings not in _sources:
            _sources[settings] = TokenSource(settings)
        return _sources[settings]


def xoauth2(user: str, token: str) -> bytes:
    """The SASL XOAUTH2 initial response (before base64)."""
    return f"user={user}\1auth=Bearer {token}\1\1".encode()


def oauthbearer(user: str, token: str) -> bytes:
    """The SASL OAUTHBEARER (RFC 7628) initial response (before base64)."""
    name = user.replace("=", "=3D").replace(",", "=2C")
    return f"n,a={name},\1auth=Bearer {token}\1\1".encode()


# --------------------------------------------------------------------------- fetching


def _fetcher(s: Oauth2Section) -> Fetch:
    if s.provider == "microsoft365":
        return lambda: _microsoft(s)
    if s.provider == "google":
        return lambda: _google(s)
    return lambda: _generic(s)


def _secret(s: Oauth2Section) -> str | None:
    try:
        secret = s.client_secret()
    except ValueError as exc:
        raise TokenRejected(str(exc)) from None
    hide(secret)
    return secret


def _refresh_token(s: Oauth2Section) -> str:
    try:
        token = s.refresh_token()
    except ValueError as exc:
        raise TokenRejected(str(exc)) from None
    if not token:
        raise TokenRejected("oauth2: no refresh token (set refresh_token_env, or run "
                            "desk init-oauth to fill refresh_token_file)")
    hide(token)
    return token


def _credential_names(s: Oauth2Section) -> str:
    """Which settings hold what the endpoint refused, for the admin who has to fix it."""
    if s.provider == "google" and s.service_account_file:
        return f"oauth2.service_account_file ({s.service_account_file})"
    names = [f"oauth2.client_id ({s.client_id})"]
    if s.client_secret_env:
        names.append(f"oauth2.client_secret_env (${s.client_secret_env})")
    if s.uses_refresh_token:
        names.append("oauth2.refresh_token_env" if s.refresh_token_env
                     else f"oauth2.refresh_token_file ({s.refresh_token_file})")
    return " / ".join(names)


def _rejected(s: Oauth2Section, error: str, description: str) -> TokenRejected:
    detail = f"{error}: {description}" if description else error
    return TokenRejected(f"the OAuth2 token endpoint rejected desk's credentials ({detail}); "
                         f"check {_credential_names(s)}")


# RFC 6749 5.2: errors that a retry cannot mend.
_REJECTIONS = {"invalid_client", "invalid_grant", "unauthorized_client",
               "unsupported_grant_type", "invalid_scope", "invalid_request"}


def _ssl_context(s: Oauth2Section) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=s.ca_file)


def _generic(s: Oauth2Section) -> tuple[str, float]:
    assert s.token_url is not None and s.client_id is not None
    form: dict[str, str] = {"client_id": s.client_id}
    secret = _secret(s)
    if secret:
        form["client_secret"] = secret
    if s.grant == "refresh_token":
        form |= {"grant_type": "refresh_token", "refresh_token": _refresh_token(s)}
    else:
        form["grant_type"] = "client_credentials"
    if s.effective_scope:
        form["scope"] = s.effective_scope
    data = post_form(s, s.token_url, form)
    new_refresh = data.get("refresh_token")
    if isinstance(new_refresh, str) and s.uses_refresh_token:
        _keep_rotated_refresh_token(s, new_refresh)
    return _access_token(data)


def post_form(s: Oauth2Section, url: str, form: dict[str, str]) -> dict[str, Any]:
    """POST an RFC 6749 token request; the JSON answer, or the right TokenError."""
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Accept": "application/json"})
    context = _ssl_context(s) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=s.timeout_seconds,
                                    context=context) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        data = _json(exc.read())
        error = str(data.get("error", ""))
        if exc.code in (400, 401, 403) and (error in _REJECTIONS or exc.code != 400):
            raise _rejected(s, error or f"HTTP {exc.code}",
                            str(data.get("error_description", ""))) from None
        raise TokenUnavailable(f"token endpoint {url} answered HTTP {exc.code}") from None
    except ssl.SSLError as exc:
        raise TokenUnavailable(f"token endpoint {url}: TLS failed: {exc}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TokenUnavailable(f"token endpoint {url} unreachable: {reason}") from None
    return _json(body)


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _access_token(data: dict[str, Any]) -> tuple[str, float]:
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenUnavailable("the token endpoint answered without an access_token")
    hide(token)
    try:
        lifetime = float(data.get("expires_in", DEFAULT_LIFETIME))
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    return token, lifetime


def _keep_rotated_refresh_token(s: Oauth2Section, token: str) -> None:
    # Some IdPs rotate refresh tokens: the old one stops working, so the new one must be
    # kept where the next start reads it. An environment variable cannot be rewritten.
    hide(token)
    if s.refresh_token_file and token != s.refresh_token():
        store_refresh_token(Path(s.refresh_token_file), token)


def store_refresh_token(path: Path, token: str) -> None:
    """Write the refresh token readable by the owner only, replacing the file at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(token + "\n", encoding="utf-8")
    tmp.replace(path)


def _requests_session(s: Oauth2Section) -> requests.Session:
    """A requests session for msal and google-auth that trusts ``ca_file`` and times out.

    ``session.verify`` alone is not enough: requests lets $REQUESTS_CA_BUNDLE or
    $CURL_CA_BUNDLE (set on many systems) win over it (psf/requests#3829), so the private
    CA would be ignored. The CA and the timeout are bound to every request instead; a
    caller's own ``timeout=`` still wins."""
    import requests

    session = requests.Session()
    options: dict[str, Any] = {"timeout": s.timeout_seconds}
    if s.ca_file:
        session.verify = options["verify"] = s.ca_file
    session.request = functools.partial(session.request, **options)  # type: ignore[method-assign]
    return session


def _microsoft(s: Oauth2Section) -> tuple[str, float]:
    import msal  # type: ignore[import-untyped]  # only installations that use it load it
    import requests

    secret = _secret(s)
    try:
        # A new application each time: msal's own cache would hand back the token a
        # server just rejected; desk caches the token itself.
        app = msal.ConfidentialClientApplication(
            s.client_id, client_credential=secret,
            authority=f"{s.authority_host.rstrip('/')}/{s.tenant_id}",
            # A test or sovereign-cloud authority is not in Microsoft's instance list.
            instance_discovery=None if s.authority_host == MICROSOFT_AUTHORITY else False,
            http_client=_requests_session(s))
        result = app.acquire_token_for_client(scopes=[s.effective_scope])
    except requests.RequestException as exc:
        raise TokenUnavailable(f"Microsoft token endpoint unreachable: {exc}") from None
    except ValueError as exc:
        # msal raises ValueError when the authority's discovery document is missing,
        # which is what an unknown tenant_id looks like.
        text = str(exc)
        if "tenant" in text.lower() or "authority" in text.lower():
            raise TokenRejected(f"oauth2.tenant_id ({s.tenant_id}) was not accepted: "
                                f"{text.splitlines()[0]}") from None
        raise TokenUnavailable(f"Microsoft token endpoint: {text}") from None
    if not isinstance(result, dict):
        raise TokenUnavailable("Microsoft token endpoint gave no answer")
    if "access_token" not in result:
        error = str(result.get("error", "unknown_error"))
        description = str(result.get("error_description", "")).splitlines()[0:1]
        if error in _REJECTIONS:
            raise _rejected(s, error, description[0] if description else "")
        raise TokenUnavailable(f"Microsoft token endpoint: {error}")
    return _access_token(result)


def _google(s: Oauth2Section) -> tuple[str, float]:
    import google.auth.exceptions
    import google.auth.transport.requests

    request = google.auth.transport.requests.Request(_requests_session(s))
    creds: Any
    if s.service_account_file:
        from google.oauth2 import service_account

        try:
            info = json.loads(Path(s.service_account_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TokenRejected(f"oauth2.service_account_file {s.service_account_file}: "
                                f"{exc}") from None
        if s.token_uri != GOOGLE_TOKEN_URI:
            info["token_uri"] = s.token_uri
        hide(info.get("private_key"))
        try:
            creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=[s.effective_scope], subject=s.subject)
        except (ValueError, KeyError) as exc:
            raise TokenRejected(f"oauth2.service_account_file {s.service_account_file} is "
                                f"not a service account key: {exc}") from None
    else:
        from google.oauth2.credentials import Credentials

        creds = Credentials(None, refresh_token=_refresh_token(s), token_uri=s.token_uri,
                            client_id=s.client_id, client_secret=_secret(s),
                            scopes=[s.effective_scope])  # type: ignore[no-untyped-call]
    try:
        creds.refresh(request)
    except google.auth.exceptions.RefreshError as exc:
        if getattr(exc, "retryable", False):
            raise TokenUnavailable(f"Google token endpoint: {exc}") from None
        error, description = _google_error(exc)
        raise _rejected(s, error, description) from None
    except google.auth.exceptions.TransportError as exc:
        raise TokenUnavailable(f"Google token endpoint unreachable: {exc}") from None
    token = str(creds.token)
    hide(token)
    expiry: datetime | None = creds.expiry
    lifetime = ((expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
                if expiry else DEFAULT_LIFETIME)
    return token, lifetime


def _google_error(exc: Exception) -> tuple[str, str]:
    # RefreshError's args: (message, response body as a dict or text).
    body = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(body, dict):
        return str(body.get("error", "refused")), str(body.get("error_description", ""))
    return "refused", str(exc.args[0]) if exc.args else ""


# --------------------------------------------------------------------------- consent


@dataclass(frozen=True)
class ClientSecrets:
    """An installed-app OAuth client, as Google's console downloads it."""

    client_id: str
    client_secret: str
    auth_uri: str
    token_uri: str


def read_client_secrets(path: Path) -> ClientSecrets:
    """``{"installed": {client_id, client_secret, auth_uri, token_uri}}``; ValueError names
    what is wrong with the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the client secrets file {path}: "
                         f"{exc.strerror or exc}") from None
    except ValueError:
        raise ValueError(f"the client secrets file {path} is not JSON") from None
    app = data.get("installed") if isinstance(data, dict) else None
    if not isinstance(app, dict):
        raise ValueError(f"{path} is not an installed-app client (no \"installed\" key; "
                         "create an OAuth client of type Desktop app)")
    fields = ("client_id", "client_secret", "auth_uri", "token_uri")
    missing = [k for k in fields if not isinstance(app.get(k), str) or not app[k]]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    hide(app["client_secret"])
    return ClientSecrets(*(str(app[k]) for k in fields))


class Consent:
    """The installed-app consent (RFC 8252): a loopback redirect, PKCE S256, one code.

    ``url`` is what the user opens; ``wait()`` returns the code the browser brings back to
    ``redirect_uri``; ``exchange()`` trades it for the refresh token."""

    def __init__(self, client: ClientSecrets, scope: str) -> None:
        import base64
        import hashlib
        import secrets
        from http.server import BaseHTTPRequestHandler, HTTPServer

        self.client = client
        self.verifier = secrets.token_urlsafe(64)
        self.state = secrets.token_urlsafe(16)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        self._answer: dict[str, str] | None = None
        self._arrived = threading.Event()
        consent = self

        class Redirect(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                done = ("code" in query or "error" in query) and not consent._arrived.is_set()
                if done:
                    consent._answer = query
                    consent._arrived.set()
                text = ("desk has the answer; you can close this tab." if done
                        else "desk is waiting for the consent screen's answer.")
                body = f"<!doctype html><title>desk</title><p>{text}</p>".encode()
                self.send_response(200 if done else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = HTTPServer(("127.0.0.1", 0), Redirect)
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, name="oauth-redirect",
                         daemon=True).start()
        self.url = client.auth_uri + ("&" if "?" in client.auth_uri else "?") + \
            urllib.parse.urlencode({
                "client_id": client.client_id, "redirect_uri": self.redirect_uri,
                "response_type": "code", "scope": scope, "access_type": "offline",
                "prompt": "consent", "code_challenge": challenge,
                "code_challenge_method": "S256", "state": self.state})

    def wait(self, timeout: float) -> str:
        """The authorization code; TokenError when none came, or the user said no."""
        try:
            if not self._arrived.wait(timeout):
                raise TokenUnavailable(f"no answer from the consent screen within "
                                       f"{timeout:.0f} s")
        finally:
            self._server.shutdown()
            self._server.server_close()
        answer = self._answer or {}
        if "error" in answer:
            raise TokenRejected(f"the consent was not given ({answer['error']})")
        if answer.get("state") != self.state:
            raise TokenRejected("the answer's state does not match this request (a stale "
                                "or forged redirect): run the command again")
        code = answer.get("code", "")
        hide(code)
        return code

    def exchange(self, s: Oauth2Section, code: str) -> str:
        """The refresh token the code is worth (``s`` for ca_file and timeout)."""
        data = post_form(s, self.client.token_uri, {
            "grant_type": "authorization_code", "code": code,
            "code_verifier": self.verifier, "redirect_uri": self.redirect_uri,
            "client_id": self.client.client_id, "client_secret": self.client.client_secret})
        token = data.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise TokenRejected("the token endpoint gave no refresh token (was "
                                "access_type=offline dropped?)")
        hide(token)
        if isinstance(data.get("access_token"), str):
            hide(data["access_token"])
        return token
