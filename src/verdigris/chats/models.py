"""Tables of the chats domain.

``phonebook`` is the address book of the account an instance is linked to (addContact and
friends); its names are what ``senderContactName`` / ``contactName`` report. ``chat_settings`` keeps
per-chat choices of the instance: archived, and the disappearing-messages timer.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, String, Table, UniqueConstraint

from verdigris.store.db import metadata

phonebook = Table(
    "phonebook",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("first_name", String(200), nullable=False),
    Column("last_name", String(200), nullable=False, server_default=""),
    Column("in_address_book", Boolean, nullable=False, server_default="1"),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    UniqueConstraint("instance_id", "chat_id"),
)

chat_settings = Table(
    "chat_settings",
    metadata,
    Column("instance_id", BigInteger, primary_key=True),
    Column("chat_id", String(64), primary_key=True),
    Column("archived", Boolean, nullable=False, server_default="0"),
    # Seconds; 0 = messages do not disappear.
    Column("ephemeral_expiration", Integer, nullable=False, server_default="0"),
    Column("ephemeral_set_ms", BigInteger, nullable=False, server_default="0"),
    Column("updated_ms", BigInteger, nullable=False),
)
