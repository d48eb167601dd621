"""Tables of the delivery domain.

The notification queue itself (``notifications``) belongs to messaging. Delivery keeps what it
needs to push that queue to webhooks durably: per-instance options (signing, event ids), the
retry state of the notification being attempted, a log of attempts, the delivered notifications
(for replay), the replay queue and the dead letters.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from verdigris.store.db import BigId, metadata

# Opt-in features of one instance's webhooks; no row means everything off (plain GREEN-API).
webhook_options = Table(
    "webhook_options",
    metadata,
    Column("instance_id", BigInteger, primary_key=True, autoincrement=False),
    # Sign every POST (X-Verdigris-Signature) with ``secret``.
    Column("signing", Boolean, nullable=False, server_default="0"),
    Column("secret", String(100), nullable=False, server_default=""),
    # Send X-Verdigris-Event-Id / X-Verdigris-Attempt.
    Column("event_id_header", Boolean, nullable=False, server_default="0"),
    Column("updated_ms", BigInteger, nullable=False),
)

# The notification an instance's webhook is failing on: one row per instance at most. It is the
# durable half of the retry loop, so a restart (or kill -9) resumes with the same attempt count
# and waits until ``next_attempt_ms``.
webhook_retries = Table(
    "webhook_retries",
    metadata,
    Column("instance_id", BigInteger, primary_key=True, autoincrement=False),
    # "queue" (the notifications table) or "replay" (webhook_replays).
    Column("source", String(8), nullable=False),
    Column("receipt_id", BigId, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_failure_ms", BigInteger, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("last_error", String(400), nullable=False, server_default=""),
)

# The delivery log: one row per attempt.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    Column("receipt_id", BigId, nullable=False),
    Column("type", String(40), nullable=False),
    Column("source", String(8), nullable=False),
    # 1 for the first attempt of this notification, 2 for the first retry, ...
    Column("attempt", Integer, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    # The receiver's HTTP status; NULL when no answer came (timeout, refused, ...).
    Column("status_code", Integer, nullable=True),
    Column("error", String(400), nullable=False, server_default=""),
    # delivered | failed | dead
    Column("outcome", String(10), nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)
Index("ix_webhook_attempts_instance", webhook_attempts.c.instance_id, webhook_attempts.c.id)
Index("ix_webhook_attempts_at", webhook_attempts.c.at_ms)

# Notifications a webhook acknowledged, kept for the retention period so they can be replayed.
webhook_delivered = Table(
    "webhook_delivered",
    metadata,
    Column("receipt_id", BigId, primary_key=True, autoincrement=False),
    Column("instance_id", BigInteger, nullable=False),
    Column("type", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("delivered_ms", BigInteger, nullable=False),
)
Index("ix_webhook_delivered_instance", webhook_delivered.c.instance_id, webhook_delivered.c.receipt_id)
Index("ix_webhook_delivered_at", webhook_delivered.c.delivered_ms)

# Notifications queued again by a replay or a dead-letter resend. They keep their receiptId (so
# the event id is the same) and go out before the instance's pending queue, in receiptId order.
webhook_replays = Table(
    "webhook_replays",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    Column("receipt_id", BigId, nullable=False),
    Column("type", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # Retention of a replayed notification counts from here.
    Column("queued_ms", BigInteger, nullable=False),
)
Index("ix_webhook_replays_instance", webhook_replays.c.instance_id, webhook_replays.c.receipt_id, unique=True)

# Notifications whose retention ran out before anyone took them: kept visible and re-sendable.
dead_letters = Table(
    "notification_dead_letters",
    metadata,
    Column("receipt_id", BigId, primary_key=True, autoincrement=False),
    Column("instance_id", BigInteger, nullable=False),
    Column("type", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("dead_ms", BigInteger, nullable=False),
    Column("reason", String(400), nullable=False, server_default=""),
    # Webhook attempts made before it was given up (0: nobody tried, e.g. a polling instance).
    Column("attempts", Integer, nullable=False, server_default="0"),
)
Index("ix_notification_dead_letters_instance", dead_letters.c.instance_id, dead_letters.c.receipt_id)
Index("ix_notification_dead_letters_dead", dead_letters.c.dead_ms)
