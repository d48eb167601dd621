"""Licensing refusals in the wire's own format: HTTP 466 quota bodies and the expired-account 400.

The 466 body follows the documented example (spec 4.4): ``invokeStatus`` and, for the free tier's
chat limit, ``correspondentsStatus``. The service spells the statuses ``QUOTE_*`` here (unlike
the ``quotaExceeded`` notification's ``..._QUOTA_EXCEEDED``); the spelling is kept on purpose.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from verdigris.greenapi.errors import WireError
from verdigris.greenapi.registry import Call
from verdigris.licensing.enforce import EXPIRED_MESSAGE, QuotaStatus, Refusal


def _status(status: QuotaStatus, exceeded: str, allowed: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "method": status.method,
        "used": status.used,
        "total": status.total,
        "status": exceeded if status.exceeded else allowed,
    }
    if status.exceeded and status.description:
        body["description"] = status.description
    return body


def quota_body(refusal: Refusal) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if refusal.invoke is not None:
        body["invokeStatus"] = _status(refusal.invoke, "QUOTE_EXCEEDED", "QUOTE_ALLOWED")
    if refusal.correspondents is not None:
        body["correspondentsStatus"] = _status(
            refusal.correspondents, "CORRESPONDENTS_QUOTE_EXCEEDED", "CORRESPONDENTS_QUOTE_ALLOWED"
        )
    return body


class QuotaRefused(Exception):
    """Raised by a handler to answer 466 (the router turns it into the response)."""

    def __init__(self, response: Response) -> None:
        super().__init__("quota exceeded")
        self.response = response


def quota_refusal(refusal: Refusal) -> Response:
    if refusal.expired:
        raise WireError(400, EXPIRED_MESSAGE)
    return Response(orjson.dumps(quota_body(refusal)), status_code=466, media_type="application/json")


async def check_chat(call: Call, method: str, chat_id: str) -> None:
    """For handlers that read their own body (multipart): apply the free tier's correspondents
    limit to ``chat_id`` before anything is queued; raises :class:`QuotaRefused` with the 466."""
    refusal = await call.core.licensing.admit_chat(call.instance, method, chat_id)
    if refusal is not None:
        raise QuotaRefused(quota_refusal(refusal))


def chat_of(call: Call) -> str | None:
    """The chat a call sends to (``chatId`` of the JSON body or the query), if any."""
    data = call.raw_json
    if isinstance(data, dict):
        value = data.get("chatId")
        if isinstance(value, str) and value:
            return value
    value = call.request.query_params.get("chatId")
    return value or None
