"""moderation measures and audit log, agreement versions (T-16, T-17)

Revision ID: 0010_moderation
Revises: 0007_accounts
Create Date: 2026-11-25 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_moderation"
down_revision = "0007_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_measures",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=400), nullable=False),
        sa.Column("until_ms", sa.BigInteger(), nullable=True),
        sa.Column("set_ms", sa.BigInteger(), nullable=False),
        sa.Column("set_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_measures_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_measures")),
    )
    op.create_table(
        "moderation_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("operator", sa.String(length=64), server_default="", nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(length=300), server_default="", nullable=False),
        sa.Column("reason", sa.String(length=400), server_default="", nullable=False),
        sa.Column("until_ms", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.String(length=400), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_log")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_moderation_log_account", "moderation_log", ["account_id", "id"], unique=False)
    op.create_table(
        "agreement_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("requires_acceptance", sa.Boolean(), nullable=False),
        sa.Column("published_ms", sa.BigInteger(), nullable=False),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreement_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_agreement_versions_version")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("agreement_versions")
    op.drop_index("ix_moderation_log_account", table_name="moderation_log")
    op.drop_table("moderation_log")
    op.drop_table("account_measures")
