"""customers: contacts, tags, campaigns, recipients

Revision ID: 0010_customers
Revises: 0008_licensing
Create Date: 2026-11-25 04:43:25.218375
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_customers"
down_revision = "0008_licensing"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "campaign_recipients",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("id_message", sa.String(length=64), nullable=True),
        sa.Column("done_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", "contact_id", name=op.f("pk_campaign_recipients")),
    )
    with op.batch_alter_table("campaign_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_campaign_recipients_order", ["campaign_id", "status", "position"], unique=False
        )

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tag", sa.String(length=60), server_default="", nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("pause_reason", sa.String(length=400), server_default="", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("next_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index("ix_campaigns_account", ["account_id", "id"], unique=False)
        batch_op.create_index("ix_campaigns_status", ["status"], unique=False)

    op.create_table(
        "contact_tags",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=60), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "tag", name=op.f("pk_contact_tags")),
    )
    with op.batch_alter_table("contact_tags", schema=None) as batch_op:
        batch_op.create_index("ix_contact_tags_tag", ["tag", "contact_id"], unique=False)

    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("consent_ms", sa.BigInteger(), nullable=True),
        sa.Column("consent_source", sa.String(length=200), server_default="", nullable=False),
        sa.Column("optout_ms", sa.BigInteger(), nullable=True),
        sa.Column("optout_source", sa.String(length=200), server_default="", nullable=False),
        sa.Column("campaigns_reached", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("account_id", "phone", name=op.f("uq_contacts_account_id_phone")),
    )


def downgrade() -> None:

    op.drop_table("contacts")
    with op.batch_alter_table("contact_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_tags_tag")

    op.drop_table("contact_tags")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index("ix_campaigns_status")
        batch_op.drop_index("ix_campaigns_account")

    op.drop_table("campaigns")
    with op.batch_alter_table("campaign_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_recipients_order")

    op.drop_table("campaign_recipients")
