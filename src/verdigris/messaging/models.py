"""Tables of the messaging domain.

``messages`` is both the journal and the outgoing queue: an accepted outgoing message is one row
with ``status='queued'``; the send worker moves it on. ``notifications`` is the per-instance
notification queue; its autoincrement key is the wire ``receiptId``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table, Text, literal_column

from verdigris.messaging.vocabulary import WAITING
from verdigris.store.db import BigId, metadata

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("id_message", String(64), nullable=False),
    # "in" or "out"
    Column("direction", String(3), nullable=False),
    Column("sent_by_api", Boolean, nullable=False, server_default="0"),
    # The send method that queued it (sendMessage, sendFileByUrl, ...); empty for incoming.
    Column("kind", String(40), nullable=False, server_default=""),
    Column("type_message", String(40), nullable=False),
    # The message content, a JSON object (see messaging.content).
    Column("content", Text, nullable=False),
    # Outgoing: the accepted request's fields, echoed by showMessagesQueue.
    Column("request", Text, nullable=True),
    Column("sender", String(64), nullable=False, server_default=""),
    Column("sender_name", String(200), nullable=False, server_default=""),
    # Outgoing: queued, sent, delivered, read, failed, noAccount, expired.  Incoming: delivered, read.
    Column("status", String(16), nullable=False),
    Column("description", String(400), nullable=False, server_default=""),
    Column("created_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)
Index("ix_messages_instance_chat", messages.c.instance_id, messages.c.chat_id, messages.c.id)
Index("ix_messages_instance_idmsg", messages.c.instance_id, messages.c.id_message)
Index("ix_messages_instance_status", messages.c.instance_id, messages.c.status, messages.c.id)
Index("ix_messages_instance_created", messages.c.instance_id, messages.c.direction, messages.c.created_ms)
# Rows waiting to be sent (messaging.vocabulary.WAITING), with the statuses written as literals: a
# query finds them through the partial index below only when it spells the condition the same way
# (SQLite cannot match bound parameters against an index's WHERE). Health counts queues with it.
WAITING_ROW = messages.c.status.in_([literal_column(f"'{status}'") for status in WAITING])
Index("ix_messages_waiting", messages.c.instance_id, sqlite_where=WAITING_ROW, postgresql_where=WAITING_ROW)

notifications = Table(
    "notifications",
    metadata,
    Column("receipt_id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    Column("type", String(40), nullable=False),
    # The rendered notification body (JSON text), exactly as pollers and webhooks receive it.
    Column("body", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # Never reuse a receiptId, even after the newest row was deleted.
    sqlite_autoincrement=True,
)
Index("ix_notifications_instance", notifications.c.instance_id, notifications.c.receipt_id)

# A send's Idempotency-Key (messaging.idempotency): written in the transaction that queues the
# message, so a retry after a lost answer finds it; ``answer`` is the JSON answered the first time.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("instance_id", BigInteger, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("ids", Text, nullable=False),
    Column("answer", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_idempotency_keys_created_ms", "created_ms"),
)
