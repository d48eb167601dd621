"""One row per instance that has a sending policy (instances without one send as paced by their
``delaySendMessagesMilliseconds`` only)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from verdigris.store.db import metadata

send_policies = Table(
    "send_policies",
    metadata,
    Column("instance_id", BigInteger, primary_key=True),
    # Quiet hours as local "HH:MM" in ``timezone``; both empty = none. from > to spans midnight.
    Column("quiet_from", String(5), nullable=False, server_default=""),
    Column("quiet_to", String(5), nullable=False, server_default=""),
    Column("timezone", String(64), nullable=False),
    # At most this many messages sent per local day (null = no cap).
    Column("daily_limit", Integer, nullable=True),
    # Pause the queue after this many consecutive failed/noAccount statuses (null = never).
    Column("pause_after_failures", Integer, nullable=True),
    # Set while the queue is paused (by the user, or automatically), with the reason.
    Column("paused_ms", BigInteger, nullable=True),
    Column("pause_reason", String(400), nullable=False, server_default=""),
    Column("updated_ms", BigInteger, nullable=False),
)
