"""groups, statuses and calls of the sandbox network

Revision ID: 0005_groups
Revises: 0001_core
Create Date: 2026-11-25 01:40:40.955723
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_groups"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_journal",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.BigInteger(), nullable=False),
        sa.Column("id_message", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("is_video", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("duration_s", sa.Integer(), server_default="0", nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("ended_ms", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_journal")),
    )
    with op.batch_alter_table("call_journal", schema=None) as batch_op:
        batch_op.create_index("ix_call_journal_idmsg", ["id_message"], unique=False)
        batch_op.create_index(
            "ix_call_journal_instance", ["instance_id", "direction", "started_ms"], unique=False
        )

    op.create_table(
        "sandbox_group_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=64), server_default="", nullable=False),
        sa.Column("detail", sa.String(length=200), server_default="", nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_group_events")),
    )
    with op.batch_alter_table("sandbox_group_events", schema=None) as batch_op:
        batch_op.create_index("ix_sandbox_group_events_group", ["group_id", "id"], unique=False)

    op.create_table(
        "sandbox_group_members",
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("wid", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("joined_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "wid", name=op.f("pk_sandbox_group_members")),
    )
    with op.batch_alter_table("sandbox_group_members", schema=None) as batch_op:
        batch_op.create_index("ix_sandbox_group_members_wid", ["wid"], unique=False)

    op.create_table(
        "sandbox_groups",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("subject_ms", sa.BigInteger(), nullable=False),
        sa.Column("subject_owner", sa.String(length=64), nullable=False),
        sa.Column("invite_code", sa.String(length=32), nullable=False),
        sa.Column("members_edit_info", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("members_send", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("picture", sa.String(length=120), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_groups")),
    )
    op.create_table(
        "sandbox_status_views",
        sa.Column("id_message", sa.String(length=64), nullable=False),
        sa.Column("viewer", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id_message", "viewer", name=op.f("pk_sandbox_status_views")),
    )
    with op.batch_alter_table("sandbox_status_views", schema=None) as batch_op:
        batch_op.create_index("ix_sandbox_status_views_viewer", ["viewer"], unique=False)

    op.create_table(
        "sandbox_statuses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id_message", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("author_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("type_message", sa.String(length=40), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("participants", sa.Text(), server_default="[]", nullable=False),
        sa.Column("sent_by_api", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("deleted_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_statuses")),
        sa.UniqueConstraint("id_message", name=op.f("uq_sandbox_statuses_id_message")),
    )
    with op.batch_alter_table("sandbox_statuses", schema=None) as batch_op:
        batch_op.create_index("ix_sandbox_statuses_author", ["author", "created_ms"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sandbox_statuses", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_statuses_author")

    op.drop_table("sandbox_statuses")
    with op.batch_alter_table("sandbox_status_views", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_status_views_viewer")

    op.drop_table("sandbox_status_views")
    op.drop_table("sandbox_groups")
    with op.batch_alter_table("sandbox_group_members", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_group_members_wid")

    op.drop_table("sandbox_group_members")
    with op.batch_alter_table("sandbox_group_events", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_group_events_group")

    op.drop_table("sandbox_group_events")
    with op.batch_alter_table("call_journal", schema=None) as batch_op:
        batch_op.drop_index("ix_call_journal_instance")
        batch_op.drop_index("ix_call_journal_idmsg")

    op.drop_table("call_journal")
