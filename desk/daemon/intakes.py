"""The one place that knows the kinds of source: the rest of the daemon drives them all
through ``desk.inbox.sources.Source``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.inbox.intake import Ingest, OnIngested
from desk.inbox.sources import Source
from desk.inbox.sources.imap.source import ImapSource
from desk.inbox.sources.lmtp import LmtpSource
from desk.inbox.sources.maildir import MaildirSource


def make_sources(
    settings: Settings,
    ingest: Ingest,
    factory: sessionmaker[Session],
    *,
    worker_id: str,
    clock: Callable[[], datetime],
    on_ingested: OnIngested,
) -> list[Source]:
    """Every intake the settings ask for, wired to the ingest side."""
    sources: list[Source] = []
    mb = settings.mailbox
    if mb is not None and mb.source == "imap":
        sources.append(ImapSource(mb, ingest, factory, worker_id=worker_id, clock=clock,
                                  on_ingested=on_ingested))
    elif mb is not None:
        assert mb.path is not None  # the settings refuse a maildir without a path
        sources.append(MaildirSource(Path(mb.path), ingest, on_ingested))
    if settings.intake.lmtp is not None:
        lmtp = settings.intake.lmtp
        sources.append(LmtpSource(lmtp.host, lmtp.port, ingest, on_ingested,
                                  data_size_limit=settings.intake.max_message_bytes * 2))
    return sources
