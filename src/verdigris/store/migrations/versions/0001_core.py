"""core: accounts, instances, messaging, sandbox

Revision ID: 0001_core
Revises:
Create Date: 2026-11-25 01:33:37.944423
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), server_default="", nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_accounts_username")),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("id_message", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("sent_by_api", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("kind", sa.String(length=40), server_default="", nullable=False),
        sa.Column("type_message", sa.String(length=40), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("sender", sa.String(length=64), server_default="", nullable=False),
        sa.Column("sender_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=400), server_default="", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_instance_chat", ["instance_id", "chat_id", "id"], unique=False)
        batch_op.create_index(
            "ix_messages_instance_created", ["instance_id", "direction", "created_ms"], unique=False
        )
        batch_op.create_index("ix_messages_instance_idmsg", ["instance_id", "id_message"], unique=False)
        batch_op.create_index("ix_messages_instance_status", ["instance_id", "status", "id"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("receipt_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_notifications")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_instance", ["instance_id", "receipt_id"], unique=False)

    op.create_table(
        "sandbox_phone_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("id_message", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("sender_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("type_message", sa.String(length=40), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("read", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_phone_messages")),
    )
    with op.batch_alter_table("sandbox_phone_messages", schema=None) as batch_op:
        batch_op.create_index("ix_sandbox_phone_messages_idmsg", ["id_message"], unique=False)
        batch_op.create_index("ix_sandbox_phone_messages_phone", ["phone", "id"], unique=False)

    op.create_table(
        "sandbox_phones",
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_sandbox_phones")),
    )
    op.create_table(
        "workspace_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_workspace_meta")),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("token", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("channel", sa.String(length=32), server_default="sandbox", nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("wid", sa.String(length=64), server_default="", nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("pairing_code", sa.String(length=16), nullable=True),
        sa.Column("pairing_phone", sa.String(length=20), nullable=True),
        sa.Column("pairing_expires_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("deleted_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_instances_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_account_id"), ["account_id"], unique=False)
        batch_op.create_index("ix_instances_pairing_code", ["pairing_code"], unique=False)
        batch_op.create_index("ix_instances_wid", ["wid"], unique=False)

    op.create_table(
        "partner_tokens",
        sa.Column("token", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_partner_tokens_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_partner_tokens")),
    )
    with op.batch_alter_table("partner_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_partner_tokens_account_id"), ["account_id"], unique=False)

    op.create_table(
        "instance_state_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("wid", sa.String(length=64), server_default="", nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_instance_state_history_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_state_history")),
    )
    with op.batch_alter_table("instance_state_history", schema=None) as batch_op:
        batch_op.create_index("ix_instance_state_history_instance", ["instance_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("instance_state_history", schema=None) as batch_op:
        batch_op.drop_index("ix_instance_state_history_instance")

    op.drop_table("instance_state_history")
    with op.batch_alter_table("partner_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_partner_tokens_account_id"))

    op.drop_table("partner_tokens")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_wid")
        batch_op.drop_index("ix_instances_pairing_code")
        batch_op.drop_index(batch_op.f("ix_instances_account_id"))

    op.drop_table("instances")
    op.drop_table("workspace_meta")
    op.drop_table("sandbox_phones")
    with op.batch_alter_table("sandbox_phone_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_phone_messages_phone")
        batch_op.drop_index("ix_sandbox_phone_messages_idmsg")

    op.drop_table("sandbox_phone_messages")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_instance")

    op.drop_table("notifications")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_instance_status")
        batch_op.drop_index("ix_messages_instance_idmsg")
        batch_op.drop_index("ix_messages_instance_created")
        batch_op.drop_index("ix_messages_instance_chat")

    op.drop_table("messages")
    op.drop_table("accounts")
