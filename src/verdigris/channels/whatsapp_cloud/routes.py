"""The webhook address Meta calls: ``/channels/whatsapp-cloud/webhook``.

``GET`` is Meta's verification of the address: ``hub.mode=subscribe``, ``hub.verify_token`` (one
of the connected instances' verify tokens) and ``hub.challenge``, echoed as plain text; anything
else is 403. ``POST`` carries notifications, signed ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of
the raw body with the app secret>``. Each ``value`` names its business number
(``metadata.phone_number_id``); it is accepted only for the instance connected to that number and
only when the signature checks out with that instance's app secret (compared in constant time).
A bad signature is 401 and nothing is stored; values for numbers no instance is connected to are
left out. Accepted values are committed to the inbox (worker.py) before the 200. Refusals are
JSON ``{"error", "message"}``, like the other JSON faces.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from verdigris.channels.whatsapp_cloud import inbound, service
from verdigris.channels.whatsapp_cloud.worker import CloudInbox
from verdigris.core import Core
from verdigris.media.bodies import BodyTooLarge, bounded

log = structlog.get_logger("verdigris.cloud")

MAX_BODY_BYTES = 3 * 1024 * 1024


def _refused(status: int, message: str) -> Response:
    return Response(
        orjson.dumps({"error": message, "message": message}),
        status_code=status,
        media_type="application/json",
    )


def signature_ok(secret: str, body: bytes, header: str) -> bool:
    if not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[7:].strip().lower())


def build_router(core: Core, inbox: CloudInbox) -> APIRouter:
    router = APIRouter(tags=["whatsapp cloud"])

    @router.get(
        service.WEBHOOK_PATH,
        summary="Meta's verification of the webhook address",
        response_class=PlainTextResponse,
        responses={403: {"description": "unknown verify token or mode"}},
    )
    async def verify(request: Request) -> Response:
        query = request.query_params
        token = query.get("hub.verify_token", "")
        challenge = query.get("hub.challenge", "")
        if (
            query.get("hub.mode") != "subscribe"
            or not token
            or not challenge
            or len(token) > 200
            or len(challenge) > 200
            or not await service.verify_token_known(core, token)
        ):
            return _refused(403, "verification refused")
        return PlainTextResponse(challenge)

    @router.post(
        service.WEBHOOK_PATH,
        summary="Notifications from the WhatsApp Cloud API (signed)",
        responses={
            400: {"description": "not JSON"},
            401: {"description": "missing or wrong X-Hub-Signature-256"},
            413: {"description": "body too large"},
        },
    )
    async def notify(request: Request) -> Response:
        try:
            chunks = [c async for c in bounded(request.stream(), MAX_BODY_BYTES)]
        except BodyTooLarge:
            return _refused(413, "body too large")
        body = b"".join(chunks)
        header = request.headers.get("x-hub-signature-256", "")
        if not header:
            return _refused(401, "X-Hub-Signature-256 is missing")
        try:
            payload: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _refused(400, "the body is not JSON")
        accepted: list[tuple[int, dict[str, Any]]] = []
        for value in inbound.message_values(payload):
            number = inbound.parse_value(value).phone_number_id
            known = await service.account_for_number(core, number) if number.isdigit() else None
            if known is None:
                log.warning(
                    "Cloud API webhook for a number no instance is connected to", phone_number_id=number[:32]
                )
                continue
            if not signature_ok(known.app_secret, body, header):
                return _refused(401, "X-Hub-Signature-256 does not match")
            accepted.append((known.instance_id, value))
        if accepted:
            await inbox.accept(accepted)
        return Response(
            orjson.dumps({"result": "ok", "accepted": len(accepted)}), media_type="application/json"
        )

    return router
