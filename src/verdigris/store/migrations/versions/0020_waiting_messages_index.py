"""waiting messages index: find the messages waiting to be sent without reading the whole journal

Revision ID: 0020_waiting_messages_index
Revises: 0019_sandbox_blocks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_waiting_messages_index"
down_revision = "0019_sandbox_blocks"
branch_labels = None
depends_on = None

WAITING = sa.text("status IN ('queued', 'review')")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_waiting",
            ["instance_id"],
            unique=False,
            sqlite_where=WAITING,
            postgresql_where=WAITING,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_waiting")
