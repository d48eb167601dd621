"""sandbox blocks: accounts a sandbox phone has blocked

Revision ID: 0019_sandbox_blocks
Revises: 0018_idempotency_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_sandbox_blocks"
down_revision = "0018_idempotency_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sandbox_blocks",
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("blocked", sa.String(length=64), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("phone", "blocked", name=op.f("pk_sandbox_blocks")),
    )


def downgrade() -> None:
    op.drop_table("sandbox_blocks")
