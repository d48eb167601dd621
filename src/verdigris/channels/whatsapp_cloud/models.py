"""Tables of the WhatsApp Cloud API channel (migration ``0015_whatsapp_cloud``).

``cloud_accounts``: the Meta credentials of each instance that connects through the Cloud API.
``cloud_message_ids``: the network's message ids (``wamid.…``) of each instance's messages, both
ways, next to this server's ``idMessage`` (wamids are longer than the journal's ids, and a client
already holds the ``idMessage`` it was answered when the network names the message).
``cloud_inbox``: webhook payloads accepted (answered 200) but not yet turned into journal rows and
notifications; a row goes in the transaction that applies it.
``cloud_early_statuses``: statuses naming a wamid this server does not know (yet): Meta's webhook
may be applied before the send that got the wamid has recorded it. Applied when it does; kept an
hour (statuses of messages another tool sent on the same number never match).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from verdigris.store.db import BigId, metadata

cloud_accounts = Table(
    "cloud_accounts",
    metadata,
    Column("instance_id", BigInteger, primary_key=True),
    # The business phone number's id in the Graph API (the path of every send).
    Column("phone_number_id", String(32), nullable=False, unique=True),
    Column("access_token", Text, nullable=False),
    # The Meta app's secret: webhook payloads are signed with it (X-Hub-Signature-256).
    Column("app_secret", String(200), nullable=False),
    # What Meta sends back when the webhook address is verified (hub.verify_token).
    Column("verify_token", String(200), nullable=False),
    # As the Graph API reported them when the instance last connected.
    Column("display_phone_number", String(32), nullable=False, server_default=""),
    Column("verified_name", String(200), nullable=False, server_default=""),
    # Why the last connection attempt or send with these credentials failed ("" when fine).
    Column("last_error", String(400), nullable=False, server_default=""),
    Column("updated_ms", BigInteger, nullable=False),
)
Index("ix_cloud_accounts_verify_token", cloud_accounts.c.verify_token)

cloud_message_ids = Table(
    "cloud_message_ids",
    metadata,
    Column("instance_id", BigInteger, primary_key=True),
    Column("wamid", String(255), primary_key=True),
    Column("id_message", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)
Index("ix_cloud_message_ids_idmsg", cloud_message_ids.c.instance_id, cloud_message_ids.c.id_message)

cloud_inbox = Table(
    "cloud_inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    # One ``value`` object of a webhook payload (its messages, statuses, contacts), as JSON text.
    Column("body", Text, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    # Failed attempts to apply it (a media download that failed, say).
    Column("attempts", Integer, nullable=False, server_default="0"),
    sqlite_autoincrement=True,
)
Index("ix_cloud_inbox_instance", cloud_inbox.c.instance_id, cloud_inbox.c.id)

cloud_early_statuses = Table(
    "cloud_early_statuses",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    Column("wamid", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("description", String(400), nullable=False, server_default=""),
    Column("at_ms", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)
Index("ix_cloud_early_statuses_wamid", cloud_early_statuses.c.instance_id, cloud_early_statuses.c.wamid)
Index("ix_cloud_early_statuses_received", cloud_early_statuses.c.received_ms)
