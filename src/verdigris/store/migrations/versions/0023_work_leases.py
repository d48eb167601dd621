"""Work owned by leases (store/leases.py): which worker process sends an instance's queue and
pushes its webhooks, by partition of the instance id.

Revision ID: 0023_work_leases
Revises: 0022_cluster_changes
Create Date: 2026-12-03 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_work_leases"
down_revision = "0022_cluster_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_leases",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("part", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=80), nullable=True),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "part", name=op.f("pk_work_leases")),
    )
    op.create_table(
        "work_members",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("holder", sa.String(length=80), nullable=False),
        sa.Column("seen_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "holder", name=op.f("pk_work_members")),
    )


def downgrade() -> None:
    op.drop_table("work_members")
    op.drop_table("work_leases")
