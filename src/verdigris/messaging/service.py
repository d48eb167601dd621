"""Messaging actions: accept outgoing messages, inspect and clear the queue, read the journal.

``send`` is the life of a message, step 2 of docs/architecture.md: the message is written to the
journal/queue in one committed transaction before the caller answers 200; the send worker
(messaging.sender) delivers it later, paced per instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, insert, select, update

from verdigris.messaging.content import new_outgoing_id
from verdigris.messaging.models import messages
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

QUEUED = "queued"
HELD = "review"  # accepted, waiting for the operator's review (screening)
WAITING = (QUEUED, HELD)  # not sent yet: shown by showMessagesQueue, withdrawn by clearMessagesQueue
_INSERT = insert(messages)  # built once: see docs/performance.md (statement building)
FINAL_STATUSES = ("failed", "noAccount", "notInGroup", "expired")
STATUS_ORDER = {"queued": 0, "pending": 0, "sent": 1, "delivered": 2, "read": 3}


def status_advances(current: str, new: str) -> bool:
    """Whether a sent message may move from ``current`` to ``new``: statuses only go forward
    (sent → delivered → read) and a final one (failed, noAccount, ...) is never left."""
    if current in ("failed", "noAccount", "expired", "cleared", "notInGroup"):
        return False
    if new in ("failed", "noAccount", "expired", "notInGroup"):
        return True
    return STATUS_ORDER.get(new, 0) > STATUS_ORDER.get(current, 0)


class MessageNotFound(Exception):
    pass


@dataclass(slots=True)
class OutgoingMessage:
    """A message an instance is asked to send."""

    chat_id: str
    kind: str  # the send method that accepted it (sendMessage, sendFileByUrl, ...)
    type_message: str
    content: dict[str, Any]
    request: dict[str, Any] = field(default_factory=dict)  # echoed by showMessagesQueue
    typing_ms: int = 0


@dataclass(slots=True)
class StoredMessage:
    """A journal entry, as services hand it around."""

    row_id: int
    instance_id: int
    chat_id: str
    id_message: str
    direction: str
    sent_by_api: bool
    kind: str
    type_message: str
    content: dict[str, Any]
    sender: str
    sender_name: str
    status: str
    description: str
    created_ms: int
    request: dict[str, Any] | None = None

    @property
    def typing_ms(self) -> int:
        return int((self.request or {}).get("_typing_ms", 0))


def _stored(row: Any) -> StoredMessage:
    return StoredMessage(
        row_id=int(row.id),
        instance_id=int(row.instance_id),
        chat_id=row.chat_id,
        id_message=row.id_message,
        direction=row.direction,
        sent_by_api=bool(row.sent_by_api),
        kind=row.kind,
        type_message=row.type_message,
        content=orjson.loads(row.content),
        sender=row.sender,
        sender_name=row.sender_name,
        status=row.status,
        description=row.description,
        created_ms=int(row.created_ms),
        request=orjson.loads(row.request) if row.request else None,
    )


async def send(core: Core, rec: InstanceRecord, message: OutgoingMessage) -> str:
    """Accept a message into the instance's outgoing queue; returns its idMessage once committed."""
    return (await send_many(core, rec, [message]))[0]


class MessageRefused(Exception):
    """A message that was not accepted; nothing was queued. ``answer`` is the text the faces show."""

    def __init__(self, reason: str, answer: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


class ContentRefused(MessageRefused):
    """The content rules of the service (``core.screening``) block this message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, f"Message refused by the content rules of this service: {reason}")


class ChannelRefused(MessageRefused):
    """The instance's messenger network cannot carry this message (the channel's ``refusal``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, f"Message refused: {reason}")


async def send_many(core: Core, rec: InstanceRecord, batch: list[OutgoingMessage]) -> list[str]:
    """Accept several messages in one transaction (all or none), in order; returns their ids."""
    try:
        async with core.tx() as tx:
            ids = [await enqueue(tx, rec, message) for message in batch]
    except ContentBlocked as blocked:
        # Nothing of the batch was queued; the block itself is recorded for the operator.
        async with core.tx() as tx:
            await blocked.record(tx)
        raise ContentRefused(blocked.verdict.reason) from None
    return ids


class ContentBlocked(Exception):
    """Raised by :func:`enqueue` inside the caller's transaction (which must roll back); the caller
    records the block in a transaction of its own with :meth:`record`."""

    def __init__(self, rec: InstanceRecord, message: OutgoingMessage, verdict: Any) -> None:
        super().__init__(verdict.reason)
        self.rec, self.message, self.verdict = rec, message, verdict

    async def record(self, tx: Tx) -> None:
        screening = tx.core.screening
        if screening is not None:
            await screening.record(tx, self.rec, self.message.chat_id, "", self.verdict, self.message.content)


