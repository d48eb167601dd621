"""Receiving by HTTP polling: receiveNotification (long-poll) and deleteNotification."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.responses import Response

from verdigris.greenapi.errors import WireError
from verdigris.greenapi.registry import Call, JsonAnswer, wire_method
from verdigris.messaging import notifications

MAX_RECEIPT_ID = 2**63 - 1
NULL = Response(b"null", media_type="application/json")


@wire_method("receiveNotification", "GET", "receiving", query=("receiveTimeout",))
async def receive_notification(call: Call) -> Response:
    """The oldest notification, waiting up to receiveTimeout seconds; ``null`` when none arrives.

    While a webhookUrl is set, notifications are pushed there and this call only waits and
    answers ``null`` (see docs/sandbox.md, "Receiving").
    """
    settings = call.core.settings
    timeout = call.int_param(
        "receiveTimeout",
        settings.receive_timeout_default,
        settings.receive_timeout_min,
        settings.receive_timeout_max,
    )
    inst = call.instance
    hub = call.core.hub
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if inst.settings.get("webhookUrl"):
            if remaining <= 0:
                return NULL
            await asyncio.sleep(min(remaining, 1.0))
            continue
        head = await notifications.head(call.core, inst.id)
        if head is not None:
            return _answer(head)
        if remaining <= 0:
            return NULL
        fut = hub.subscribe(inst.id)
        try:
            # Read again once subscribed: a notification queued since the read above woke nobody.
            head = await notifications.head(call.core, inst.id)
            if head is not None:
                return _answer(head)
            await hub.wait(fut, remaining)
        finally:
            hub.unsubscribe(inst.id, fut)


def _answer(head: tuple[int, str]) -> Response:
    receipt_id, body = head
    return JsonAnswer(b'{"receiptId":%d,"body":%s}' % (receipt_id, body.encode()))


def _receipt_id(call: Call) -> int:
    raw: Any = call.extra
    if raw == "":
        # The official async SDK sends no path segment and puts the id in the JSON body.
        body = call.raw_json
        raw = body.get("receiptId") if isinstance(body, dict) else body
    if isinstance(raw, bool) or raw is None:
        raise WireError(400, "Parameter receiptId must be a Number")
    text = str(raw)
    # ASCII digits within the store's 64-bit ids ("²".isdigit() is true, but int() refuses it).
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_RECEIPT_ID:
        raise WireError(400, "Parameter receiptId must be a Number")
    return int(text)


@wire_method("deleteNotification", "DELETE", "receiving")
async def delete_notification(call: Call) -> dict[str, Any]:
    """Acknowledge a notification by its receiptId; ``result`` says whether it was in the queue."""
    receipt_id = _receipt_id(call)
    return {"result": await notifications.acknowledge(call.core, call.instance.id, receipt_id)}
