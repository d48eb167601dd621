"""Webhook delivery actions: options, the next notification to push, recording outcomes,
replays, dead letters and the delivery log.

Every state change is one transaction here; the dispatcher (``dispatcher.py``) decides *when*
to call them and does the HTTP work outside any transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, func, insert, literal, select, update

from verdigris.messaging.models import notifications
from verdigris.store.clock import now_ms
from verdigris.webhooks.models import (
    dead_letters,
    webhook_attempts,
    webhook_delivered,
    webhook_options,
    webhook_replays,
    webhook_retries,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection
    from sqlalchemy.sql.elements import BindParameter

    from verdigris.config import Settings
    from verdigris.core import Core

QUEUE = "queue"
REPLAY = "replay"

DELIVERED = "delivered"
FAILED = "failed"
DEAD = "dead"

SECRET_PREFIX = "whsec_"
# At most this many notifications are queued again by one replay or resend call (call again for more).
MAX_REQUEUE = 10_000


class DeliveryError(Exception):
    """A delivery action that cannot be done as asked (the message says why)."""


# --- value objects ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    """Opt-in webhook features of one instance (all off by default, as on GREEN-API)."""

    signing: bool = False
    secret: str = ""
    event_id_header: bool = False


DEFAULT_OPTIONS = Options()


@dataclass(frozen=True, slots=True)
class Item:
    """One notification to push: from the instance's queue, or queued again by a replay."""

    instance_id: int
    source: str
    receipt_id: int
    kind: str
    body: str
    created_ms: int
    # Retention counts from here: creation for the queue, re-queueing for a replay.
    since_ms: int

    def expired(self, settings: Settings, now: int) -> bool:
        return self.since_ms < now - settings.retention_seconds * 1000


@dataclass(slots=True)
class Retry:
    """The notification an instance's webhook is failing on (mirrors a ``webhook_retries`` row)."""

    source: str
    receipt_id: int
    attempts: int
    first_failure_ms: int
    next_attempt_ms: int
    last_error: str
    # The webhookUrl the last attempt went to; None after a restart (unknown).
    url: str | None = None

    def same_item(self, item: Item) -> bool:
        return self.source == item.source and self.receipt_id == item.receipt_id


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one POST achieved."""

    at_ms: int
    latency_ms: int
    status_code: int | None
    error: str

    @property
    def ok(self) -> bool:
        # Only 200 takes a notification off the queue (GREEN-API, section 11.2).
        return self.status_code == 200


# --- rules -------------------------------------------------------------------------------------


def retry_delay_ms(settings: Settings, attempts: int, rand: Callable[[], float] = random.random) -> int:
    """How long to wait after the ``attempts``-th failed attempt of a notification."""
    if settings.webhook_retry_policy == "fixed":
        return int(settings.webhook_retry_delay_seconds * 1000)
    base = settings.webhook_backoff_initial_seconds * settings.webhook_backoff_multiplier ** max(
        0, attempts - 1
    )
    base = min(base, settings.webhook_backoff_max_seconds)
    return int(base * (1 - settings.webhook_backoff_jitter * rand()) * 1000)


def event_id(instance_id: int, receipt_id: int) -> str:
    """The stable id of a notification: the same on every attempt and every replay."""
    return f"{instance_id}-{receipt_id}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def request_headers(
    token: str, options: Options, item: Item, body: bytes, attempt: int, now_s: int
) -> dict[str, str]:
    """The headers of one webhook POST (Content-Length is set by the HTTP client from the body)."""
    headers = {"Content-Type": "application/json"}
    if token:
        # The official receivers compare with "Bearer <webhookUrlToken>"; a token that already
        # names its scheme ("Basic xyz") is sent as it is.
        headers["Authorization"] = token if " " in token.strip() else f"Bearer {token}"
    if options.event_id_header:
        headers["X-Verdigris-Event-Id"] = event_id(item.instance_id, item.receipt_id)
        headers["X-Verdigris-Attempt"] = str(attempt)
    if options.signing and options.secret:
        headers["X-Verdigris-Timestamp"] = str(now_s)
        headers["X-Verdigris-Signature"] = signature(options.secret, now_s, body)
    return headers


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# --- options ---------------------------------------------------------------------------------


async def get_options(core: Core, instance_id: int) -> Options:
    async with core.read() as conn:
        row = (
            await conn.execute(select(webhook_options).where(webhook_options.c.instance_id == instance_id))
        ).first()
    if row is None:
        return DEFAULT_OPTIONS
    return Options(signing=bool(row.signing), secret=row.secret, event_id_header=bool(row.event_id_header))


async def set_options(
    core: Core,
    instance_id: int,
    *,
    signing: bool | None = None,
    event_id_header: bool | None = None,
    rotate_secret: bool = False,
) -> Options:
    """Change the opt-in features; switching signing on creates a secret if there is none."""
    async with core.tx() as tx:
        row = (
            await tx.conn.execute(select(webhook_options).where(webhook_options.c.instance_id == instance_id))
        ).first()
        current = (
            Options(bool(row.signing), row.secret, bool(row.event_id_header)) if row else DEFAULT_OPTIONS
        )
        new_signing = current.signing if signing is None else signing
        secret = current.secret
        if rotate_secret or (new_signing and not secret):
            secret = new_secret()
        options = Options(
            signing=new_signing,
            secret=secret,
            event_id_header=current.event_id_header if event_id_header is None else event_id_header,
        )
        values = {
            "signing": options.signing,
            "secret": options.secret,
            "event_id_header": options.event_id_header,
            "updated_ms": now_ms(),
        }
        if row is None:
            await tx.conn.execute(insert(webhook_options).values(instance_id=instance_id, **values))
        else:
            await tx.conn.execute(
                update(webhook_options).where(webhook_options.c.instance_id == instance_id).values(**values)
            )
    core.dispatcher.options_changed(instance_id, options)
    return options


# --- the dispatcher's reads and writes -----------------------------------------------------------


async def next_item(core: Core, instance_id: int, with_replays: bool) -> Item | None:
    """What the instance's webhook gets next: replays first (receiptId order), then the queue."""
    async with core.read() as conn:
        if with_replays:
            row = (
                await conn.execute(
                    select(webhook_replays)
                    .where(webhook_replays.c.instance_id == instance_id)
                    .order_by(webhook_replays.c.receipt_id)
                    .limit(1)
                )
            ).first()
            if row is not None:
                return Item(
                    instance_id,
                    REPLAY,
                    int(row.receipt_id),
                    row.type,
                    row.body,
                    int(row.created_ms),
                    int(row.queued_ms),
                )
        row = (
            await conn.execute(
                select(notifications)
                .where(notifications.c.instance_id == instance_id)
                .order_by(notifications.c.receipt_id)
                .limit(1)
            )
        ).first()
    if row is None:
        return None
    created = int(row.created_ms)
    return Item(instance_id, QUEUE, int(row.receipt_id), row.type, row.body, created, created)


