"""Tables of the sandbox network: simulated phones and what they see."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from verdigris.store.db import metadata

sandbox_phones = Table(
    "sandbox_phones",
    metadata,
    Column("number", String(20), primary_key=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("created_ms", BigInteger, nullable=False),
)

# Every message a phone sent or received, as its owner would see it in the phone's app.
sandbox_phone_messages = Table(
    "sandbox_phone_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("phone", String(20), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("id_message", String(64), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("sender", String(64), nullable=False),
    Column("sender_name", String(200), nullable=False, server_default=""),
    Column("type_message", String(40), nullable=False),
    Column("content", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("read", Boolean, nullable=False, server_default="0"),
    Column("created_ms", BigInteger, nullable=False),
)
Index("ix_sandbox_phone_messages_phone", sandbox_phone_messages.c.phone, sandbox_phone_messages.c.id)
Index("ix_sandbox_phone_messages_idmsg", sandbox_phone_messages.c.id_message)
