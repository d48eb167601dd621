"""send policies

Revision ID: 0013_send_policies
Revises: 0012_screening
Create Date: 2026-11-25 05:11:15.771902
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_send_policies"
down_revision = "0012_screening"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "send_policies",
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("quiet_from", sa.String(length=5), server_default="", nullable=False),
        sa.Column("quiet_to", sa.String(length=5), server_default="", nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("daily_limit", sa.Integer(), nullable=True),
        sa.Column("pause_after_failures", sa.Integer(), nullable=True),
        sa.Column("paused_ms", sa.BigInteger(), nullable=True),
        sa.Column("pause_reason", sa.String(length=400), server_default="", nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_send_policies")),
    )


def downgrade() -> None:

    op.drop_table("send_policies")