# The dispatcher's batch statements, built once (building one and its cache key per batch cost
# more CPU than SQLite takes to run it). ``ids``: the instances or receipts of the batch.
_IDS: BindParameter[int] = bindparam("ids", expanding=True)
_HEADS = select(notifications).where(
    notifications.c.receipt_id.in_(
        select(func.min(notifications.c.receipt_id))
        .where(notifications.c.instance_id.in_(_IDS))
        .group_by(notifications.c.instance_id)
    )
)
_TAKE_QUEUED = delete(notifications).where(notifications.c.receipt_id.in_(_IDS))
_FORGET_DEAD = delete(dead_letters).where(dead_letters.c.receipt_id.in_(_IDS))
_TAKE_REPLAYS = delete(webhook_replays).where(webhook_replays.c.receipt_id.in_(_IDS))
_FORGET_DELIVERED = delete(webhook_delivered).where(webhook_delivered.c.receipt_id.in_(_IDS))
_FORGET_RETRIES = delete(webhook_retries).where(webhook_retries.c.instance_id.in_(_IDS))
_KEEP_DELIVERED = insert(webhook_delivered)
_LOG_ATTEMPTS = insert(webhook_attempts)


async def next_items(core: Core, requests: list[tuple[int, bool]]) -> list[Item | None]:
    """:func:`next_item` for many instances at once (one statement for those without replays)."""
    plain = sorted({instance_id for instance_id, with_replays in requests if not with_replays})
    heads: dict[int, Item] = {}
    if plain:
        async with core.read() as conn:
            rows = (await conn.execute(_HEADS, {"ids": plain})).all()
        for row in rows:
            created = int(row.created_ms)
            heads[int(row.instance_id)] = Item(
                int(row.instance_id), QUEUE, int(row.receipt_id), row.type, row.body, created, created
            )
    out: list[Item | None] = []
    for instance_id, with_replays in requests:
        out.append(await next_item(core, instance_id, True) if with_replays else heads.get(instance_id))
    return out


