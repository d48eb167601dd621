"""screening case reason

Revision ID: 0014_case_reason
Revises: 0013_send_policies
Create Date: 2026-11-25 06:14:57.179688
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_case_reason"
down_revision = "0013_send_policies"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("screening_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=400), server_default="", nullable=False))


def downgrade() -> None:

    with op.batch_alter_table("screening_cases", schema=None) as batch_op:
        batch_op.drop_column("reason")
