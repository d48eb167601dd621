"""whatsapp web: WhatsApp's message ids and the session leases of the WhatsApp Web channel

Revision ID: 0021_whatsapp_web
Revises: 0020_waiting_messages_index
Create Date: 2026-12-03 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_whatsapp_web"
down_revision = "0020_waiting_messages_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "waweb_message_ids",
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("wa_id", sa.String(length=128), nullable=False),
        sa.Column("id_message", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "wa_id", name=op.f("pk_waweb_message_ids")),
    )
    with op.batch_alter_table("waweb_message_ids", schema=None) as batch_op:
        batch_op.create_index("ix_waweb_message_ids_idmsg", ["instance_id", "id_message"], unique=False)

    op.create_table(
        "waweb_leases",
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_waweb_leases")),
    )


def downgrade() -> None:
    op.drop_table("waweb_leases")
    with op.batch_alter_table("waweb_message_ids", schema=None) as batch_op:
        batch_op.drop_index("ix_waweb_message_ids_idmsg")
    op.drop_table("waweb_message_ids")