async def _take(conn: AsyncConnection, item: Item) -> None:
    """Remove the item from where it waits."""
    if item.source == QUEUE:
        await conn.execute(
            delete(notifications).where(
                (notifications.c.instance_id == item.instance_id)
                & (notifications.c.receipt_id == item.receipt_id)
            )
        )
    else:
        await conn.execute(
            delete(webhook_replays).where(
                (webhook_replays.c.instance_id == item.instance_id)
                & (webhook_replays.c.receipt_id == item.receipt_id)
            )
        )


async def _log(
    conn: AsyncConnection, item: Item, attempt: int, outcome: Outcome, result: str, next_ms: int | None
) -> None:
    await conn.execute(
        insert(webhook_attempts).values(
            instance_id=item.instance_id,
            receipt_id=item.receipt_id,
            type=item.kind,
            source=item.source,
            attempt=attempt,
            at_ms=outcome.at_ms,
            latency_ms=outcome.latency_ms,
            status_code=outcome.status_code,
            error=outcome.error[:400],
            outcome=result,
            next_attempt_ms=next_ms,
        )
    )


async def record_delivered_many(core: Core, batch: list[tuple[Item, int, Outcome, bool]]) -> list[None]:
    """Receivers answered 200: the notifications leave the queue and are kept for replay.

    One transaction for many notifications (of different instances: one each at most).
    """
    if not batch:
        return []
    queue_ids = [item.receipt_id for item, *_ in batch if item.source == QUEUE]
    replay_ids = [item.receipt_id for item, *_ in batch if item.source == REPLAY]
    retry_instances = [item.instance_id for item, _, _, had_retry in batch if had_retry]
    async with core.tx() as tx:
        conn = tx.conn
        if queue_ids:
            await conn.execute(_TAKE_QUEUED, {"ids": queue_ids})
            # The periodic purge may have moved one to the dead letters while it was in flight.
            await conn.execute(_FORGET_DEAD, {"ids": queue_ids})
        if replay_ids:
            await conn.execute(_TAKE_REPLAYS, {"ids": replay_ids})
            await conn.execute(_FORGET_DELIVERED, {"ids": replay_ids})
        await conn.execute(
            _KEEP_DELIVERED,
            [
                {
                    "receipt_id": item.receipt_id,
                    "instance_id": item.instance_id,
                    "type": item.kind,
                    "body": item.body,
                    "created_ms": item.created_ms,
                    "delivered_ms": outcome.at_ms,
                }
                for item, _, outcome, _ in batch
            ],
        )
        await conn.execute(
            _LOG_ATTEMPTS,
            [
                {
                    "instance_id": item.instance_id,
                    "receipt_id": item.receipt_id,
                    "type": item.kind,
                    "source": item.source,
                    "attempt": attempt,
                    "at_ms": outcome.at_ms,
                    "latency_ms": outcome.latency_ms,
                    "status_code": outcome.status_code,
                    "error": outcome.error[:400],
                    "outcome": DELIVERED,
                    "next_attempt_ms": None,
                }
                for item, attempt, outcome, _ in batch
            ],
        )
        if retry_instances:
            await conn.execute(_FORGET_RETRIES, {"ids": retry_instances})
    return [None] * len(batch)


async def record_failed(core: Core, item: Item, retry: Retry, outcome: Outcome, had_retry: bool) -> None:
    """An attempt failed: remember the attempt count and when to try again."""
    values = {
        "source": retry.source,
        "receipt_id": retry.receipt_id,
        "attempts": retry.attempts,
        "first_failure_ms": retry.first_failure_ms,
        "next_attempt_ms": retry.next_attempt_ms,
        "last_error": retry.last_error[:400],
    }
    async with core.tx() as tx:
        if had_retry:
            done = await tx.conn.execute(
                update(webhook_retries)
                .where(webhook_retries.c.instance_id == item.instance_id)
                .values(**values)
            )
            if not done.rowcount:
                had_retry = False
        if not had_retry:
            await tx.conn.execute(insert(webhook_retries).values(instance_id=item.instance_id, **values))
        await _log(tx.conn, item, retry.attempts, outcome, FAILED, retry.next_attempt_ms)


async def record_dead(core: Core, item: Item, attempts: int, reason: str) -> None:
    """Retention ran out: move the notification to the dead letters (never drop it silently)."""
    now = now_ms()
    async with core.tx() as tx:
        conn = tx.conn
        await _take(conn, item)
        await conn.execute(delete(dead_letters).where(dead_letters.c.receipt_id == item.receipt_id))
        await conn.execute(
            insert(dead_letters).values(
                receipt_id=item.receipt_id,
                instance_id=item.instance_id,
                type=item.kind,
                body=item.body,
                created_ms=item.created_ms,
                dead_ms=now,
                reason=reason[:400],
                attempts=attempts,
            )
        )
        await _log(conn, item, attempts, Outcome(now, 0, None, reason), DEAD, None)
        await conn.execute(delete(webhook_retries).where(webhook_retries.c.instance_id == item.instance_id))


