"""Exactly one worker ingests a mailbox at a time: a lease row, renewed while working,
taken over when it expires or its holder's process is gone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from desk.inbox.sources import SourceBusy
from desk.store.db import transaction
from desk.store.deferred import begin_savepoint
from desk.store.models import MailboxState
from desk.store.workers import is_dead

log = logging.getLogger("desk.inbox")

LEASE_SECONDS = 60


class LeaseHeld(SourceBusy):
    """Another worker ingests this mailbox right now."""


class MailboxLease:
    def __init__(self, factory: sessionmaker[Session], key: str, *, worker_id: str,
                 clock: Callable[[], datetime]) -> None:
        self.factory = factory
        self.key = key
        self.worker_id = worker_id
        self.clock = clock

    def acquire(self) -> bool:
        now = self.clock()
        with transaction(self.factory) as session:
            state = session.get(MailboxState, self.key)
            if state is None:
                try:
                    with begin_savepoint(session):
                        session.add(MailboxState(key=self.key, last_uid=0))
                except IntegrityError:
                    pass  # another worker created it a moment ago
            elif state.lease_holder and state.lease_holder != self.worker_id and \
                    is_dead(state.lease_holder):
                log.info("%s: taking over the lease of %s (process gone)", self.key,
                         state.lease_holder)
                state.lease_expires_at = now  # expired: the update below takes it
            # An UPDATE gives a cursor result: its rowcount says whether the lease is ours.
            result = cast("CursorResult[Any]", session.execute(
                update(MailboxState)
                .where(
                    MailboxState.key == self.key,
                    or_(
                        MailboxState.lease_holder.is_(None),
                        MailboxState.lease_holder == self.worker_id,
                        MailboxState.lease_expires_at <= now,
                    ),
                )
                .values(lease_holder=self.worker_id,
                        lease_expires_at=now + timedelta(seconds=LEASE_SECONDS))
            ))
            return bool(result.rowcount)

    def release(self) -> None:
        with transaction(self.factory) as session:
            session.execute(
                update(MailboxState)
                .where(MailboxState.key == self.key, MailboxState.lease_holder == self.worker_id)
                .values(lease_holder=None, lease_expires_at=None)
            )
