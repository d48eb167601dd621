"""webhooks: delivery options, retry state, attempt log, delivered archive, replays, dead letters

Revision ID: 0003_webhooks
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_webhooks"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_options",
        sa.Column("instance_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("signing", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("secret", sa.String(length=100), server_default="", nullable=False),
        sa.Column("event_id_header", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_webhook_options")),
    )
    op.create_table(
        "webhook_retries",
        sa.Column("instance_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("receipt_id", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failure_ms", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(length=400), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_webhook_retries")),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("receipt_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=400), server_default="", nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_attempts_instance", "webhook_attempts", ["instance_id", "id"])
    op.create_index("ix_webhook_attempts_at", "webhook_attempts", ["at_ms"])
    op.create_table(
        "webhook_delivered",
        sa.Column("receipt_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_webhook_delivered")),
    )
    op.create_index("ix_webhook_delivered_instance", "webhook_delivered", ["instance_id", "receipt_id"])
    op.create_index("ix_webhook_delivered_at", "webhook_delivered", ["delivered_ms"])
    op.create_table(
        "webhook_replays",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("receipt_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("queued_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_replays")),
    )
    op.create_index(
        "ix_webhook_replays_instance", "webhook_replays", ["instance_id", "receipt_id"], unique=True
    )
    op.create_table(
        "notification_dead_letters",
        sa.Column("receipt_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("dead_ms", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=400), server_default="", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_notification_dead_letters")),
    )
    op.create_index(
        "ix_notification_dead_letters_instance", "notification_dead_letters", ["instance_id", "receipt_id"]
    )
    op.create_index("ix_notification_dead_letters_dead", "notification_dead_letters", ["dead_ms"])


def downgrade() -> None:
    op.drop_index("ix_notification_dead_letters_dead", table_name="notification_dead_letters")
    op.drop_index("ix_notification_dead_letters_instance", table_name="notification_dead_letters")
    op.drop_table("notification_dead_letters")
    op.drop_index("ix_webhook_replays_instance", table_name="webhook_replays")
    op.drop_table("webhook_replays")
    op.drop_index("ix_webhook_delivered_at", table_name="webhook_delivered")
    op.drop_index("ix_webhook_delivered_instance", table_name="webhook_delivered")
    op.drop_table("webhook_delivered")
    op.drop_index("ix_webhook_attempts_at", table_name="webhook_attempts")
    op.drop_index("ix_webhook_attempts_instance", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_retries")
    op.drop_table("webhook_options")
