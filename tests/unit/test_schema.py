"""The migrations build exactly the schema the models describe, and upgrade is repeatable."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from desk.store.db import current_revision, head_revision, make_engine, upgrade
from desk.store.models import Base
from desk.store.search import include_in_schema_compare


def test_migrations_match_models_and_can_run_twice(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert upgrade(engine) == head_revision()
    assert upgrade(engine) == head_revision()  # `desk init` twice is harmless
    with engine.connect() as conn:
        # The search index (FTS5 tables, their triggers) lives beside the models, not in them.
        context = MigrationContext.configure(
            conn, opts={"include_name": include_in_schema_compare})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
