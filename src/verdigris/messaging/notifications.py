"""The per-instance notification queue: what gets queued (the settings gate), and reading it.

Every event of an instance (a message arrived, a status changed, the state changed...) becomes
one row in ``notifications`` if the instance's settings ask for it. The row holds the body as
pollers and webhooks receive it, rendered once by the face's renderer, so a notification is
byte-identical each time it is handed out. It leaves the queue by an acknowledgement
(deleteNotification, or a webhook answered 200) or when retention expires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, insert, select

from verdigris.instances.settings import is_on
from verdigris.messaging.models import notifications
from verdigris.messaging.vocabulary import FINAL, EventKind
from verdigris.store.clock import now_ms
from verdigris.store.direct import Direct

if TYPE_CHECKING:
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to an instance, in domain words.

    ``kind`` uses the notification vocabulary (incomingMessageReceived, outgoingMessageStatus,
    stateInstanceChanged, ...); ``data`` holds the facts the renderer turns into a body.
    """

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    at_ms: int = field(default_factory=now_ms)


Renderer = Callable[["InstanceRecord", Event], str]


def status_event(
    chat_id: str,
    id_message: str,
    status: str,
    description: str = "",
    sent_by_api: bool = True,
    at_ms: int = 0,
) -> Event:
    """An ``outgoingMessageStatus`` event: a message the instance sent moved to ``status``."""
    data = {
        "chat_id": chat_id,
        "id_message": id_message,
        "status": status,
        "description": description,
        "sent_by_api": sent_by_api,
    }
    return Event("outgoingMessageStatus", data, at_ms or now_ms())


def state_event(state: str, at_ms: int = 0) -> Event:
    """A ``stateInstanceChanged`` event: the instance moved to ``state`` (instances.service)."""
    return Event(EventKind.STATE, {"state": state}, at_ms or now_ms())


def socket_event(online: bool, at_ms: int = 0) -> Event:
    """A ``statusInstanceChanged`` event: the instance's connection to its network (the socket)
    opened (``online``) or closed (instances.service, whenever the state crosses ``authorized``)."""
    return Event(EventKind.STATUS_INSTANCE, {"online": online}, at_ms or now_ms())


def block_event(chat_id: str, blocked: bool, at_ms: int = 0) -> Event:
    """An ``incomingBlock`` event: the account ``chat_id`` blocked (or unblocked) the instance's account."""
    return Event(EventKind.INCOMING_BLOCK, {"chat_id": chat_id, "blocked": blocked}, at_ms or now_ms())


def quota_event(limit: str, method: str, used: int, total: int, description: str) -> Event:
    """A ``quotaExceeded`` event: the license's ``limit`` (a method's monthly quota, the monthly
    messages or the correspondents) refused ``method`` after ``used`` of ``total``."""
    data = {"limit": limit, "method": method, "used": used, "total": total, "description": description}
    return Event(EventKind.QUOTA_EXCEEDED, data)


def call_event(
    kind: EventKind,
    call_id: str,
    at_ms: int,
    *,
    peer: str | None = None,
    status: str | None = None,
    is_video: bool | None = None,
    duration_s: int | None = None,
) -> Event:
    """An ``incomingCall`` / ``outgoingCall`` event; an outgoing call's offer carries only its id."""
    data = {
        "call_id": call_id,
        "peer": peer,
        "status": status,
        "is_video": is_video,
        "duration_s": duration_s,
    }
    return Event(kind, data, at_ms)


_MESSAGE_KINDS = {
    "incomingMessageReceived": "incomingWebhook",
    "outgoingMessageReceived": "outgoingMessageWebhook",
    "outgoingAPIMessageReceived": "outgoingAPIMessageWebhook",
}
_EXTRA_FLAG_BY_TYPE = {
    "pollMessage": "pollMessageWebhook",
    "pollUpdateMessage": "pollMessageWebhook",
    "editedMessage": "editedMessageWebhook",
    "deletedMessage": "deletedMessageWebhook",
}
_SIMPLE_KINDS = {
    "stateInstanceChanged": "stateWebhook",
    "statusInstanceChanged": "statusInstanceWebhook",
    "deviceInfo": "deviceWebhook",
    "outgoingCall": "outgoingCallWebhook",
    "incomingBlock": "incomingBlockWebhook",
}

# Notification kinds no channel produces, and why: setSettings accepts their setting (GREEN-API
# clients send it), and docs/compatibility.md and the console say beside it that nothing comes.
NOT_EMITTED: dict[str, tuple[str, str]] = {
    EventKind.DEVICE: (
        "deviceWebhook",
        "the phone's device facts (model, OS, battery) are not known for sandbox phones or Cloud API "
        "numbers; GREEN-API itself documents deviceInfo as out of service",
    ),
}