async def enqueue(tx: Tx, rec: InstanceRecord, message: OutgoingMessage) -> str:
    """Put one message into the instance's outgoing queue within ``tx`` (the caller's other
    changes commit with it); the send worker is woken after the commit. Returns its idMessage."""
    status = QUEUED
    channel = tx.core.channels.get(rec.channel)
    refused = (
        f"the {rec.channel} network is switched off" if channel is None else channel.refusal(rec, message)
    )
    if refused is not None:
        raise ChannelRefused(refused)
    screening = tx.core.screening
    verdict = await screening.check(message.content) if screening is not None else None
    if verdict is not None:
        if verdict.action == "block":
            raise ContentBlocked(rec, message, verdict)
        status = HELD
    id_message = new_outgoing_id()
    request = dict(message.request)
    if message.typing_ms:
        request["_typing_ms"] = message.typing_ms
    if message.kind == "ForwardMessages":
        request["_ids"] = [id_message]
    await tx.conn.execute(
        _INSERT,
        {
            "instance_id": rec.id,
            "chat_id": message.chat_id,
            "id_message": id_message,
            "direction": "out",
            "sent_by_api": True,
            "kind": message.kind,
            "type_message": message.type_message,
            "content": orjson.dumps(message.content).decode(),
            "request": orjson.dumps(request).decode(),
            "sender": rec.wid,
            "sender_name": "",
            "status": status,
            "created_ms": now_ms(),
        },
    )
    if verdict is not None:
        assert screening is not None
        await screening.record(tx, rec, message.chat_id, id_message, verdict, message.content)
        tx.on_commit(tx.core.metrics.messages_accepted.inc)
        return id_message  # held for review: the send worker does not see it
    sender = tx.core.sender
    if sender is not None:
        tx.on_commit(lambda: sender.wake(rec))
    tx.on_commit(tx.core.metrics.messages_accepted.inc)
    return id_message


# --- the outgoing queue --------------------------------------------------------------------------


async def queued(core: Core, instance_id: int, limit: int) -> list[StoredMessage]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(messages)
                .where((messages.c.instance_id == instance_id) & messages.c.status.in_(WAITING))
                .order_by(messages.c.id)
                .limit(limit)
            )
        ).all()
    return [_stored(r) for r in rows]


async def queued_count(core: Core, instance_id: int) -> int:
    async with core.read() as conn:
        value = await conn.scalar(
            select(func.count())
            .select_from(messages)
            .where((messages.c.instance_id == instance_id) & messages.c.status.in_(WAITING))
        )
    return int(value or 0)


async def clear_queue(core: Core, instance_id: int) -> int:
    """Withdraw every message not yet sent. They stay in the journal as ``cleared``."""
    async with core.tx() as tx:
        result = await tx.conn.execute(
            update(messages)
            .where((messages.c.instance_id == instance_id) & messages.c.status.in_(WAITING))
            .values(status="cleared")
        )
    return int(result.rowcount or 0)


# --- the journal ---------------------------------------------------------------------------------

_JOURNAL_VISIBLE = messages.c.status.notin_(("cleared",))


async def chat_history(core: Core, instance_id: int, chat_id: str, count: int) -> list[StoredMessage]:
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(messages)
                .where(
                    (messages.c.instance_id == instance_id)
                    & (messages.c.chat_id == chat_id)
                    & _JOURNAL_VISIBLE
                )
                .order_by(messages.c.id.desc())
                .limit(count)
            )
        ).all()
    return [_stored(r) for r in rows]


async def get_message(core: Core, instance_id: int, chat_id: str, id_message: str) -> StoredMessage:
    async with core.read() as conn:
        row = (
            await conn.execute(
                select(messages)
                .where(
                    (messages.c.instance_id == instance_id)
                    & (messages.c.id_message == id_message)
                    & (messages.c.chat_id == chat_id)
                    & _JOURNAL_VISIBLE
                )
                .limit(1)
            )
        ).first()
    if row is None:
        raise MessageNotFound(id_message)
    return _stored(row)


async def find_message(core: Core, instance_id: int, chat_id: str, id_message: str) -> StoredMessage | None:
    try:
        return await get_message(core, instance_id, chat_id, id_message)
    except MessageNotFound:
        return None


async def update_content(core: Core, message: StoredMessage, content: dict[str, Any]) -> None:
    """Replace a journal entry's content (a change seen only by this instance, e.g. "delete for me")."""
    async with core.tx() as tx:
        await tx.conn.execute(
            update(messages)
            .where(messages.c.id == message.row_id)
            .values(content=orjson.dumps(content).decode())
        )


async def recent(core: Core, instance_id: int, direction: str, minutes: int) -> list[StoredMessage]:
    since = now_ms() - minutes * 60_000
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(messages)
                .where(
                    (messages.c.instance_id == instance_id)
                    & (messages.c.direction == direction)
                    & (messages.c.created_ms >= since)
                    & (messages.c.chat_id != "status@broadcast")  # statuses have their own journals
                    & _JOURNAL_VISIBLE
                )
                .order_by(messages.c.id.desc())
                .limit(10_000)
            )
        ).all()
    return [_stored(r) for r in rows]
