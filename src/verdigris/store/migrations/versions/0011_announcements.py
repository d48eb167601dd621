"""announcements

Revision ID: 0011_announcements
Revises: 0010_customers
Create Date: 2026-11-25 04:49:17.299784
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_announcements"
down_revision = "0010_customers"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "announcement_deliveries",
        sa.Column("announcement_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("announcement_id", "account_id", name=op.f("pk_announcement_deliveries")),
    )
    with op.batch_alter_table("announcement_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_announcement_deliveries_pending", ["status", "announcement_id"], unique=False
        )

    op.create_table(
        "announcements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_announcements")),
    )


def downgrade() -> None:

    op.drop_table("announcements")
    with op.batch_alter_table("announcement_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_announcement_deliveries_pending")

    op.drop_table("announcement_deliveries")
