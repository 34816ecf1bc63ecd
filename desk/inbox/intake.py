"""What a source hands its mail to, as the source sees it.

Sources depend on this small interface, never on ``desk.work``: the daemon wires the real
ingest side (``desk.work.ingest.Ingestor``) in. The contract that makes intake exactly
once: ``ingest``/``ingest_batch`` return only after the transaction that recorded the
messages committed, so the source acknowledges them then and not before; when they raise
``TransientError`` nothing was recorded and the source keeps the messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

# Messages per ingest transaction: a commit per message is most of the cost of a backlog,
# and a longer transaction would keep other writers (the sender, the CLI) waiting.
INGEST_BATCH = 50


class TransientError(Exception):
    """The database is locked or unreachable: keep the message at the source, retry."""


# ticketed: recorded on a ticket; duplicate: its Message-ID was seen before; quarantined:
# kept with the reason; already: this source position has a receipt (re-delivered).
IngestOutcome = Literal["ticketed", "duplicate", "quarantined", "already"]


@dataclass(slots=True)
class IngestResult:
    outcome: IngestOutcome
    ticket_id: int | None = None
    quarantine_id: int | None = None
    new_ticket: bool = False
    acknowledged: bool = False
    reason: str = ""


class Ingest(Protocol):
    def ingest(self, source_key: str, raw: bytes, *, source: str) -> IngestResult: ...

    def ingest_batch(self, items: Sequence[tuple[str, bytes]], *, source: str
                     ) -> list[IngestResult]: ...

    # A source that can see a message's size before downloading it (IMAP) leaves one over
    # this cap at the source and hands over only its headers: the message is quarantined
    # and recorded at ``source_key`` (so it is not handed over again), and the source must
    # not acknowledge it; `desk quarantine retry` fetches it later.
    @property
    def max_message_bytes(self) -> int: ...

    def quarantine_unfetched(self, source_key: str, headers: bytes, size: int
                             ) -> IngestResult: ...


# Told how many messages just committed (0: a round ended), so the sender can start on
# their mail at once instead of at its next timer.
OnIngested = Callable[[int], None]


def ignore(count: int) -> None:
    """For a source nobody needs to hear from (tests, tools)."""
