"""Tables of content screening: the operator's rules and the cases they produced."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from verdigris.store.db import BigId, metadata

screening_rules = Table(
    "screening_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # "keyword" (case-insensitive words or phrases), "pattern" (a regular expression), "domain"
    # (links to this host or its subdomains, in text and file URLs).
    Column("kind", String(10), nullable=False),
    Column("value", String(500), nullable=False),
    # "block" (refused at once, nothing is queued) or "review" (accepted and held for the operator).
    Column("action", String(8), nullable=False),
    Column("note", String(400), nullable=False, server_default=""),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_by", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

# One row per message a rule blocked or held, with the operator's decision on held ones.
screening_cases = Table(
    "screening_cases",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    Column("account_id", Integer, nullable=True),
    Column("chat_id", String(100), nullable=False),
    # Empty for a blocked message (it never got one).
    Column("id_message", String(64), nullable=False, server_default=""),
    Column("rule_id", Integer, nullable=False),
    # "blocked", "held", or "removed" (the operator deleted a stored message; rule_id 0)
    Column("action", String(8), nullable=False),
    # Why the operator removed a message (empty for rule cases: the rule's note says it).
    Column("reason", String(400), nullable=False, server_default=""),
    Column("excerpt", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # "" while waiting; "approved" or "rejected"
    Column("decision", String(10), nullable=False, server_default=""),
    Column("decided_by", Integer, nullable=True),
    Column("decided_ms", BigInteger, nullable=True),
    Index("ix_screening_cases_waiting", "action", "decision", "id"),
    Index("ix_screening_cases_instance", "instance_id", "id"),
)
