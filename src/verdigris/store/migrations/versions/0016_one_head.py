"""Join the six migration branches into one head.

Revision ID: 0016_one_head
Revises: 0002_media, 0003_webhooks, 0004_rich, 0009_phone_pictures, 0010_moderation, 0015_whatsapp_cloud
Create Date: 2026-12-03 10:10:00

The migrations grew as parallel branches off 0001_core (one per feature), so a database carries one
``alembic_version`` row per branch. Rewriting their ``down_revision`` into one chain would make those
rows point at revisions that are now ancestors of each other, which Alembic refuses; a merge revision
leaves every existing database valid: upgrading replaces its six rows with this one. It changes no
table. New migrations revise this one, so there is a single head again.
"""

from __future__ import annotations

revision = "0016_one_head"
down_revision = (
    "0002_media",
    "0003_webhooks",
    "0004_rich",
    "0009_phone_pictures",
    "0010_moderation",
    "0015_whatsapp_cloud",
)
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
