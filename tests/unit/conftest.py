from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from desk.config.settings import Settings, parse_settings
from desk.store.db import make_engine, session_factory, upgrade
from desk.store.directory import ClientSpec, add_staff, upsert_client
from tests.support import SECRET


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return parse_settings(
        {
            "desk": {"address": "support@agency.test", "secret": SECRET,
                     "database_url": f"sqlite:///{tmp_path / 'desk.db'}",
                     "triage": "alice@agency.test"},
            "mailbox": {"source": "maildir", "path": str(tmp_path / "inbox")},
            "smtp": {"transport": "maildir", "path": str(tmp_path / "sent")},
        },
        tmp_path,
    )


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    """A migrated SQLite database with a small directory: staff of every role and one
    client per tier (domains <tier>.test, contact boss@<tier>.test)."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = session_factory(engine)
    with factory() as s:
        for email, name, role in [
            ("alice@agency.test", "Alice", "account_manager"),
            ("paul@agency.test", "Paul", "project_manager"),
            ("ben@agency.test", "Ben", "project_manager"),
            ("sam@agency.test", "Sam", "senior_engineer"),
            ("jo@agency.test", "Jo", "junior_engineer"),
        ]:
            add_staff(s, email, name, role)
        for tier in ("retainer", "project", "post_project", "hosting", "hosting_sla",
                     "support_sla"):
            upsert_client(s, ClientSpec(
                name=f"{tier} client", tier=tier, domains=[f"{tier.replace('_', '')}.test"],
                contacts=[f"boss@{tier.replace('_', '')}.test"],
                account_manager="alice@agency.test", project_manager="paul@agency.test",
                backup="ben@agency.test",
            ))
        s.commit()
        yield s
    engine.dispose()
