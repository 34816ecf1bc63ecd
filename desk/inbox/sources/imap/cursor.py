"""Where intake stands in the folder: (UIDVALIDITY, the highest UID acknowledged).

The position only moves once messages are committed and acknowledged (or, too big to
download, recorded as left at the source), and never past a UID that could not be read;
receipts keyed by (mailbox, UIDVALIDITY, UID) make any
re-fetch harmless, and a UIDVALIDITY change re-scans the folder (duplicates are then
recognised by Message-ID).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from imapclient import IMAPClient
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import MailboxSection
from desk.store.db import transaction
from desk.store.models import MailboxState

log = logging.getLogger("desk.inbox")


def mailbox_key(settings: MailboxSection) -> str:
    """The folder's name in the database: its lease, cursor and receipts."""
    return (f"imap:{settings.username}@{settings.host}:{settings.effective_port}"
            f"/{settings.folder}")


class Position(NamedTuple):
    """Where one message is: the source key of its receipt, taken apart."""

    mailbox: str
    uidvalidity: int
    uid: int

    @property
    def key(self) -> str:
        return f"{self.mailbox}:{self.uidvalidity}:{self.uid}"

    @classmethod
    def parse(cls, key: str) -> Position | None:
        mailbox, validity, uid = key.rsplit(":", 2) if key.count(":") >= 2 else ("", "", "")
        if not (mailbox.startswith("imap:") and validity.isdigit() and uid.isdigit()):
            return None
        return cls(mailbox, int(validity), int(uid))


class UidCursor:
    def __init__(self, factory: sessionmaker[Session], key: str, *,
                 clock: Callable[[], datetime]) -> None:
        self.factory = factory
        self.key = key
        self.clock = clock

    def position(self) -> tuple[int | None, int]:
        """(UIDVALIDITY, last UID); (None, 0) before the first contact."""
        with self.factory() as session:
            st = session.get(MailboxState, self.key)
            return (st.uidvalidity, st.last_uid) if st else (None, 0)

    def save(self, uidvalidity: int, last_uid: int) -> None:
        with transaction(self.factory) as session:
            st = session.get(MailboxState, self.key)
            assert st is not None  # created with the lease
            st.uidvalidity = uidvalidity
            st.last_uid = max(last_uid, 0)
            st.last_ingest_at = self.clock()

    def pending(self, client: IMAPClient, folder: str) -> tuple[int, list[int]]:
        """Select ``folder``; its UIDVALIDITY and the UIDs not yet taken, in order."""
        info = client.select_folder(folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        known_validity, last_uid = self.position()
        if known_validity is None:
            # First contact: old mail that people already read is history, not requests.
            uids = client.search(["UNSEEN"])
        elif known_validity != uidvalidity:
            log.warning("%s: UIDVALIDITY changed %s -> %s, re-scanning (duplicates are "
                        "skipped by Message-ID)", self.key, known_validity, uidvalidity)
            uids = client.search(["NOT", "DELETED"])
        else:
            uids = [u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid]
        return uidvalidity, sorted(uids)
