"""Tables of the accounts domain: accounts and team members, sessions, the auth-event journal,
consents and one-time e-mail links."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Table, Text

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
    Column("phone", String(32), nullable=False, server_default=""),
    Column("organisation", String(200), nullable=False, server_default=""),
    # active | invited (a team member who has not accepted yet) | closed (blocked, deleted later)
    Column("status", String(16), nullable=False, server_default="active"),
    Column("email_verified_ms", BigInteger, nullable=True),
    # Team members point at the account that owns the instances (their tenant); owners have NULL.
    Column("tenant_id", Integer, nullable=True, index=True),
    # owner | admin | developer | viewer
    Column("team_role", String(16), nullable=False, server_default="owner"),
    Column("closed_ms", BigInteger, nullable=True),
    Column("delete_after_ms", BigInteger, nullable=True),
)

partner_tokens = Table(
    "partner_tokens",
    metadata,
    Column("token", String(100), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
)

# Console sessions. The cookie holds a random secret; only its SHA-256 is stored.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("ip", String(64), nullable=False, server_default=""),
    Column("user_agent", String(300), nullable=False, server_default=""),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
    Column("revoked_why", String(40), nullable=False, server_default=""),
)

# Every authorization, exit and security-relevant action (T-13): kept for the user and the operator.
auth_events = Table(
    "auth_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, nullable=True),
    # The tenant the event belongs to (so owners see their team's events).
    Column("tenant_id", Integer, nullable=True),
    Column("username", String(254), nullable=False, server_default=""),
    Column("kind", String(40), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("ip", String(64), nullable=False, server_default=""),
    Column("user_agent", String(300), nullable=False, server_default=""),
    Column("detail", String(400), nullable=False, server_default=""),
    Column("at_ms", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)
Index("ix_auth_events_account", auth_events.c.account_id, auth_events.c.id)
Index("ix_auth_events_tenant", auth_events.c.tenant_id, auth_events.c.id)
Index("ix_auth_events_username_kind", auth_events.c.username, auth_events.c.kind, auth_events.c.at_ms)
Index("ix_auth_events_ip_kind", auth_events.c.ip, auth_events.c.kind, auth_events.c.at_ms)

# Agreement acceptance and consents (T-09, T-19): what, which text version, when, granted or withdrawn.
consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("version", String(32), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("ip", String(64), nullable=False, server_default=""),
    Column("at_ms", BigInteger, nullable=False),
)

# One-time links sent by e-mail: verify the address, reset the password, accept a team invitation.
account_links = Table(
    "account_links",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the secret in the link
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("purpose", String(16), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger, nullable=True),
    Column("data", Text, nullable=False, server_default=""),
)

# Mail from the operator to the users (T-20): one row per announcement, one per recipient.
announcements = Table(
    "announcements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(12), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_by", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("recipients", Integer, nullable=False),
    Column("finished_ms", BigInteger, nullable=True),
)

announcement_deliveries = Table(
    "announcement_deliveries",
    metadata,
    Column("announcement_id", Integer, primary_key=True),
    Column("account_id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    # pending → sending (claimed) → sent | skipped | failed
    Column("status", String(8), nullable=False),
    Column("sent_ms", BigInteger, nullable=True),
    Index("ix_announcement_deliveries_pending", "status", "announcement_id"),
)

# --- moderation and agreement versions (T-16, T-17) ----------------------------------------------

# The operator's current measure on an account: blocked, restricted (no sending) or suspended
# until ``until_ms``. No row: full access. Lifting a measure deletes its row; the history is in
# ``moderation_log``.
account_measures = Table(
    "account_measures",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("reason", String(400), nullable=False),
    Column("until_ms", BigInteger, nullable=True),
    Column("set_ms", BigInteger, nullable=False),
    Column("set_by", Integer, nullable=True),
)

# The operator's audit log of moderation: every block, restriction, suspension, unblock and
# deletion with its reason. When an account is deleted its entries lose every identifying field
# (``account_id`` NULL, ``target`` replaced by a random erasure reference), the reasons stay.
moderation_log = Table(
    "moderation_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("operator_id", Integer, nullable=True),
    Column("operator", String(64), nullable=False, server_default=""),
    Column("action", String(24), nullable=False),
    Column("account_id", Integer, nullable=True),
    Column("target", String(300), nullable=False, server_default=""),
    Column("reason", String(400), nullable=False, server_default=""),
    Column("until_ms", BigInteger, nullable=True),
    Column("detail", String(400), nullable=False, server_default=""),
    sqlite_autoincrement=True,
)
Index("ix_moderation_log_account", moderation_log.c.account_id, moderation_log.c.id)

# Published versions of the user agreement (T-17); the newest is the current one. Acceptances
# are ``consents`` rows of kind "agreement" with the version accepted.
agreement_versions = Table(
    "agreement_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(32), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("requires_acceptance", Boolean, nullable=False),
    Column("published_ms", BigInteger, nullable=False),
    Column("published_by", Integer, nullable=True),
    sqlite_autoincrement=True,
)
