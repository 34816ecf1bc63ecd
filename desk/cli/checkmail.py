"""`desk check-mail`: can desk reach and log in to its mailbox and SMTP server?

One clear line per failure (DNS, refused connection, TLS, authentication, missing folder),
so an admin setting up a real mailbox sees what to fix without reading a traceback."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import click
from imapclient.exceptions import IMAPClientError, LoginError

from desk.cli.common import Ctx, pass_ctx
from desk.config.settings import MailboxSection, SmtpSection
from desk.credentials import TokenError
from desk.inbox.sources.imap.session import ImapSession
from desk.logs import mask_secrets
from desk.outbound.transport import TemporaryFailure, open_smtp
from desk.words import plural


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def describe(exc: BaseException, host: str | None, port: int) -> str:
    """What went wrong, in words an admin can act on."""
    for cause in _causes(exc):
        if isinstance(cause, TokenError):
            return f"OAuth2: {cause}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or str(cause)
            if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
                return (f"TLS: the certificate of {host}:{port} is not valid for the name "
                        f"{host} ({reason})")
            return (f"TLS: the certificate of {host}:{port} is not trusted ({reason}); a "
                    "private CA goes in ca_file")
        if isinstance(cause, ssl.SSLError):
            return f"TLS with {host}:{port} failed: {cause.reason or cause}"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve {host} (DNS): {cause.strerror or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return f"{host}:{port} refused the connection (is the port right?)"
        if isinstance(cause, TimeoutError | socket.timeout):
            return f"{host}:{port} did not answer in time"
        if isinstance(cause, LoginError | aiosmtplib.SMTPAuthenticationError):
            return f"authentication failed: {cause}"
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"


def check_imap(s: MailboxSection) -> list[str]:
    where = f"mailbox ({s.host}:{s.effective_port}, auth {s.auth})"
    session = ImapSession(s)
    try:
        client = session.client()
    except Exception as exc:
        return [f"{where}: {describe(exc, s.host, s.effective_port)}"]
    try:
        greeting = client.welcome
        click.echo(f"IMAP {s.host}:{s.effective_port}: logged in as {s.username} ({s.auth})")
        click.echo(f"  greeting: {greeting.decode(errors='replace') if greeting else '-'}")
        caps = {c.decode() if isinstance(c, bytes) else str(c) for c in client.capabilities()}
        wanted = ", ".join(f"{name} {'yes' if name in caps else 'NO'}"
                           for name in ("IDLE", "MOVE", "UIDPLUS"))
        click.echo(f"  capabilities: {wanted}")
        try:
            status = client.folder_status(s.folder, ["MESSAGES", "UIDVALIDITY"])
        except IMAPClientError as exc:
            return [f"{where}: folder {s.folder!r} (mailbox.folder) cannot be opened: {exc}"]
        click.echo(f"  folder {s.folder}: {plural(status[b'MESSAGES'], 'message')}, "
                   f"UIDVALIDITY {status[b'UIDVALIDITY']}")
        if s.processed_folder and not client.folder_exists(s.processed_folder):
            return [f"{where}: mailbox.processed_folder {s.processed_folder!r} does not exist"]
        return []
    except Exception as exc:
        return [f"{where}: {describe(exc, s.host, s.effective_port)}"]
    finally:
        session.close()


async def check_smtp(s: SmtpSection, send_test: str | None, sender: str) -> list[str]:
    where = f"smtp ({s.host}:{s.effective_port}, {s.security}, auth {s.auth})"
    try:
        client = await open_smtp(s)
    except (aiosmtplib.SMTPException, OSError, TimeoutError, TemporaryFailure,
            TokenError) as exc:
        return [f"{where}: {describe(exc, s.host, s.effective_port)}"]
    try:
        click.echo(f"SMTP {s.host}:{s.effective_port}: connected"
                   + (f", logged in as {s.username} ({s.auth})" if s.username else ""))
        extensions = sorted(client.esmtp_extensions)
        click.echo(f"  extensions: {', '.join(e.upper() for e in extensions) or '-'}")
        if send_test:
            msg = EmailMessage()
            msg["From"], msg["To"] = sender, send_test
            msg["Subject"] = "desk check-mail test"
            msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
            msg["Auto-Submitted"] = "auto-generated"
            msg.set_content("This is a test mail from `desk check-mail`. No reply needed.\n")
            await client.send_message(msg)
            click.echo(f"  test mail sent to {send_test}")
        return []
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return [f"{where}: {describe(exc, s.host, s.effective_port)}"]
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


@click.command("check-mail", short_help="Log in to the mailbox and the SMTP server as a test.")
@click.option("--send-test", "send_test", metavar="ADDRESS",
              help="Also send a test mail to ADDRESS through the SMTP server.")
@pass_ctx
def check_mail(c: Ctx, send_test: str | None) -> None:
    """Connect and log in to the mailbox and the SMTP server, and say what they offer."""
    s = c.settings
    failures: list[str] = []
    if s.mailbox is not None and s.mailbox.source == "imap":
        failures += check_imap(s.mailbox)
    else:
        click.echo("mailbox: not IMAP, nothing to connect to")
    if s.smtp.transport == "smtp":
        failures += asyncio.run(check_smtp(s.smtp, send_test, s.desk.address))
    else:
        click.echo(f"smtp: transport = {s.smtp.transport!r}, nothing to connect to")
    for line in failures:
        click.echo(f"desk: {mask_secrets(line)}", err=True)
    if failures:
        sys.exit(1)
    click.echo("mail servers OK")


COMMANDS = [check_mail]
