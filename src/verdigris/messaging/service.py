"""Messaging actions: accept outgoing messages, inspect and clear the queue, read the journal.

``send`` is the life of a message, step 2 of docs/architecture.md: the message is written to the
journal/queue in one committed transaction before the caller answers 200; the send worker
(messaging.sender) delivers it later, paced per instance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import bindparam, delete, func, insert, select, update

from verdigris.messaging import idempotency, lifecycle
from verdigris.messaging.content import new_outgoing_id
from verdigris.messaging.models import messages
from verdigris.messaging.vocabulary import FINAL, STATUS_BROADCAST, WAITING, Status
from verdigris.store.clock import now_ms
from verdigris.store.direct import Direct

if TYPE_CHECKING:
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

QUEUED, HELD = Status.QUEUED, Status.HELD
_INSERT = Direct(insert(messages))  # built once: see docs/performance.md (statement building)
# Columns other than the status (lifecycle owns that); the SET columns come from the parameters.
_UPDATE = Direct(update(messages).where(messages.c.id == bindparam("row_id")))


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


class Origin(StrEnum):
    """The face a message comes from; admission differs only where a face already did a part."""

    WIRE = "wire"  # a wire call: the router admitted and counted the call itself (every method)
    CONSOLE = "console"  # the personal area's "send a message"
    CAMPAIGN = "campaign"  # a campaign step (customers.campaigns)


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


class LicenseRefused(MessageRefused):
    """The instance's license (or its quotas) does not allow this message (console, campaigns)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, f"Message refused: {reason}")


class OperatorRefused(MessageRefused):
    """The operator's measure on the owning account stops its sending (console, campaigns)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, f"Message refused: {reason}")


@dataclass(slots=True)
class Admission:
    """A message that passed :func:`check_send`; ``held`` is the screening verdict that holds it
    for the operator's review, if any."""

    message: OutgoingMessage
    held: Any = None


async def check_send(core: Core, rec: InstanceRecord, message: OutgoingMessage, origin: Origin) -> Admission:
    """Every rule that decides whether ``message`` is accepted, for every face, in one place and
    outside any transaction (licensing may record a new correspondent in a transaction of its own):

    1. the operator's measures on the owning account (the wire router already answered 403);
    2. the license and its quotas (the wire router admitted and counted the call itself);
    3. the instance's channel: a message its network would refuse is not queued;
    4. the content rules: a block raises :class:`ContentBlocked` (record it, then refuse), a hold
       is returned in the admission.

    Raises a :class:`MessageRefused` with the reason otherwise.
    """
    if origin != Origin.WIRE:
        if not core.moderation.may_send(rec.account_id):
            raise OperatorRefused("the operator has stopped sending for this account")
        refusal = await core.licensing.admit(rec, message.kind, message.chat_id, sending=True)
        if refusal is not None:
            raise LicenseRefused(refusal.reason)
    channel = core.channels.get(rec.channel)
    refused = (
        f"the {rec.channel} network is switched off" if channel is None else channel.refusal(rec, message)
    )
    if refused is not None:
        raise ChannelRefused(refused)
    verdict = await core.screening.check(message.content)
    if verdict is not None and verdict.action == "block":
        raise ContentBlocked(rec, message, verdict)
    return Admission(message, verdict)


async def send(
    core: Core, rec: InstanceRecord, message: OutgoingMessage, origin: Origin = Origin.WIRE
) -> str:
    """Accept a message into the instance's outgoing queue; returns its idMessage once committed."""
    return (await send_many(core, rec, [message], origin))[0]


async def send_many(
    core: Core, rec: InstanceRecord, batch: list[OutgoingMessage], origin: Origin = Origin.WIRE
) -> list[str]:
    """Accept several messages in one transaction (all or none), in order; returns their ids."""
    try:
        admitted = [await check_send(core, rec, message, origin) for message in batch]
    except ContentBlocked as blocked:
        # Nothing of the batch was queued; the block itself is recorded for the operator.
        async with core.tx() as tx:
            await blocked.record(tx)
        raise ContentRefused(blocked.verdict.reason) from None
    claim = idempotency.current()  # the call's Idempotency-Key, if it has one

    async def write(tx: Tx) -> list[str]:
        ids = [await enqueue(tx, rec, admission) for admission in admitted]
        await idempotency.record(tx, claim, ids)
        return ids

    # Committed together with the other accepts of this moment (store/group.py); answers after
    # the commit that holds these rows.
    return await core.group.run(write)


