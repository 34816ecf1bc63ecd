"""The ``[oauth2]`` section: how desk gets access tokens for ``auth = "oauth2"`` mailboxes.

Microsoft 365 and Google Workspace no longer accept passwords for IMAP and SMTP; both take
an OAuth2 access token instead (SASL XOAUTH2). Secrets are named here, never written
here: ``client_secret_env`` and ``refresh_token_env`` name environment variables, a Google
service account is a key file, and ``refresh_token_file`` is where ``desk init-oauth``
stores what the consent screen gave.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

Provider = Literal["microsoft365", "google", "generic"]

DEFAULT_SCOPES: dict[str, str] = {
    # Client credentials take the resource's ".default" scope: the permissions an admin
    # granted the app registration (IMAP.AccessAsApp, SMTP.SendAsApp).
    "microsoft365": "https://outlook.office365.com/.default",
    "google": "https://mail.google.com/",
}
# (host, port, security) of each provider's IMAP and SMTP servers, used when the
# [mailbox] / [smtp] section leaves them out.
IMAP_DEFAULTS: dict[str, tuple[str, int]] = {
    "microsoft365": ("outlook.office365.com", 993),
    "google": ("imap.gmail.com", 993),
}
SMTP_DEFAULTS: dict[str, tuple[str, int, str]] = {
    "microsoft365": ("smtp.office365.com", 587, "starttls"),
    "google": ("smtp.gmail.com", 465, "tls"),
}
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"


class Oauth2Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider
    client_id: str | None = None
    client_secret_env: str | None = None
    scope: str | None = None
    # microsoft365
    tenant_id: str | None = None
    # Only for tests and national clouds (login.microsoftonline.us, ...).
    authority_host: str = MICROSOFT_AUTHORITY
    # google: a service account with domain-wide delegation acting as ``subject`` ...
    service_account_file: str | None = None
    subject: str | None = None
    # ... or an installed-app client with a refresh token (desk init-oauth google).
    token_uri: str = GOOGLE_TOKEN_URI
    # generic (any RFC 6749 token endpoint)
    token_url: str | None = None
    grant: Literal["client_credentials", "refresh_token"] = "client_credentials"
    # The refresh token: from the environment, or from the file desk init-oauth writes.
    refresh_token_env: str | None = None
    refresh_token_file: str | None = None
    # Seconds before expiry a token is replaced, so no login starts with a dying token.
    refresh_margin_seconds: float = 300.0
    timeout_seconds: float = 15.0
    # Trust a private CA for the token endpoint (tests, on-premises identity providers).
    ca_file: str | None = None

    @model_validator(mode="after")
    def _by_provider(self) -> Oauth2Section:
        need: list[str] = []
        if self.provider == "microsoft365":
            need = ["tenant_id", "client_id", "client_secret_env"]
        elif self.provider == "google":
            if not self.service_account_file:
                need = ["client_id", "client_secret_env"]
                if not (self.refresh_token_env or self.refresh_token_file):
                    raise ValueError("provider = 'google' needs service_account_file (with "
                                     "subject), or a refresh token: refresh_token_env or "
                                     "refresh_token_file (desk init-oauth google)")
            elif not self.subject:
                raise ValueError("service_account_file needs subject: the mailbox address "
                                 "the service account acts as")
        else:
            need = ["token_url", "client_id"]
            if self.grant == "client_credentials":
                need.append("client_secret_env")
            elif not (self.refresh_token_env or self.refresh_token_file):
                raise ValueError("grant = 'refresh_token' needs refresh_token_env or "
                                 "refresh_token_file")
        missing = [k for k in need if not getattr(self, k)]
        if missing:
            raise ValueError(f"provider = {self.provider!r} needs {', '.join(missing)}")
        # A variable that is not set fails at start, not at the first login hours later.
        self.client_secret()
        if self.refresh_token_env:
            self.refresh_token()
        return self

    @property
    def effective_scope(self) -> str | None:
        return self.scope or DEFAULT_SCOPES.get(self.provider)

    @property
    def uses_refresh_token(self) -> bool:
        if self.provider == "google":
            return not self.service_account_file
        return self.provider == "generic" and self.grant == "refresh_token"

    def client_secret(self) -> str | None:
        return _from_env(self.client_secret_env, "client_secret_env")

    def refresh_token(self) -> str | None:
        if self.refresh_token_env:
            return _from_env(self.refresh_token_env, "refresh_token_env")
        if self.refresh_token_file:
            path = Path(self.refresh_token_file)
            try:
                return path.read_text(encoding="utf-8").strip() or None
            except FileNotFoundError:
                raise ValueError(f"oauth2.refresh_token_file {path} does not exist (run "
                                 "desk init-oauth to create it)") from None
            except OSError as exc:
                raise ValueError(f"oauth2.refresh_token_file {path}: {exc}") from None
        return None


def _from_env(name: str | None, key: str) -> str | None:
    if not name:
        return None
    if name not in os.environ:
        raise ValueError(f"oauth2.{key} names ${name}, which is not set")
    return os.environ[name]
