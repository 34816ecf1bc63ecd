"""Where outgoing mail goes: an SMTP server (one reused connection) or a local Maildir."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mailbox
import ssl
from pathlib import Path
from typing import Protocol

import aiosmtplib

from desk.config.settings import SmtpSection

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


class SmtpTransport:
    """One SMTP connection, opened lazily and reused for every message (throughput)."""

    def __init__(self, settings: SmtpSection) -> None:
        self._s = settings
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    def _make_client(self) -> aiosmtplib.SMTP:
        s = self._s
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.effective_port,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            tls_context=ssl.create_default_context() if s.security != "none" else None,
            timeout=s.timeout_seconds,
        )

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = self._make_client()
        await client.connect()
        password = self._s.resolved_password()
        if self._s.username and password:
            await client.login(self._s.username, password)
        self._client = client
        return client

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


def make_transport(settings: SmtpSection) -> Transport:
    if settings.transport == "maildir":
        assert settings.path is not None
        return MaildirTransport(Path(settings.path))
    return SmtpTransport(settings)