class ContentBlocked(Exception):
    """Raised by :func:`check_send`; the caller records the block in a transaction of its own with
    :meth:`record`, then refuses the message."""

    def __init__(self, rec: InstanceRecord, message: OutgoingMessage, verdict: Any) -> None:
        super().__init__(verdict.reason)
        self.rec, self.message, self.verdict = rec, message, verdict

    async def record(self, tx: Tx) -> None:
        await tx.core.screening.record(
            tx, self.rec, self.message.chat_id, "", self.verdict, self.message.content
        )


async def enqueue(tx: Tx, rec: InstanceRecord, admission: Admission) -> str:
    """Put one admitted message (:func:`check_send`) into the instance's outgoing queue within
    ``tx`` (the caller's other changes commit with it); the send worker is woken after the commit.
    Returns its idMessage."""
    message, verdict = admission.message, admission.held
    status = QUEUED if verdict is None else HELD
    id_message = new_outgoing_id()
    request = dict(message.request)
    if message.typing_ms:
        request["_typing_ms"] = message.typing_ms
    if message.kind == "ForwardMessages":
        request["_ids"] = [id_message]
    await _INSERT.run(
        tx.conn,
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
        await tx.core.screening.record(tx, rec, message.chat_id, id_message, verdict, message.content)
        tx.on_commit(tx.core.metrics.messages_accepted.inc)
        return id_message  # held for review: the send worker does not see it
    lifecycle.wake_after(tx, rec)
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
        return await lifecycle.withdraw(tx, messages.c.instance_id == instance_id)


# Statuses (stories) the network has not taken: waiting in the queue, being handed over, or given
# up before they left (the channel's status journals know a status only once it left).
_UNSENT_STATUS = (*WAITING, Status.PENDING, *FINAL)


async def unsent_statuses(core: Core, instance_id: int, minutes: int) -> list[StoredMessage]:
    """Statuses the instance posted in the last ``minutes`` that never reached its network,
    newest first: an idMessage the wire answered stays known while the status waits its turn."""
    since = now_ms() - minutes * 60_000
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(messages)
                .where(
                    (messages.c.instance_id == instance_id)
                    & (messages.c.chat_id == STATUS_BROADCAST)
                    & (messages.c.direction == "out")
                    & (messages.c.created_ms >= since)
                    & messages.c.status.in_(_UNSENT_STATUS)
                )
                .order_by(messages.c.id.desc())
                .limit(10_000)
            )
        ).all()
    return [_stored(r) for r in rows]


# --- the journal ---------------------------------------------------------------------------------

_JOURNAL_VISIBLE = messages.c.status != Status.CLEARED


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


async def set_author(tx: Tx, row_id: int, sender: str, sender_name: str) -> None:
    """Record who sent an outgoing message, as the network names them (at its first send)."""
    await _UPDATE.run(tx.conn, {"row_id": row_id, "sender": sender, "sender_name": sender_name})


async def rewrite(
    tx: Tx,
    instance_ids: list[int],
    chat_id: str,
    id_message: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> int:
    """Apply ``change`` to the content of every journal copy of ``id_message`` in ``chat_id`` held
    by ``instance_ids`` (an edit or a deletion reached them); returns how many."""
    rows = (
        await tx.conn.execute(
            select(messages.c.id, messages.c.content).where(
                messages.c.instance_id.in_(instance_ids)
                & (messages.c.id_message == id_message)
                & (messages.c.chat_id == chat_id)
            )
        )
    ).all()
    for row in rows:
        new = change(orjson.loads(row.content))
        await _UPDATE.run(tx.conn, {"row_id": row.id, "content": orjson.dumps(new).decode()})
    return len(rows)


async def drop(tx: Tx, row_id: int) -> None:
    """Remove a claimed entry that is not a chat message (a typing indicator, once shown)."""
    await tx.conn.execute(delete(messages).where(messages.c.id == row_id))


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
                    & (messages.c.chat_id != STATUS_BROADCAST)  # statuses have their own journals
                    & _JOURNAL_VISIBLE
                )
                .order_by(messages.c.id.desc())
                .limit(10_000)
            )
        ).all()
    return [_stored(r) for r in rows]
