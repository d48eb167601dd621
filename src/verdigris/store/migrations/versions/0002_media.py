"""media: stored files behind upload, file messages and their links

Revision ID: 0002_media
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_media"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_files",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("mime_type", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("jpeg_thumbnail", sa.Text(), server_default="", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_files")),
    )
    op.create_index("ix_media_files_expires", "media_files", ["expires_ms"])
    op.create_index("ix_media_files_owner", "media_files", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_media_files_owner", table_name="media_files")
    op.drop_index("ix_media_files_expires", table_name="media_files")
    op.drop_table("media_files")
