"""Tables of the sandbox network: simulated phones and what they see."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from verdigris.store.db import BigId, metadata

sandbox_phones = Table(
    "sandbox_phones",
    metadata,
    Column("number", String(20), primary_key=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("created_ms", BigInteger, nullable=False),
    # The file name of the profile picture in the pictures folder (setProfilePicture); "" = none.
    Column("picture", String(100), nullable=False, server_default=""),
)

# Every message a phone sent or received, as its owner would see it in the phone's app.
sandbox_phone_messages = Table(
    "sandbox_phone_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone", String(20), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("id_message", String(64), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("sender", String(64), nullable=False),
    Column("sender_name", String(200), nullable=False, server_default=""),
    Column("type_message", String(40), nullable=False),
    Column("content", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("read", Boolean, nullable=False, server_default="0"),
    Column("created_ms", BigInteger, nullable=False),
)
Index("ix_sandbox_phone_messages_phone", sandbox_phone_messages.c.phone, sandbox_phone_messages.c.id)
Index("ix_sandbox_phone_messages_idmsg", sandbox_phone_messages.c.id_message)

# Accounts a phone has blocked (channels/sandbox/phone_actions.py): their messages to the phone stay
# "sent" and never reach it, as on WhatsApp.
sandbox_blocks = Table(
    "sandbox_blocks",
    metadata,
    Column("phone", String(20), primary_key=True),
    Column("blocked", String(64), primary_key=True),  # the blocked account's wid
    Column("at_ms", BigInteger, nullable=False),
)

# --- groups (channels/sandbox/groups.py) ---------------------------------------------------------

sandbox_groups = Table(
    "sandbox_groups",
    metadata,
    Column("id", String(64), primary_key=True),  # 120363xxxxxxxxxxxx@g.us
    Column("subject", String(200), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("subject_ms", BigInteger, nullable=False),
    Column("subject_owner", String(64), nullable=False),
    Column("invite_code", String(32), nullable=False),
    # WhatsApp's two group switches: who may edit the group info, who may send messages.
    Column("members_edit_info", Boolean, nullable=False, server_default="1"),
    Column("members_send", Boolean, nullable=False, server_default="1"),
    # File name of the group picture in {data_dir}/group-pictures, empty when none.
    Column("picture", String(120), nullable=False, server_default=""),
)

sandbox_group_members = Table(
    "sandbox_group_members",
    metadata,
    Column("group_id", String(64), primary_key=True),
    Column("wid", String(64), primary_key=True),
    # member, admin or superadmin (the creator)
    Column("role", String(16), nullable=False),
    Column("joined_ms", BigInteger, nullable=False),
)
Index("ix_sandbox_group_members_wid", sandbox_group_members.c.wid)

# What happened to a group (created, renamed, added, removed, promoted, left...), oldest first.
sandbox_group_events = Table(
    "sandbox_group_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("target", String(64), nullable=False, server_default=""),
    Column("detail", String(200), nullable=False, server_default=""),
    Column("at_ms", BigInteger, nullable=False),
)
Index("ix_sandbox_group_events_group", sandbox_group_events.c.group_id, sandbox_group_events.c.id)

# --- statuses (stories; channels/sandbox/statuses.py) -------------------------------------------

sandbox_statuses = Table(
    "sandbox_statuses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("id_message", String(64), nullable=False, unique=True),
    Column("author", String(64), nullable=False),
    Column("author_name", String(200), nullable=False, server_default=""),
    Column("type_message", String(40), nullable=False),
    Column("content", Text, nullable=False),
    # The audience asked for (JSON list of chat ids); empty = every contact.
    Column("participants", Text, nullable=False, server_default="[]"),
    Column("sent_by_api", Boolean, nullable=False, server_default="0"),
    Column("created_ms", BigInteger, nullable=False),
    Column("deleted_ms", BigInteger, nullable=True),
)
Index("ix_sandbox_statuses_author", sandbox_statuses.c.author, sandbox_statuses.c.created_ms)

# One row per account a status was delivered to: delivered, then read once viewed.
sandbox_status_views = Table(
    "sandbox_status_views",
    metadata,
    Column("id_message", String(64), primary_key=True),
    Column("viewer", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)
Index("ix_sandbox_status_views_viewer", sandbox_status_views.c.viewer)

# --- calls (channels/sandbox/calls.py) ------------------------------------------------------------

# The call journal of each instance (lastIncomingCalls / lastOutgoingCalls).
call_journal = Table(
    "call_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instance_id", BigInteger, nullable=False),
    Column("id_message", String(64), nullable=False),
    # "in" or "out"
    Column("direction", String(3), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("is_video", Boolean, nullable=False, server_default="0"),
    # offer while ringing, then pickUp / hangUp / declined / missed
    Column("status", String(16), nullable=False),
    Column("duration_s", Integer, nullable=False, server_default="0"),
    Column("started_ms", BigInteger, nullable=False),
    Column("ended_ms", BigInteger, nullable=True),
    # While ringing: how the call will end and when (a restart resumes it).
    Column("outcome", String(16), nullable=False),
    Column("due_ms", BigInteger, nullable=False),
)
Index(
    "ix_call_journal_instance",
    call_journal.c.instance_id,
    call_journal.c.direction,
    call_journal.c.started_ms,
)
Index("ix_call_journal_idmsg", call_journal.c.id_message)
