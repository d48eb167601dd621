"""Tables of the WhatsApp Web channel (migration ``0021_whatsapp_web``).

``waweb_message_ids``: WhatsApp's message ids next to this server's ``idMessage``, both ways, per
instance. A message sent through the gateway gets WhatsApp's id only when WhatsApp accepts it (the
client already holds the ``idMessage`` it was answered at acceptance), and receipts name WhatsApp's
id; a received message keeps WhatsApp's id as its ``idMessage``, and its row here is how an event
the gateway sends again is recognised.

``waweb_leases``: which server process (and so which gateway) holds each instance's session. Two
gateways connecting the same device make WhatsApp drop one (*stream replaced*) and again and
again; a process asks its gateway to run a session only while it holds the lease, renews its
leases while it lives and gives them up when it stops (lease.py).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table

from verdigris.store.db import metadata

waweb_message_ids = Table(
    "waweb_message_ids",
    metadata,
    Column("instance_id", BigInteger, primary_key=True),
    Column("wa_id", String(128), primary_key=True),
    Column("id_message", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)
waweb_leases = Table(
    "waweb_leases",
    metadata,
    Column("instance_id", BigInteger, primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

Index("ix_waweb_message_ids_idmsg", waweb_message_ids.c.instance_id, waweb_message_ids.c.id_message)
