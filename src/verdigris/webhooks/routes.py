"""The webhook delivery API: options, delivery log, replay and dead letters of one instance.

``/api/v1/instances/{idInstance}/webhooks/...``, authenticated with the instance's own token:
``Authorization: Bearer <apiTokenInstance>``. Errors are JSON ``{"detail": "..."}``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from verdigris.core import Core
from verdigris.instances.service import InstanceRecord
from verdigris.webhooks import service
from verdigris.webhooks.service import DeliveryError

MAX_ID = 2**63 - 1  # ids are 64-bit signed integers in the store


class Strict(BaseModel):
    """Request bodies: no unknown keys, no coercion (``0`` is not ``false``, ``"1"`` not ``1``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RetryOut(BaseModel):
    receiptId: int
    source: str = Field(description="queue, or replay (a replayed or resent notification)")
    attempts: int
    firstFailureMs: int
    nextAttemptMs: int
    lastError: str


class WebhookStatus(BaseModel):
    idInstance: int
    webhookUrl: str = Field(description="From the instance settings (setSettings); empty = polling")
    authorizationHeader: bool = Field(description="Whether webhookUrlToken is set (sent as a Bearer token)")
    signing: bool
    signingSecret: str | None = Field(description="HMAC-SHA256 key of X-Verdigris-Signature (when signing)")
    eventIdHeader: bool
    queued: int = Field(description="Notifications waiting in the queue")
    replaysQueued: int = Field(description="Replayed or resent notifications waiting (they go first)")
    deadLetters: int
    retry: RetryOut | None = Field(description="The notification being retried, if the webhook is failing")
    retryPolicy: dict[str, Any]


class OptionsIn(Strict):
    signing: bool | None = Field(default=None, description="Sign every POST (a secret is created if none)")
    eventIdHeader: bool | None = Field(default=None, description="Send X-Verdigris-Event-Id and -Attempt")


class SecretOut(BaseModel):
    signingSecret: str


class Attempt(BaseModel):
    id: int
    receiptId: int
    eventId: str
    typeWebhook: str
    source: str
    attempt: int
    atMs: int
    latencyMs: int
    statusCode: int | None
    error: str
    outcome: str = Field(description="delivered, failed (will be retried) or dead (moved to dead letters)")
    nextAttemptMs: int | None


class ReplayIn(Strict):
    fromReceiptId: int | None = Field(
        default=None, ge=0, le=MAX_ID, description="Re-deliver from this receiptId on"
    )
    since: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ID // 1000,
        description="Or re-deliver notifications created from this time on (Unix seconds)",
    )


class Queued(BaseModel):
    queued: int


class DeadLetter(BaseModel):
    receiptId: int
    eventId: str
    typeWebhook: str
    createdMs: int
    deadMs: int
    reason: str
    attempts: int
    body: Any


class ResendIn(Strict):
    receiptIds: list[Annotated[int, Field(ge=0, le=MAX_ID)]] | None = Field(
        default=None, max_length=10_000, description="The dead letters to send again; omitted = all"
    )


class Deleted(BaseModel):
    deleted: bool


def _retry_out(retry: service.Retry | None) -> RetryOut | None:
    if retry is None:
        return None
    return RetryOut(
        receiptId=retry.receipt_id,
        source=retry.source,
        attempts=retry.attempts,
        firstFailureMs=retry.first_failure_ms,
        nextAttemptMs=retry.next_attempt_ms,
        lastError=retry.last_error,
    )


