"""Queue methods: the outgoing message queue and the notification queue."""

from __future__ import annotations

import time
from typing import Any

from verdigris.greenapi.registry import Call, wire_method
from verdigris.messaging import notifications
from verdigris.messaging import service as messaging

CLEAR_WEBHOOKS_INTERVAL = 60.0
_last_webhook_clear: dict[int, float] = {}


@wire_method("showMessagesQueue", "GET", "queues")
async def show_messages_queue(call: Call) -> list[dict[str, Any]]:
    """The first 500 messages waiting to be sent, in order."""
    items = []
    for m in await messaging.queued(call.core, call.instance.id, 500):
        body = {k: v for k, v in (m.request or {}).items() if not k.startswith("_")}
        if m.kind == "ForwardMessages":
            items.append({"messagesIDs": body.get("_ids", [m.id_message]), "type": m.kind, "body": body})
        else:
            items.append({"messageID": m.id_message, "type": m.kind, "body": body})
    return items


@wire_method("clearMessagesQueue", "GET", "queues")
async def clear_messages_queue(call: Call) -> dict[str, Any]:
    """Withdraw every message not yet sent."""
    await messaging.clear_queue(call.core, call.instance.id)
    return {"isCleared": True}


@wire_method("getMessagesCount", "GET", "queues")
async def get_messages_count(call: Call) -> dict[str, Any]:
    """How many messages wait in the outgoing queue."""
    return {"count": await messaging.queued_count(call.core, call.instance.id)}


@wire_method("getWebhooksCount", "GET", "queues")
async def get_webhooks_count(call: Call) -> dict[str, Any]:
    """How many notifications wait in the notification queue."""
    return {"count": await notifications.count(call.core, call.instance.id)}


@wire_method("clearWebhooksQueue", "DELETE", "queues")
async def clear_webhooks_queue(call: Call) -> dict[str, Any]:
    """Drop every waiting notification (at most once a minute, as documented)."""
    now = time.monotonic()
    last = _last_webhook_clear.get(call.instance.id)
    if last is not None and now - last < CLEAR_WEBHOOKS_INTERVAL:
        return {
            "isCleared": False,
            "reason": "Too many requests",
            "leftTime": int(CLEAR_WEBHOOKS_INTERVAL - (now - last)) + 1,
        }
    _last_webhook_clear[call.instance.id] = now
    await notifications.clear(call.core, call.instance.id)
    return {"isCleared": True, "reason": ""}
