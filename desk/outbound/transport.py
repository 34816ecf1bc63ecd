"""Where outgoing mail goes: an SMTP server (one reused connection) or a local Maildir."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import mailbox
import ssl
from pathlib import Path
from typing import Protocol

import aiosmtplib

from desk.config.settings import SmtpSection
from desk.credentials import TokenError, oauthbearer, token_source, xoauth2

log = logging.getLogger("desk.outbound")


class TemporaryFailure(Exception):
    """Try again later (4xx, connection refused, timeout)."""


class PermanentFailure(Exception):
    """The server refused the message for good (5xx)."""


class Transport(Protocol):
    async def send(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> None: ...

    async def close(self) -> None: ...


class MaildirTransport:
    """Writes each outgoing mail into a Maildir: demos, dry runs, and local delivery."""

    def __init__(self, path: Path) -> None:
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(path, create=False)

    async def send(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> None:
        envelope = f"X-Desk-Envelope-To: {', '.join(rcpt_to)}\r\n".encode()
        try:
            self._box.add(envelope + raw)
        except OSError as exc:  # disk full, permissions: retry later, keep the row
            raise TemporaryFailure(f"cannot write to {self._box._path}: {exc}") from exc

    async def close(self) -> None:
        self._box.close()


def _classify(exc: Exception) -> Exception:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [e.code for e in exc.recipients]
        text = "; ".join(f"{e.recipient}: {e.code} {e.message}" for e in exc.recipients)
        if codes and all(500 <= c < 600 for c in codes):
            return PermanentFailure(text)
        return TemporaryFailure(text)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {exc.message}"
        return PermanentFailure(text) if 500 <= exc.code < 600 else TemporaryFailure(text)
    return TemporaryFailure(f"{type(exc).__name__}: {exc}")


async def open_smtp(s: SmtpSection) -> aiosmtplib.SMTP:
    """A connected, logged-in client (the transport; ``desk check-mail``)."""
    client = aiosmtplib.SMTP(
        hostname=s.host,
        port=s.effective_port,
        use_tls=s.security == "tls",
        start_tls=s.security == "starttls",
        # Certificates and host names are always checked; ca_file adds a private CA.
        tls_context=(ssl.create_default_context(cafile=s.ca_file)
                     if s.security != "none" else None),
        timeout=s.timeout_seconds,
    )
    await client.connect()
    if s.auth == "oauth2":
        try:
            await token_login(client, s)
        except BaseException:
            client.close()
            raise
        return client
    password = s.resolved_password()
    if s.username and password:
        await client.login(s.username, password)
    return client


class SmtpTransport:
    """One SMTP connection, opened lazily and reused for every message (throughput)."""

    def __init__(self, settings: SmtpSection) -> None:
        self._s = settings
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        self._client = await open_smtp(self._s)
        return self._client

    async def send(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> None:
        async with self._lock:
            for attempt in (1, 2):
                try:
                    client = await self._connected()
                    await client.sendmail(mail_from, rcpt_to, raw)
                    return
                except aiosmtplib.SMTPServerDisconnected as exc:
                    # An idle connection the server closed: reconnect once, then give up.
                    self._client = None
                    if attempt == 2:
                        raise TemporaryFailure(f"server disconnected: {exc}") from exc
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    await self._drop()
                    raise _classify(exc) from exc
                except TemporaryFailure:
                    await self._drop()
                    raise

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


async def _bearer(client: aiosmtplib.SMTP, mechanism: str, user: str, token: str) -> None:
    blob = xoauth2(user, token) if mechanism == "XOAUTH2" else oauthbearer(user, token)
    response = await client.execute_command(b"AUTH", mechanism.encode(),
                                            base64.b64encode(blob))
    if response.code == 334:
        # The server's error details come as a challenge; an empty line gets the verdict.
        response = await client.execute_command(b"")
    if response.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)


def bearer_mechanism(client: aiosmtplib.SMTP) -> str:
    # XOAUTH2 is what Microsoft and Google document; OAUTHBEARER (RFC 7628) where a
    # server offers only the standard one.
    methods = client.server_auth_methods
    return "OAUTHBEARER" if "oauthbearer" in methods and "xoauth2" not in methods \
        else "XOAUTH2"


async def token_login(client: aiosmtplib.SMTP, s: SmtpSection) -> None:
    """AUTH with an OAuth2 token; a refused token (535) is replaced once and tried again.

    Every failure here is a TemporaryFailure: a token endpoint that is down or a revoked
    secret is no fault of the message, which stays queued until the admin has fixed it."""
    assert s.oauth2 is not None and s.username is not None
    tokens = token_source(s.oauth2)
    try:
        if client.last_ehlo_response is None:
            await client.ehlo()
        mechanism = bearer_mechanism(client)
        token = await asyncio.to_thread(tokens.token)
        try:
            await _bearer(client, mechanism, s.username, token)
        except aiosmtplib.SMTPAuthenticationError as exc:
            log.info("SMTP server refused the OAuth2 token (%s %s); fetching a new one",
                     exc.code, exc.message)
            token = await asyncio.to_thread(tokens.refresh, token)
            await _bearer(client, mechanism, s.username, token)
    except TokenError as exc:
        raise TemporaryFailure(f"no OAuth2 token for SMTP: {exc}") from exc
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise TemporaryFailure(f"SMTP server refused the OAuth2 login of {s.username} "
                               f"(smtp.username) with a fresh token: {exc.code} "
                               f"{exc.message}") from exc


def make_transport(settings: SmtpSection) -> Transport:
    if settings.transport == "maildir":
        assert settings.path is not None
        return MaildirTransport(Path(settings.path))
    return SmtpTransport(settings)
