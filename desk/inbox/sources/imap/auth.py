"""Logging in to the IMAP server: a password, or an OAuth2 token (SASL XOAUTH2 or
OAUTHBEARER), and the TLS context that checks the server's certificate."""

from __future__ import annotations

import logging
import ssl

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from desk.config.settings import MailboxSection
from desk.credentials import token_source

log = logging.getLogger("desk.inbox")


def tls_context(s: MailboxSection) -> ssl.SSLContext:
    """Certificate and host name are always checked; ``ca_file`` adds a private CA."""
    return ssl.create_default_context(cafile=s.ca_file)


def _mechanism(client: IMAPClient) -> str:
    # XOAUTH2 is what Microsoft and Google document; OAUTHBEARER (RFC 7628) where a server
    # offers only the standard one.
    if client.has_capability("AUTH=XOAUTH2") or not client.has_capability("AUTH=OAUTHBEARER"):
        return "XOAUTH2"
    return "OAUTHBEARER"


def _token_login(client: IMAPClient, user: str, token: str, mechanism: str) -> None:
    if mechanism == "OAUTHBEARER":
        client.oauthbearer_login(user, token)
    else:
        client.oauth2_login(user, token)


def login(client: IMAPClient, s: MailboxSection) -> None:
    if s.auth == "password":
        client.login(s.username, s.resolved_password())
        return
    assert s.oauth2 is not None and s.username is not None
    tokens = token_source(s.oauth2)
    token = tokens.token()
    mechanism = _mechanism(client)
    try:
        _token_login(client, s.username, token, mechanism)
    except LoginError as exc:
        # NO [AUTHENTICATIONFAILED]: the token may have been revoked or expired early on
        # the server's clock. One fresh token and one more try; a second refusal is real.
        log.info("IMAP server refused the OAuth2 token (%s); fetching a new one", exc)
        _token_login(client, s.username, tokens.refresh(rejected=token), mechanism)
