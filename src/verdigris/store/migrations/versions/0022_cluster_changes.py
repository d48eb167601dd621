"""For several server processes on one store: the change log they apply before their next
request (store/changes.py) and the shared rate-limit buckets (greenapi/ratelimit.py).

Revision ID: 0022_cluster_changes
Revises: 0021_whatsapp_web
Create Date: 2026-12-03 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_cluster_changes"
down_revision = "0021_whatsapp_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    clock = op.create_table(
        "cluster_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_clock")),
    )
    op.bulk_insert(clock, [{"id": 1, "seq": 0}])
    op.create_table(
        "cluster_changes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_changes")),
    )
    op.create_index("ix_cluster_changes_seq", "cluster_changes", ["seq"])
    op.create_table(
        "rate_buckets",
        sa.Column("subject", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("method", sa.String(length=100), nullable=False),
        sa.Column("tat_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "method", name=op.f("pk_rate_buckets")),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_index("ix_cluster_changes_seq", table_name="cluster_changes")
    op.drop_table("cluster_changes")
    op.drop_table("cluster_clock")
