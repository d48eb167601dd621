"""Tables of the instances domain."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from verdigris.store.db import metadata

instances = Table(
    "instances",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("token", String(100), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("channel", String(32), nullable=False, server_default="sandbox"),
    Column("state", String(32), nullable=False),
    # The linked account's own id (``79990000001@c.us``); empty while not linked.
    Column("wid", String(64), nullable=False, server_default=""),
    # Instance settings as a JSON object (names as in the GREEN-API settings catalogue).
    Column("settings", Text, nullable=False),
    # A pending phone-number pairing (getAuthorizationCode): the code, the number, the expiry.
    Column("pairing_code", String(16), nullable=True),
    Column("pairing_phone", String(20), nullable=True),
    Column("pairing_expires_ms", BigInteger, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("deleted_ms", BigInteger, nullable=True),
)
Index("ix_instances_pairing_code", instances.c.pairing_code)
Index("ix_instances_wid", instances.c.wid)

instance_state_history = Table(
    "instance_state_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, ForeignKey("instances.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(32), nullable=False),
    Column("wid", String(64), nullable=False, server_default=""),
    Column("at_ms", BigInteger, nullable=False),
)
Index("ix_instance_state_history_instance", instance_state_history.c.instance_id, instance_state_history.c.id)

# Small key/value facts of the workspace (generated secrets, counters).
workspace_meta = Table(
    "workspace_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
