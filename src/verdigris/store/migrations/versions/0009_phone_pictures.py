"""sandbox phones: profile pictures (setProfilePicture, getAvatar)

Revision ID: 0009_phone_pictures
Revises: 0005_groups
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_phone_pictures"
down_revision = "0005_groups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sandbox_phones") as batch_op:
        batch_op.add_column(sa.Column("picture", sa.String(length=100), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("sandbox_phones") as batch_op:
        batch_op.drop_column("picture")
