"""Fetching one message again by its position, for `desk quarantine retry` of a message
that was too big to download and was left on the server.

The position is the quarantine entry's source key: (mailbox, UIDVALIDITY, UID). A UID
names a message only while the folder keeps its UIDVALIDITY, so a changed one is refused
rather than fetching whatever now has that number.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from imapclient import IMAPClient

from desk.config.settings import MailboxSection
from desk.inbox.sources.imap.cursor import Position, mailbox_key
from desk.inbox.sources.imap.session import ConnectionErrors, ImapSession, acknowledge


class NotFetched(Exception):
    """The message cannot be fetched from its source; the text says why, for the admin."""


@dataclass(slots=True)
class Refetched:
    raw: bytes
    position: Position
    _client: IMAPClient
    _settings: MailboxSection

    def acknowledge(self) -> None:
        """Done at the source, as if it had been ingested by the daemon: ``\\Seen`` or
        moved to ``processed_folder``."""
        acknowledge(self._client, [self.position.uid], self._settings.processed_folder)


@contextmanager
def refetch(settings: MailboxSection, source_key: str, *, max_bytes: int
            ) -> Iterator[Refetched]:
    """The message at ``source_key`` on the configured mailbox, downloaded; the
    connection stays open inside the block so it can be acknowledged there."""
    position = Position.parse(source_key)
    if position is None:
        raise NotFetched(f"{source_key} is not an IMAP position")
    if position.mailbox != mailbox_key(settings):
        raise NotFetched(f"it was left on {position.mailbox}, but [mailbox] now reads "
                         f"{mailbox_key(settings)}")
    session = ImapSession(settings)
    try:
        try:
            client = session.client()
            raw = _download(client, settings.folder, position, max_bytes)
        except ConnectionErrors as exc:
            raise NotFetched(f"cannot fetch it from {position.mailbox}: {exc}") from exc
        yield Refetched(raw, position, client, settings)
    finally:
        session.close()


def _download(client: IMAPClient, folder: str, position: Position, max_bytes: int) -> bytes:
    uidvalidity = int(client.select_folder(folder)[b"UIDVALIDITY"])
    if uidvalidity != position.uidvalidity:
        raise NotFetched(
            f"the UIDVALIDITY of {folder} changed from {position.uidvalidity} to "
            f"{uidvalidity}: the server numbered its messages anew, so UID {position.uid} "
            "no longer names this message. If it is still there, the next sync "
            "(`desk run --once`) finds it and moves this entry to its new UID: retry then")
    sizes = client.fetch([position.uid], ["RFC822.SIZE"])
    size = sizes.get(position.uid, {}).get(b"RFC822.SIZE")
    if size is None:
        raise NotFetched(f"UID {position.uid} is no longer in {folder} (deleted or moved "
                         "away on the server): `desk quarantine drop` the entry")
    if int(size) > max_bytes:
        raise NotFetched(f"it is still {int(size):,} bytes, over the {max_bytes:,} byte cap: "
                         "raise [intake] max_message_bytes first")
    data = client.fetch([position.uid], ["BODY.PEEK[]"]).get(position.uid, {})
    if b"BODY[]" not in data:
        raise NotFetched(f"UID {position.uid} vanished from {folder} while being fetched")
    return bytes(data[b"BODY[]"] or b"")