async def forget_retry(core: Core, instance_id: int) -> None:
    async with core.tx() as tx:
        await tx.conn.execute(delete(webhook_retries).where(webhook_retries.c.instance_id == instance_id))


def _retry(row: Any) -> Retry:
    return Retry(
        row.source,
        int(row.receipt_id),
        int(row.attempts),
        int(row.first_failure_ms),
        int(row.next_attempt_ms),
        row.last_error,
    )


async def load_retries(core: Core) -> dict[int, Retry]:
    async with core.read() as conn:
        rows = (await conn.execute(select(webhook_retries))).all()
    return {int(r.instance_id): _retry(r) for r in rows}


async def instances_with_work(core: Core) -> tuple[set[int], set[int]]:
    """Instances with queued notifications, and instances with queued replays."""
    async with core.read() as conn:
        queued = {
            int(i) for i in (await conn.execute(select(notifications.c.instance_id).distinct())).scalars()
        }
        replays = {
            int(i) for i in (await conn.execute(select(webhook_replays.c.instance_id).distinct())).scalars()
        }
    return queued, replays


# --- replay and dead letters -------------------------------------------------------------------


async def _requeue(core: Core, instance_id: int, rows: Iterable[Any]) -> int:
    """Queue rows (receipt_id, type, body, created_ms) again for the instance's webhook."""
    rows = list(rows)
    if not rows:
        return 0
    now = now_ms()
    count = 0
    async with core.tx() as tx:
        waiting = set(
            (
                await tx.conn.execute(
                    select(webhook_replays.c.receipt_id).where(
                        (webhook_replays.c.instance_id == instance_id)
                        & webhook_replays.c.receipt_id.in_([r.receipt_id for r in rows])
                    )
                )
            ).scalars()
        )
        fresh = [r for r in rows if r.receipt_id not in waiting]
        if fresh:
            await tx.conn.execute(
                insert(webhook_replays),
                [
                    {
                        "instance_id": instance_id,
                        "receipt_id": r.receipt_id,
                        "type": r.type,
                        "body": r.body,
                        "created_ms": r.created_ms,
                        "queued_ms": now,
                    }
                    for r in fresh
                ],
            )
            count = len(fresh)
        ids = [r.receipt_id for r in rows]
        await tx.conn.execute(
            delete(dead_letters).where(
                (dead_letters.c.instance_id == instance_id) & dead_letters.c.receipt_id.in_(ids)
            )
        )
        dispatcher = core.dispatcher
        if dispatcher is not None:
            tx.on_commit(lambda: dispatcher.replays_queued(instance_id))
    return count


async def replay(
    core: Core, instance_id: int, *, from_receipt_id: int | None = None, since_ms: int | None = None
) -> int:
    """Deliver again every notification the webhook acknowledged from a receiptId or a moment on.

    Only notifications still within retention are kept for replay. Returns how many were queued.
    """
    if (from_receipt_id is None) == (since_ms is None):
        raise DeliveryError("give exactly one of fromReceiptId or since")
    oldest = now_ms() - core.settings.retention_seconds * 1000
    cond = (webhook_delivered.c.instance_id == instance_id) & (webhook_delivered.c.created_ms >= oldest)
    if from_receipt_id is not None:
        cond = cond & (webhook_delivered.c.receipt_id >= from_receipt_id)
    else:
        cond = cond & (webhook_delivered.c.created_ms >= since_ms)
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(
                    webhook_delivered.c.receipt_id,
                    webhook_delivered.c.type,
                    webhook_delivered.c.body,
                    webhook_delivered.c.created_ms,
                )
                .where(cond)
                .order_by(webhook_delivered.c.receipt_id)
                .limit(MAX_REQUEUE)
            )
        ).all()
    return await _requeue(core, instance_id, rows)


