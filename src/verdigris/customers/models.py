"""Tables of the customer database: contacts, their tags, campaigns and each campaign's recipients.

A contact belongs to a licensee account (the team's tenant). Consent to promotions is recorded with
its time, source and wording; a withdrawal (an opt-out reply, the console, the API) keeps the
record and adds the time of withdrawal.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint

from verdigris.store.db import metadata

contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, nullable=False),
    # International number, digits only (the chat id is phone + "@c.us").
    Column("phone", String(20), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    # Where the record came from: "console", "import", "api".
    Column("source", String(20), nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    # Consent to promotions: when given, how (e.g. "web form", "in person", "reply YES"), and when
    # withdrawn (then no campaign reaches the contact until consent is given again).
    Column("consent_ms", BigInteger, nullable=True),
    Column("consent_source", String(200), nullable=False, server_default=""),
    Column("optout_ms", BigInteger, nullable=True),
    Column("optout_source", String(200), nullable=False, server_default=""),
    Column("campaigns_reached", Integer, nullable=False, server_default="0"),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("account_id", "phone"),
)

contact_tags = Table(
    "contact_tags",
    metadata,
    Column("contact_id", Integer, primary_key=True),
    Column("tag", String(60), primary_key=True),
    Index("ix_contact_tags_tag", "tag", "contact_id"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, nullable=False),
    Column("instance_id", BigInteger, nullable=False),
    Column("name", String(200), nullable=False),
    Column("text", Text, nullable=False),
    # Only contacts with this tag ("" = every consenting contact).
    Column("tag", String(60), nullable=False, server_default=""),
    # Seconds between two recipients (the campaign's own pacing, on top of the instance's delay).
    Column("interval_s", Integer, nullable=False),
    # draft → running ⇄ paused → done | cancelled
    Column("status", String(12), nullable=False),
    Column("pause_reason", String(400), nullable=False, server_default=""),
    Column("created_ms", BigInteger, nullable=False),
    Column("started_ms", BigInteger, nullable=True),
    Column("finished_ms", BigInteger, nullable=True),
    Column("next_ms", BigInteger, nullable=True),
    Index("ix_campaigns_account", "account_id", "id"),
    Index("ix_campaigns_status", "status"),
)

campaign_recipients = Table(
    "campaign_recipients",
    metadata,
    Column("campaign_id", Integer, primary_key=True),
    Column("contact_id", Integer, primary_key=True),
    Column("position", Integer, nullable=False),
    # pending → sent | skipped (no consent any more) | refused (the license refused the send)
    Column("status", String(10), nullable=False),
    Column("id_message", String(64), nullable=True),
    Column("done_ms", BigInteger, nullable=True),
    Index("ix_campaign_recipients_order", "campaign_id", "status", "position"),
)
