"""64-bit ids for the tables that grow with traffic.

Revision ID: 0017_bigint_ids
Revises: 0016_one_head
Create Date: 2026-12-03 10:20:00

``messages.id`` and ``notifications.receipt_id`` (the wire receiptId) were 32-bit SERIAL columns on
PostgreSQL: at 1,000 messages a second they run past 2,147,483,647 within weeks. They become BIGINT,
with every column that stores a receiptId (the webhook tables) and the other ids minted per message,
notification or webhook call (webhook attempts and replays, the sandbox phones' copies, the Cloud
API inbox and early statuses, screening cases). Their sequences become ``AS bigint`` too: a SERIAL's
sequence is typed ``integer`` and would stop at 2^31 - 1 whatever the column's type.

PostgreSQL rewrites each table once (one ALTER TABLE per table), under an exclusive lock: on a large
``messages`` table, plan the upgrade for a quiet moment.

SQLite: nothing to do. An ``INTEGER PRIMARY KEY`` is the table's rowid, a 64-bit integer already,
and every INTEGER column stores up to 8 bytes; the models keep the type name INTEGER there (a BIGINT
primary key would stop being the rowid), so no batch copy of the tables is needed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_bigint_ids"
down_revision = "0016_one_head"
branch_labels = None
depends_on = None

COLUMNS = {
    "messages": ("id",),
    "notifications": ("receipt_id",),
    "webhook_retries": ("receipt_id",),
    "webhook_attempts": ("id", "receipt_id"),
    "webhook_delivered": ("receipt_id",),
    "webhook_replays": ("id", "receipt_id"),
    "notification_dead_letters": ("receipt_id",),
    "sandbox_phone_messages": ("id",),
    "cloud_inbox": ("id",),
    "cloud_early_statuses": ("id",),
    "screening_cases": ("id",),
}


def _retype(sql_type: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} TYPE {sql_type}" for c in columns))
        for column in columns:
            sequence = bind.scalar(
                sa.text("SELECT pg_get_serial_sequence(:table, :column)"), {"table": table, "column": column}
            )
            if sequence:
                op.execute(f"ALTER SEQUENCE {sequence} AS {sql_type}")


def upgrade() -> None:
    _retype("BIGINT")


def downgrade() -> None:
    # Fails (and changes nothing) once an id above 2^31 - 1 exists: such rows cannot go back.
    _retype("INTEGER")
