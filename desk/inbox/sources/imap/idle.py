"""Waiting for new mail between syncs: IDLE (RFC 2177) when the server offers it and
the settings allow, else polling every ``poll_seconds``."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable

from imapclient import IMAPClient

from desk.config.settings import MailboxSection
from desk.inbox.sources.imap.session import ConnectionErrors, ConnectionLost

# RFC 2177 allows servers to drop IDLE after 30 min; re-issuing every 5 min also catches
# connections that died silently (no FIN) and mail a server forgot to announce.
IDLE_REISSUE_SECONDS = 5 * 60


def more_waiting(client: IMAPClient, last_uid: int) -> bool:
    """Did mail arrive while we were busy? Its EXISTS may have come as an untagged reply
    to our own commands, which the server will not repeat once we IDLE: only a
    search after the last command sees it for sure."""
    return any(u > last_uid for u in client.search(["UID", f"{last_uid + 1}:*"]))


def wait_for_mail(client: IMAPClient, stop: threading.Event, settings: MailboxSection) -> None:
    """Block until the server reports new mail, ``poll_seconds`` pass, or stop is set."""
    if not (settings.idle and client.has_capability("IDLE")):
        stop.wait(settings.poll_seconds)
        return
    client.idle()
    started = time.monotonic()
    instant_empty = 0
    # Re-issue at least every poll_seconds: a safety net should a notification be lost.
    reissue = min(IDLE_REISSUE_SECONDS, settings.poll_seconds)
    try:
        while not stop.is_set() and time.monotonic() - started < reissue:
            t0 = time.monotonic()
            responses = client.idle_check(timeout=1)
            if any(_is_bye(r) for r in responses):
                raise ConnectionLost("server said BYE")
            if any(_is_new_mail(r) for r in responses):
                return
            # imapclient swallows EOF inside idle_check: a readable socket that yields
            # nothing, again and again, is a closed connection.
            instant_empty = instant_empty + 1 if time.monotonic() - t0 < 0.5 else 0
            if instant_empty >= 3:
                raise ConnectionLost("server closed the connection")
    finally:
        with contextlib.suppress(*ConnectionErrors):
            client.idle_done()


def _is_bye(response: object) -> bool:
    return isinstance(response, tuple) and len(response) >= 1 and response[0] == b"BYE"


def _is_new_mail(response: Iterable[object] | object) -> bool:
    return isinstance(response, tuple) and len(response) >= 2 and response[1] in (
        b"EXISTS", b"RECENT")
