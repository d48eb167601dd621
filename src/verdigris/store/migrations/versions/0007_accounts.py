"""accounts: registration facts, team members, sessions, auth-event journal, consents, e-mail links

Revision ID: 0007_accounts
Revises: 0001_core
Create Date: 2026-11-25 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_accounts"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone", sa.String(length=32), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("organisation", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="active", nullable=False)
        )
        batch_op.add_column(sa.Column("email_verified_ms", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("tenant_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("team_role", sa.String(length=16), server_default="owner", nullable=False)
        )
        batch_op.add_column(sa.Column("closed_ms", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("delete_after_ms", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_accounts_tenant_id", ["tenant_id"], unique=False)
    # Accounts made before registration existed were created by the operator: their address counts as known.
    op.execute("UPDATE accounts SET email_verified_ms = created_ms WHERE email_verified_ms IS NULL")

    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=64), server_default="", nullable=False),
        sa.Column("user_agent", sa.String(length=300), server_default="", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.Column("revoked_why", sa.String(length=40), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_sessions_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_account_id", "sessions", ["account_id"], unique=False)

    op.create_table(
        "auth_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=254), server_default="", nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("ip", sa.String(length=64), server_default="", nullable=False),
        sa.Column("user_agent", sa.String(length=300), server_default="", nullable=False),
        sa.Column("detail", sa.String(length=400), server_default="", nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_events")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_auth_events_account", "auth_events", ["account_id", "id"], unique=False)
    op.create_index("ix_auth_events_tenant", "auth_events", ["tenant_id", "id"], unique=False)
    op.create_index(
        "ix_auth_events_username_kind", "auth_events", ["username", "kind", "at_ms"], unique=False
    )
    op.create_index("ix_auth_events_ip_kind", "auth_events", ["ip", "kind", "at_ms"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("ip", sa.String(length=64), server_default="", nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_consents_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index("ix_consents_account_id", "consents", ["account_id"], unique=False)

    op.create_table(
        "account_links",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("used_ms", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_links_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_links")),
    )
    op.create_index("ix_account_links_account_id", "account_links", ["account_id"], unique=False)


def downgrade() -> None:
    op.drop_table("account_links")
    op.drop_table("consents")
    op.drop_table("auth_events")
    op.drop_table("sessions")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_tenant_id")
        for column in (
            "delete_after_ms",
            "closed_ms",
            "team_role",
            "tenant_id",
            "email_verified_ms",
            "status",
            "organisation",
            "phone",
        ):
            batch_op.drop_column(column)
