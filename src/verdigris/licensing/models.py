"""Tables of the licensing domain.

Money is stored as decimal text in the currency's minor unit (``"12.50"``), never as float.
Dates of licenses are local calendar dates of the operator's time zone (``YYYY-MM-DD``, end
exclusive) with the matching instants in ms for cheap comparisons.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text, UniqueConstraint

from verdigris.store.db import metadata

# One row per published version of a tariff; ``code`` names the tariff across versions.
tariffs = Table(
    "tariffs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("price", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    # "month" or "day", times period_count.
    Column("period_unit", String(8), nullable=False),
    Column("period_count", Integer, nullable=False),
    # "paid", "free" or "trial".
    Column("kind", String(8), nullable=False),
    Column("trial_days", Integer, nullable=False, server_default="0"),
    # JSON: {"methods": {"checkwhatsapp": 100}, "correspondents": 3, "instancesPerAccount": 1,
    #        "messagesPerMonth": 1000}; a missing entry means unlimited.
    Column("limits", Text, nullable=False),
    Column("features", Text, nullable=False, server_default="[]"),
    Column("public", Boolean, nullable=False, server_default="1"),
    Column("published_ms", BigInteger, nullable=False),
    # Set when a newer version is published or the tariff is withdrawn.
    Column("superseded_ms", BigInteger, nullable=True),
    UniqueConstraint("code", "version"),
)

licenses = Table(
    "licenses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    Column("account_id", Integer, nullable=True),
    # The tariff *version* the license was concluded under (T-03).
    Column("tariff_id", Integer, nullable=False),
    # "paid", "free", "trial", "grant" (by the operator), "sandbox" (unlimited, no end).
    Column("kind", String(8), nullable=False),
    Column("starts_on", String(10), nullable=False),
    Column("ends_on", String(10), nullable=True),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=True),
    # What the license was worth (paid + value carried over from a plan change), for T-04.
    Column("value", String(40), nullable=False, server_default="0"),
    Column("currency", String(3), nullable=False, server_default="USD"),
    Column("carried_value", String(40), nullable=False, server_default="0"),
    Column("extension_days", Integer, nullable=False, server_default="0"),
    Column("bonus_days", Integer, nullable=False, server_default="0"),
    Column("invoice_id", Integer, nullable=True),
    # "active", "changed" (replaced by a plan change), "revoked".
    Column("status", String(10), nullable=False, server_default="active"),
    Column("replaced_by", Integer, nullable=True),
    # Set on a license that arrived by a transfer of rights: it can never be transferred again.
    Column("transferred_from", Integer, nullable=True),
    Column("transferred_ms", BigInteger, nullable=True),
    # Reminder stages already sent (JSON list of days-before-expiry).
    Column("reminders", String(200), nullable=False, server_default="[]"),
    Column("created_ms", BigInteger, nullable=False),
)
Index("ix_licenses_instance", licenses.c.instance_id, licenses.c.start_ms)
Index("ix_licenses_account", licenses.c.account_id)
Index("ix_licenses_end", licenses.c.end_ms)

invoices = Table(
    "invoices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("number", String(40), nullable=False, unique=True),
    Column("account_id", Integer, nullable=False),
    # "purchase" or "plan_change"
    Column("kind", String(12), nullable=False),
    # "issued", "paid", "cancelled"
    Column("status", String(10), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal", String(40), nullable=False),
    Column("total", String(40), nullable=False),
    Column("promo_code", String(64), nullable=True),
    # The license a plan change replaces.
    Column("replaces_license", Integer, nullable=True),
    # The operator's requisites and the buyer as printed (T-27), frozen at issue.
    Column("requisites", Text, nullable=False),
    Column("buyer", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("paid_ms", BigInteger, nullable=True),
    Column("cancelled_ms", BigInteger, nullable=True),
)
Index("ix_invoices_account", invoices.c.account_id)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("instance_id", BigInteger, nullable=True),
    Column("tariff_id", Integer, nullable=False),
    Column("description", String(400), nullable=False),
    Column("unit_price", String(40), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("base", String(40), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("bonus_days", Integer, nullable=False, server_default="0"),
    # JSON list: which loyalty rule changed the price, by how much (T-07).
    Column("adjustments", Text, nullable=False, server_default="[]"),
)
Index("ix_invoice_lines_invoice", invoice_lines.c.invoice_id, invoice_lines.c.position)

payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, nullable=False),
    Column("amount", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    # "manual" (marked by the operator) or a provider name.
    Column("method", String(32), nullable=False),
    Column("reference", String(200), nullable=False),
    Column("recorded_by", Integer, nullable=True),
    Column("received_ms", BigInteger, nullable=False),
    UniqueConstraint("method", "reference"),
)
Index("ix_payments_invoice", payments.c.invoice_id)
Index("ix_payments_received", payments.c.received_ms)

loyalty_rules = Table(
    "loyalty_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("effect", String(10), nullable=False, server_default="discount"),
    Column("value", String(40), nullable=False, server_default="0"),
    Column("tiers", Text, nullable=False, server_default="[]"),
    Column("promo_code", String(64), nullable=True),
    Column("tariff_code", String(64), nullable=True),
    Column("priority", Integer, nullable=False, server_default="100"),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_ms", BigInteger, nullable=False),
)

transfers = Table(
    "license_transfers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("from_account", Integer, nullable=False),
    Column("to_account", Integer, nullable=False),
    Column("license_ids", Text, nullable=False),
    # "requested", "approved", "accepted", "rejected"
    Column("status", String(10), nullable=False),
    Column("requested_ms", BigInteger, nullable=False),
    Column("decided_ms", BigInteger, nullable=True),
    Column("decided_by", Integer, nullable=True),
    Column("accepted_ms", BigInteger, nullable=True),
)

# Metered calls per instance, quota period (local month ``YYYY-MM``) and method (lower case).
usage = Table(
    "license_usage",
    metadata,
    Column("instance_id", BigInteger, primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("method", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Distinct chats of an instance in a quota period (the free tier's correspondents limit).
correspondents = Table(
    "license_correspondents",
    metadata,
    Column("instance_id", BigInteger, primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("chat_id", String(64), primary_key=True),
    Column("first_ms", BigInteger, nullable=False),
)

# Service notices to an account (expiry reminders, ...): shown in the personal area.
notices = Table(
    "account_notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("text", Text, nullable=False),
    Column("data", Text, nullable=False, server_default="{}"),
    Column("created_ms", BigInteger, nullable=False),
    Column("read_ms", BigInteger, nullable=True),
)
Index("ix_account_notices_account", notices.c.account_id, notices.c.id)
