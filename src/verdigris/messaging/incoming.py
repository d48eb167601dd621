"""How a message from someone else enters an instance: the one place every channel calls.

``receive`` writes the journal row, runs the incoming hooks (the customer database's opt-out by
reply), asks licensing whether the chat may be announced (free-tier correspondents) and queues the
``incomingMessageReceived`` notification, all in the caller's transaction. The sandbox network
calls it for each instance linked to the recipient (of a direct or a group message); the WhatsApp
Cloud channel for each message a webhook brings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import insert, select

from verdigris.chats.service import contact_name
from verdigris.instances.settings import is_on
from verdigris.messaging.lifecycle import mark_incoming_read
from verdigris.messaging.models import messages
from verdigris.messaging.notifications import Event, emit
from verdigris.messaging.vocabulary import Status
from verdigris.store.direct import Direct

if TYPE_CHECKING:
    from verdigris.core import Tx
    from verdigris.instances.service import InstanceRecord
    from verdigris.messaging.service import StoredMessage

# Built once with bind parameters (docs/performance.md: statement building is the hot spot).
_INSERT = Direct(insert(messages))


@dataclass(slots=True)
class IncomingMessage:
    """A message that reached an instance, in domain form (see messaging.content)."""

    id_message: str
    chat_id: str  # the chat it belongs to, as the instance sees it
    sender: str
    sender_name: str
    type_message: str
    content: dict[str, Any]
    at_ms: int
    # The chat's name as the notification shows it (a group's subject); None: the sender's name,
    # or the instance's contact name for the chat.
    chat_name: str | None = None


def message_event(
    kind: str,
    id_message: str,
    type_message: str,
    content: dict[str, Any],
    chat_id: str,
    sender: str,
    sender_name: str,
    at: int,
    chat_name: str | None = None,
) -> Event:
    """The event of a message notification (incoming, outgoing, outgoing through the API)."""
    return Event(
        kind,
        {
            "id_message": id_message,
            "chat_id": chat_id,
            "chat_name": sender_name if chat_name is None else chat_name,
            "sender": sender,
            "sender_name": sender_name,
            "sender_contact_name": "",
            "type_message": type_message,
            "content": content,
        },
        at,
    )


async def receive(tx: Tx, rec: InstanceRecord, msg: IncomingMessage) -> bool:
    """Store ``msg`` in ``rec``'s journal and queue its notification.

    Returns True when the instance reads incoming messages at once (``markIncomingMessagesReaded``):
    the row is then ``read`` and the caller tells the sender, in the network's way.
    """
    result = await _INSERT.run(
        tx.conn,
        {
            "instance_id": rec.id,
            "chat_id": msg.chat_id,
            "id_message": msg.id_message,
            "direction": "in",
            "sent_by_api": False,
            "kind": "",
            "type_message": msg.type_message,
            "content": orjson.dumps(msg.content).decode(),
            "sender": msg.sender,
            "sender_name": msg.sender_name,
            "status": "delivered",
            "created_ms": msg.at_ms,
        },
    )
    for hook in tx.core.incoming_hooks:
        await hook(tx, rec, msg.sender, msg.type_message, msg.content)
    if await tx.core.licensing.admit_incoming(tx, rec, msg.chat_id):
        event = message_event(
            "incomingMessageReceived",
            msg.id_message,
            msg.type_message,
            msg.content,
            msg.chat_id,
            msg.sender,
            msg.sender_name,
            msg.at_ms,
            msg.chat_name,
        )
        contact = await contact_name(tx.conn, rec.id, msg.chat_id) if msg.chat_name is None else None
        if contact:
            event.data.update(sender_contact_name=contact, chat_name=contact)
        await emit(tx, rec, event)
    if not is_on(rec.settings, "markIncomingMessagesReaded"):
        return False
    await mark_incoming_read(tx, [int(result.inserted_primary_key[0])])  # type: ignore[index]
    return True


async def record_sent_elsewhere(tx: Tx, rec: InstanceRecord, msg: IncomingMessage) -> None:
    """A message the instance's account sent from another of its devices (its phone, another
    linked instance): stored in ``rec``'s journal as outgoing, not sent through the API; its
    statuses follow through :func:`messaging.lifecycle.set_status`."""
    await _INSERT.run(
        tx.conn,
        {
            "instance_id": rec.id,
            "chat_id": msg.chat_id,
            "id_message": msg.id_message,
            "direction": "out",
            "sent_by_api": False,
            "kind": "",
            "type_message": msg.type_message,
            "content": orjson.dumps(msg.content).decode(),
            "sender": msg.sender,
            "sender_name": msg.sender_name,
            "status": Status.PENDING,
            "created_ms": msg.at_ms,
        },
    )


async def record_past(tx: Tx, rec: InstanceRecord, msg: IncomingMessage, *, outgoing: bool) -> None:
    """A message from before the instance was linked (a network's history sync): stored in the
    journal as read (incoming) or sent (outgoing), without any notification."""
    await _INSERT.run(
        tx.conn,
        {
            "instance_id": rec.id,
            "chat_id": msg.chat_id,
            "id_message": msg.id_message,
            "direction": "out" if outgoing else "in",
            "sent_by_api": False,
            "kind": "",
            "type_message": msg.type_message,
            "content": orjson.dumps(msg.content).decode(),
            "sender": msg.sender,
            "sender_name": msg.sender_name,
            "status": Status.SENT if outgoing else Status.READ,
            "created_ms": msg.at_ms,
        },
    )


async def mark_chat_read(tx: Tx, rec: InstanceRecord, chat_id: str, up_to: StoredMessage | None) -> list[Any]:
    """Mark the chat's unread incoming messages (all, or up to ``up_to``) read; returns their rows
    (``id``, ``id_message``, ``sender``, oldest first), so the channel can tell the senders."""
    cond = (
        (messages.c.instance_id == rec.id)
        & (messages.c.chat_id == chat_id)
        & (messages.c.direction == "in")
        & (messages.c.status != "read")
    )
    if up_to is not None:
        cond = cond & (messages.c.id <= up_to.row_id)
    rows = list(
        await tx.conn.execute(
            select(messages.c.id, messages.c.id_message, messages.c.sender)
            .where(cond)
            .order_by(messages.c.id)
        )
    )
    await mark_incoming_read(tx, [int(r.id) for r in rows])
    return rows
