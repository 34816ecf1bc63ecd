"""One IMAP connection (imapclient, blocking), opened when first needed."""

from __future__ import annotations

import contextlib
import socket
import ssl

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from desk.config.settings import MailboxSection
from desk.credentials import TokenError
from desk.inbox.sources.imap.auth import login, tls_context

# TokenError: the token endpoint is down or refused us; the source backs off and logs the
# incident once, like any other lost connection, and nothing is acknowledged meanwhile.
ConnectionErrors = (IMAPClientError, OSError, socket.error, ssl.SSLError, EOFError, TokenError)


class ConnectionLost(IMAPClientError):  # type: ignore[misc]  # imapclient has no types
    """The server said BYE or closed the socket while we were idling."""


class ImapSession:
    def __init__(self, settings: MailboxSection) -> None:
        self.s = settings
        self._client: IMAPClient | None = None

    # -- network seam ---------------------------------------------------------------
    def connect(self) -> IMAPClient:
        s = self.s
        context = tls_context(s) if s.tls else None
        # A short timeout: a server that accepts but never greets must not stall recovery.
        client = IMAPClient(s.host, port=s.effective_port, ssl=s.tls, ssl_context=context,
                            timeout=15)
        try:
            login(client, s)
        except BaseException:
            # A refused login must not leave the socket open until garbage collection.
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        # Keepalive probes notice a peer that vanished without closing the connection.
        client.socket().setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return client

    def client(self) -> IMAPClient:
        if self._client is None:
            self._client = self.connect()
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # The connection may already be dead: closing it must never raise.
            with contextlib.suppress(Exception):
                client.logout()


def acknowledge(client: IMAPClient, uids: list[int], processed_folder: str | None) -> None:
    """Mark committed messages done at the source: ``\\Seen``, or moved away."""
    if not processed_folder:
        client.add_flags(uids, [b"\\Seen"], silent=True)
        return
    client.add_flags(uids, [b"\\Seen"], silent=True)
    if client.has_capability("MOVE"):
        client.move(uids, processed_folder)
    else:
        client.copy(uids, processed_folder)
        client.delete_messages(uids, silent=True)
        client.uid_expunge(uids) if client.has_capability("UIDPLUS") else client.expunge()
