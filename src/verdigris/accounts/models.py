"""Tables of the accounts domain."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, Table

from verdigris.store.db import metadata

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("email", String(254), nullable=False, server_default=""),
    Column("name", String(200), nullable=False, server_default=""),
    # "operator" runs the platform (licensor); "licensee" uses it.
    Column("role", String(16), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

partner_tokens = Table(
    "partner_tokens",
    metadata,
    Column("token", String(100), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
)
