"""screening

Revision ID: 0012_screening
Revises: 0011_announcements
Create Date: 2026-11-25 04:53:31.061555
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_screening"
down_revision = "0011_announcements"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "screening_cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("chat_id", sa.String(length=100), nullable=False),
        sa.Column("id_message", sa.String(length=64), server_default="", nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("decision", sa.String(length=10), server_default="", nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_cases")),
    )
    with op.batch_alter_table("screening_cases", schema=None) as batch_op:
        batch_op.create_index("ix_screening_cases_instance", ["instance_id", "id"], unique=False)
        batch_op.create_index("ix_screening_cases_waiting", ["action", "decision", "id"], unique=False)

    op.create_table(
        "screening_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("note", sa.String(length=400), server_default="", nullable=False),
        sa.Column("active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_rules")),
    )


def downgrade() -> None:

    op.drop_table("screening_rules")
    with op.batch_alter_table("screening_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_screening_cases_waiting")
        batch_op.drop_index("ix_screening_cases_instance")

    op.drop_table("screening_cases")
