"""The webhook address Meta calls: ``/channels/whatsapp-cloud/webhook``.

``GET`` is Meta's verification of the address: ``hub.mode=subscribe``, ``hub.verify_token`` (one
of the connected instances' verify tokens) and ``hub.challenge``, echoed as plain text; anything
else is 403. ``POST`` carries notifications, signed ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of
the raw body with the app secret>``. Each ``value`` names its business number
(``metadata.phone_number_id``); the numbers are looked up in one query, and the signature must
check out with the app secret of every connected number the payload names (compared in constant
time), else 401 and nothing is stored. Values for numbers no instance is connected to are left
out; a payload is bounded in size, changes and numbers. Accepted values are committed to the inbox (worker.py) before the 200. Refusals are
JSON ``{"error", "message"}``, like the other JSON faces.
"""

from __future__ import annotations

import hashlib
import hmac
import re
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
MAX_VALUES = 1000  # changes in one payload (Meta sends a few)
MAX_NUMBERS = 20  # distinct business numbers in one payload
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")


def _refused(status: int, message: str) -> Response:
    return Response(
        orjson.dumps({"error": message, "message": message}),
        status_code=status,
        media_type="application/json",
    )


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
        signature = _SIGNATURE.fullmatch(request.headers.get("x-hub-signature-256", ""))
        if signature is None:
            return _refused(401, "X-Hub-Signature-256 is missing or not sha256=<64 hex digits>")
        try:
            payload: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _refused(400, "the body is not JSON")
        values = inbound.message_values(payload)
        numbers = {inbound.phone_number_id(value) for value in values}
        if len(values) > MAX_VALUES or len(numbers) > MAX_NUMBERS:
            return _refused(413, f"at most {MAX_VALUES} changes for {MAX_NUMBERS} numbers in one payload")
        # One query for every number named; every account named must have signed the body.
        known = await service.accounts_for_numbers(core, {n for n in numbers if n.isdigit()})
        given = signature.group(1).lower()
        for account in known.values():
            expected = hmac.new(account.app_secret.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, given):
                return _refused(401, "X-Hub-Signature-256 does not match")
        unknown = numbers - set(known)
        if unknown:
            log.warning(
                "Cloud API webhook for numbers no instance is connected to",
                phone_number_ids=sorted(n[:32] for n in unknown)[:5],
            )
        accepted = [
            (known[number].instance_id, value)
            for value in values
            if (number := inbound.phone_number_id(value)) in known
        ]
        if accepted:
            await inbox.accept(accepted)
        return Response(
            orjson.dumps({"result": "ok", "accepted": len(accepted)}), media_type="application/json"
        )

    return router