async def resend_dead_letters(core: Core, instance_id: int, receipt_ids: list[int] | None) -> int:
    """Queue dead letters again (all of the instance's, or the given ones)."""
    cond = dead_letters.c.instance_id == instance_id
    if receipt_ids is not None:
        cond = cond & dead_letters.c.receipt_id.in_(receipt_ids)
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(
                    dead_letters.c.receipt_id,
                    dead_letters.c.type,
                    dead_letters.c.body,
                    dead_letters.c.created_ms,
                )
                .where(cond)
                .order_by(dead_letters.c.receipt_id)
                .limit(MAX_REQUEUE)
            )
        ).all()
    return await _requeue(core, instance_id, rows)


async def delete_dead_letter(core: Core, instance_id: int, receipt_id: int) -> bool:
    async with core.tx() as tx:
        result = await tx.conn.execute(
            delete(dead_letters).where(
                (dead_letters.c.instance_id == instance_id) & (dead_letters.c.receipt_id == receipt_id)
            )
        )
    return bool(result.rowcount)


async def move_expired_to_dead_letters(conn: AsyncConnection, oldest_ms: int, reason: str) -> int:
    """Move every queued notification created before ``oldest_ms`` to the dead letters."""
    now = now_ms()
    expired = notifications.c.created_ms < oldest_ms
    await conn.execute(
        delete(dead_letters).where(
            dead_letters.c.receipt_id.in_(select(notifications.c.receipt_id).where(expired))
        )
    )
    await conn.execute(
        insert(dead_letters).from_select(
            ["receipt_id", "instance_id", "type", "body", "created_ms", "dead_ms", "reason", "attempts"],
            select(
                notifications.c.receipt_id,
                notifications.c.instance_id,
                notifications.c.type,
                notifications.c.body,
                notifications.c.created_ms,
                literal(now),
                literal(reason),
                literal(0),
            ).where(expired),
        )
    )
    result = await conn.execute(delete(notifications).where(expired))
    return int(result.rowcount or 0)


# --- reading: status, log, dead letters ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    queued: int
    replays: int
    dead_letters: int


async def counts(core: Core, instance_id: int) -> Counts:
    async with core.read() as conn:
        queued = await conn.scalar(
            select(func.count()).select_from(notifications).where(notifications.c.instance_id == instance_id)
        )
        replays = await conn.scalar(
            select(func.count())
            .select_from(webhook_replays)
            .where(webhook_replays.c.instance_id == instance_id)
        )
        dead = await conn.scalar(
            select(func.count()).select_from(dead_letters).where(dead_letters.c.instance_id == instance_id)
        )
    return Counts(int(queued or 0), int(replays or 0), int(dead or 0))


async def retry_state(core: Core, instance_id: int) -> Retry | None:
    async with core.read() as conn:
        row = (
            await conn.execute(select(webhook_retries).where(webhook_retries.c.instance_id == instance_id))
        ).first()
    return None if row is None else _retry(row)


async def attempts_log(
    core: Core, instance_id: int, *, limit: int, before_id: int | None = None, receipt_id: int | None = None
) -> list[Any]:
    """The instance's delivery log, newest first."""
    cond = webhook_attempts.c.instance_id == instance_id
    if before_id is not None:
        cond = and_(cond, webhook_attempts.c.id < before_id)
    if receipt_id is not None:
        cond = and_(cond, webhook_attempts.c.receipt_id == receipt_id)
    async with core.read() as conn:
        return list(
            (
                await conn.execute(
                    select(webhook_attempts).where(cond).order_by(webhook_attempts.c.id.desc()).limit(limit)
                )
            ).all()
        )


async def dead_letter_list(
    core: Core, instance_id: int, *, limit: int, after_receipt_id: int = 0
) -> list[Any]:
    async with core.read() as conn:
        return list(
            (
                await conn.execute(
                    select(dead_letters)
                    .where(
                        (dead_letters.c.instance_id == instance_id)
                        & (dead_letters.c.receipt_id > after_receipt_id)
                    )
                    .order_by(dead_letters.c.receipt_id)
                    .limit(limit)
                )
            ).all()
        )


# --- housekeeping ------------------------------------------------------------------------------------


async def purge(core: Core) -> int:
    """Drop log rows and replay copies older than retention, and dead letters past their keep time."""
    now = now_ms()
    oldest = now - core.settings.retention_seconds * 1000
    removed = 0
    async with core.tx() as tx:
        for stmt in (
            delete(webhook_attempts).where(webhook_attempts.c.at_ms < oldest),
            delete(webhook_delivered).where(webhook_delivered.c.created_ms < oldest),
            delete(dead_letters).where(
                dead_letters.c.dead_ms < now - core.settings.webhook_dead_letter_seconds * 1000
            ),
        ):
            result = await tx.conn.execute(stmt)
            removed += int(result.rowcount or 0)
    return removed