def build_router(core: Core) -> APIRouter:
    async def instance(instance_id: str, request: Request) -> InstanceRecord:
        if not (instance_id.isascii() and instance_id.isdigit()) or len(instance_id) > 18:
            raise HTTPException(400, "idInstance must be a number (ASCII digits, at most 18)")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise HTTPException(401, "send 'Authorization: Bearer <apiTokenInstance>'")
        rec = await core.instances.get(int(instance_id))
        # An unknown instance and a foreign one read the same: ids cannot be enumerated.
        expected = rec.token if rec is not None else "-" * 50
        if not hmac.compare_digest(value.strip().encode(), expected.encode()) or rec is None:
            raise HTTPException(401, "wrong apiTokenInstance for this instance")
        # The operator's measures (T-16): a blocked or suspended account keeps no face.
        measure = core.moderation.measure(rec.account_id)
        if measure is not None and measure.locks_out:
            raise HTTPException(403, "the account is blocked by the operator: " + measure.describe())
        return rec

    router = APIRouter(
        prefix="/api/v1/instances/{instance_id}/webhooks",
        tags=["webhooks"],
        responses={
            status: {"description": text, "content": {"application/json": {"schema": {"type": "object"}}}}
            for status, text in (
                (400, "Bad request data"),
                (401, "Missing or wrong Bearer token (the instance's apiTokenInstance)"),
                (403, "The account is blocked or suspended by the operator"),
                (404, "No such notification or dead letter"),
                (409, "No webhookUrl is set (replays and resends go to the webhook)"),
                (413, "Body too large"),
            )
        },
    )

    def policy() -> dict[str, Any]:
        s = core.settings
        if s.webhook_retry_policy == "fixed":
            return {"policy": "fixed", "delaySeconds": s.webhook_retry_delay_seconds}
        return {
            "policy": "exponential",
            "initialSeconds": s.webhook_backoff_initial_seconds,
            "multiplier": s.webhook_backoff_multiplier,
            "maxSeconds": s.webhook_backoff_max_seconds,
            "jitter": s.webhook_backoff_jitter,
        }

    async def status(rec: InstanceRecord) -> dict[str, Any]:
        options = await service.get_options(core, rec.id)
        counts = await service.counts(core, rec.id)
        return {
            "idInstance": rec.id,
            "webhookUrl": str(rec.settings.get("webhookUrl") or ""),
            "authorizationHeader": bool(rec.settings.get("webhookUrlToken")),
            "signing": options.signing,
            "signingSecret": options.secret if options.signing else None,
            "eventIdHeader": options.event_id_header,
            "queued": counts.queued,
            "replaysQueued": counts.replays,
            "deadLetters": counts.dead_letters,
            "retry": _retry_out(await service.retry_state(core, rec.id)),
            "retryPolicy": policy(),
        }

    @router.get("", response_model=WebhookStatus, summary="Webhook options and delivery state")
    async def get_status(rec: InstanceRecord = Depends(instance)) -> Any:
        return await status(rec)

    @router.patch("", response_model=WebhookStatus, summary="Switch signing / event-id headers on or off")
    async def patch_options(body: OptionsIn, rec: InstanceRecord = Depends(instance)) -> Any:
        await service.set_options(core, rec.id, signing=body.signing, event_id_header=body.eventIdHeader)
        return await status(rec)

    @router.post(
        "/secret", response_model=SecretOut, summary="Create a new signing secret (the old one stops)"
    )
    async def rotate_secret(rec: InstanceRecord = Depends(instance)) -> Any:
        options = await service.set_options(core, rec.id, rotate_secret=True)
        return {"signingSecret": options.secret}

    @router.get("/deliveries", response_model=list[Attempt], summary="The delivery log, newest first")
    async def deliveries(
        rec: InstanceRecord = Depends(instance),
        limit: int = Query(default=100, ge=1, le=1000),
        beforeId: int | None = Query(
            default=None, ge=1, le=MAX_ID, description="Page: entries older than this id"
        ),
        receiptId: int | None = Query(
            default=None, ge=0, le=MAX_ID, description="Only this notification's attempts"
        ),
    ) -> Any:
        rows = await service.attempts_log(core, rec.id, limit=limit, before_id=beforeId, receipt_id=receiptId)
        return [
            {
                "id": r.id,
                "receiptId": r.receipt_id,
                "eventId": service.event_id(rec.id, r.receipt_id),
                "typeWebhook": r.type,
                "source": r.source,
                "attempt": r.attempt,
                "atMs": r.at_ms,
                "latencyMs": r.latency_ms,
                "statusCode": r.status_code,
                "error": r.error,
                "outcome": r.outcome,
                "nextAttemptMs": r.next_attempt_ms,
            }
            for r in rows
        ]

    @router.post("/replay", response_model=Queued, summary="Deliver acknowledged notifications again")
    async def replay(body: ReplayIn, rec: InstanceRecord = Depends(instance)) -> Any:
        if not rec.settings.get("webhookUrl"):
            raise HTTPException(409, "set webhookUrl (setSettings) first: replays go to the webhook")
        try:
            queued = await service.replay(
                core,
                rec.id,
                from_receipt_id=body.fromReceiptId,
                since_ms=None if body.since is None else body.since * 1000,
            )
        except DeliveryError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"queued": queued}

    @router.get(
        "/dead-letters", response_model=list[DeadLetter], summary="Notifications whose retention ran out"
    )
    async def dead_letter_list(
        rec: InstanceRecord = Depends(instance),
        limit: int = Query(default=100, ge=1, le=1000),
        afterReceiptId: int = Query(
            default=0, ge=0, le=MAX_ID, description="Page: entries after this receiptId"
        ),
    ) -> Any:
        rows = await service.dead_letter_list(core, rec.id, limit=limit, after_receipt_id=afterReceiptId)
        return [
            {
                "receiptId": r.receipt_id,
                "eventId": service.event_id(rec.id, r.receipt_id),
                "typeWebhook": r.type,
                "createdMs": r.created_ms,
                "deadMs": r.dead_ms,
                "reason": r.reason,
                "attempts": r.attempts,
                "body": orjson.loads(r.body),
            }
            for r in rows
        ]

    @router.post("/dead-letters/resend", response_model=Queued, summary="Send dead letters again")
    async def resend(body: ResendIn | None = None, rec: InstanceRecord = Depends(instance)) -> Any:
        if not rec.settings.get("webhookUrl"):
            raise HTTPException(
                409, "set webhookUrl (setSettings) first: dead letters are resent to the webhook"
            )
        ids = body.receiptIds if body is not None else None
        return {"queued": await service.resend_dead_letters(core, rec.id, ids)}

    @router.delete("/dead-letters/{receipt_id}", response_model=Deleted, summary="Drop one dead letter")
    async def drop(receipt_id: int = Path(ge=0, le=MAX_ID), rec: InstanceRecord = Depends(instance)) -> Any:
        if not await service.delete_dead_letter(core, rec.id, receipt_id):
            raise HTTPException(404, f"no dead letter {receipt_id} for this instance")
        return {"deleted": True}

    return router
