"""workers: the connection trouble a daemon is in now, for `desk status`

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trouble", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("trouble_since", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("trouble_since")
        batch_op.drop_column("trouble")
