"""Alembic environment: runs on the connection `desk.db.upgrade` hands over, or on the URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from desk.store.models import Base
from desk.store.search import include_in_schema_compare

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True,
            # the search index is the database's own (migration 0010), not in the models:
            # autogenerate must never propose dropping it
            include_name=include_in_schema_compare,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=True, include_name=include_in_schema_compare)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