# Hot-path statements, built once with bind parameters.
_INSERT = Direct(insert(notifications))
_HEAD = Direct(
    select(notifications.c.receipt_id, notifications.c.body)
    .where(
        (notifications.c.instance_id == bindparam("instance_id"))
        & (notifications.c.created_ms >= bindparam("oldest"))
    )
    .order_by(notifications.c.receipt_id)
    .limit(1)
)
_ACKNOWLEDGE = Direct(
    delete(notifications).where(
        (notifications.c.instance_id == bindparam("instance_id"))
        & (notifications.c.receipt_id == bindparam("receipt_id"))
    )
)


def wanted(settings: dict[str, Any], event: Event) -> bool:
    """The settings → notification matrix (GREEN-API spec, Appendix B), in one place."""
    kind = event.kind
    flag = _MESSAGE_KINDS.get(kind)
    if flag is not None:
        if not is_on(settings, flag):
            return False
        extra = _EXTRA_FLAG_BY_TYPE.get(event.data.get("type_message", ""))
        return extra is None or is_on(settings, extra)
    if kind == "outgoingMessageStatus":
        return event.data.get("status") in FINAL or is_on(settings, "outgoingWebhook")
    flag = _SIMPLE_KINDS.get(kind)
    if flag is not None:
        return is_on(settings, flag)
    if kind == "incomingCall":
        return is_on(settings, "incomingWebhook") and is_on(settings, "incomingCallWebhook")
    if kind == "quotaExceeded":
        return is_on(settings, "incomingWebhook") or is_on(settings, "incomingBlockWebhook")
    return False


def enabled_by(kind: str) -> str:
    """The settings that switch a notification kind on, in words (the same tables as :func:`wanted`;
    docs/compatibility.md lists them)."""
    flag = _MESSAGE_KINDS.get(kind)
    if flag is not None:
        extras = sorted(set(_EXTRA_FLAG_BY_TYPE.values()))
        return f"`{flag}` (polls, edits and deletions also need " + ", ".join(f"`{e}`" for e in extras) + ")"
    if kind == EventKind.MESSAGE_STATUS:
        return "`outgoingWebhook` (final statuses such as failed always)"
    flag = _SIMPLE_KINDS.get(kind)
    if flag is not None:
        return f"`{flag}`"
    if kind == EventKind.INCOMING_CALL:
        return "`incomingWebhook` and `incomingCallWebhook`"
    if kind == EventKind.QUOTA_EXCEEDED:
        return "`incomingWebhook` or `incomingBlockWebhook`"
    return "nothing"


async def emit(tx: Tx, inst: InstanceRecord, event: Event) -> int | None:
    """Queue the event for the instance if its settings want it; returns the receiptId."""
    for hook in tx.core.event_hooks:
        await hook(tx, inst, event)
    if not wanted(inst.settings, event):
        return None
    body = tx.core.render(inst, event)
    result = await _INSERT.run(
        tx.conn, {"instance_id": inst.id, "type": event.kind, "body": body, "created_ms": event.at_ms}
    )
    tx.on_commit(partial(tx.core.hub.notify, inst.id))
    tx.core.metrics.notifications.labels(event.kind).inc()
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def _live(core: Core, instance_id: int) -> Any:
    oldest = now_ms() - core.settings.retention_seconds * 1000
    return (notifications.c.instance_id == instance_id) & (notifications.c.created_ms >= oldest)


async def head(core: Core, instance_id: int) -> tuple[int, str] | None:
    """The oldest notification still in the queue: (receiptId, body)."""
    oldest = now_ms() - core.settings.retention_seconds * 1000
    row = (await core.fetch(_HEAD, {"instance_id": instance_id, "oldest": oldest})).first()
    return (int(row[0]), row[1]) if row else None


async def acknowledge(core: Core, instance_id: int, receipt_id: int) -> bool:
    """Remove one notification; False when it was not (or no longer) in the queue."""

    async def delete(tx: Tx) -> bool:
        result = await _ACKNOWLEDGE.run(tx.conn, {"instance_id": instance_id, "receipt_id": receipt_id})
        return bool(result.rowcount)

    # Committed together with the other deletes of this moment (store/group.py).
    return await core.group.run(delete)


async def count(core: Core, instance_id: int) -> int:
    async with core.read() as conn:
        value = await conn.scalar(
            select(func.count()).select_from(notifications).where(_live(core, instance_id))
        )
    return int(value or 0)


async def clear(core: Core, instance_id: int) -> int:
    async with core.tx() as tx:
        result = await tx.conn.execute(
            delete(notifications).where(notifications.c.instance_id == instance_id)
        )
    return int(result.rowcount or 0)


async def purge_expired(core: Core) -> int:
    """Move notifications older than the retention period to the dead letters (run periodically).

    Nothing is dropped silently: dead letters stay visible and re-sendable (docs/webhooks.md).
    """
    from verdigris.webhooks.service import move_expired_to_dead_letters

    oldest = now_ms() - core.settings.retention_seconds * 1000
    async with core.tx() as tx:
        return await move_expired_to_dead_letters(
            tx.conn, oldest, "expired: not taken within the retention period"
        )
