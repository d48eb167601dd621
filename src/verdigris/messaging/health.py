"""How instances are doing: what waits in their queues, how far their notifications lag, what their
webhook last failed on, and which ones have gone quiet.

Read-only, for the people who look: the console's instance page (:func:`of_instance`), the
Prometheus scrape (:func:`fleet`, totals by state plus the worst few instances, so the label
cardinality stays bounded whatever the number of instances) and the operator's list of instances
that are authorized but silent (:func:`silent`), the "zombie sessions" of other gateways.

*Webhook lag* is the age of the oldest notification still waiting in an instance's queue: for an
instance with a ``webhookUrl`` it is how far its webhook is behind, for a polling instance how far
its poller is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from verdigris.instances.models import instance_state_history, instances
from verdigris.instances.service import AUTHORIZED, STARTING
from verdigris.messaging.models import WAITING_ROW, messages, notifications
from verdigris.store.clock import now_ms
from verdigris.webhooks.models import webhook_attempts, webhook_retries

if TYPE_CHECKING:
    from verdigris.core import Core
    from verdigris.instances.service import InstanceRecord


@dataclass(frozen=True, slots=True)
class WebhookFailure:
    at_ms: int
    error: str  # the receiver's answer ("HTTP 500") or why none came (timeout, refused, ...)


@dataclass(frozen=True, slots=True)
class InstanceHealth:
    queued: int  # outgoing messages waiting to be sent (showMessagesQueue)
    notifications: int  # notifications waiting to be taken (getWebhooksCount)
    lag_ms: int  # age of the oldest waiting notification; 0 when none waits
    webhook: bool  # notifications are pushed to a webhookUrl (else polled)
    failing_since_ms: int | None  # the webhook keeps failing on the queue head since then
    attempts: int  # attempts made on that notification so far
    last_failure: WebhookFailure | None  # the latest failed webhook attempt, even if later ones passed


def _live_since(core: Core) -> int:
    return now_ms() - core.settings.retention_seconds * 1000


def _failure(row: Any) -> WebhookFailure:
    # The dispatcher's words: "HTTP 500", or the one public text for a failure without an answer.
    return WebhookFailure(int(row.at_ms), row.error or f"HTTP {row.status_code}")


async def of_instance(core: Core, rec: InstanceRecord) -> InstanceHealth:
    """One instance's health, for its console page."""
    now = now_ms()
    async with core.read() as conn:
        queued = await conn.scalar(
            select(func.count()).select_from(messages).where((messages.c.instance_id == rec.id) & WAITING_ROW)
        )
        waiting, oldest = (
            await conn.execute(
                select(func.count(), func.min(notifications.c.created_ms)).where(
                    (notifications.c.instance_id == rec.id)
                    & (notifications.c.created_ms >= _live_since(core))
                )
            )
        ).one()
        retry = (
            await conn.execute(select(webhook_retries).where(webhook_retries.c.instance_id == rec.id))
        ).first()
        failed = (
            await conn.execute(
                select(webhook_attempts)
                .where(
                    (webhook_attempts.c.instance_id == rec.id) & (webhook_attempts.c.outcome != "delivered")
                )
                .order_by(webhook_attempts.c.id.desc())
                .limit(1)
            )
        ).first()
    return InstanceHealth(
        queued=int(queued or 0),
        notifications=int(waiting or 0),
        lag_ms=max(0, now - int(oldest)) if oldest is not None else 0,
        webhook=bool(rec.settings.get("webhookUrl")),
        failing_since_ms=int(retry.first_failure_ms) if retry is not None else None,
        attempts=int(retry.attempts) if retry is not None else 0,
        last_failure=_failure(failed) if failed is not None else None,
    )


@dataclass(frozen=True, slots=True)
class StateTotals:
    instances: int = 0
    queued: int = 0
    notifications: int = 0
    webhooks_failing: int = 0


@dataclass(frozen=True, slots=True)
class Fleet:
    by_state: dict[str, StateTotals]
    laggards: list[tuple[int, float]]  # (instance id, webhook lag in seconds), worst first
    deepest_queues: list[tuple[int, int]]  # (instance id, messages waiting), deepest first


async def fleet(core: Core, top: int) -> Fleet:
    """Totals by instance state, and the ``top`` instances with the oldest waiting notification and
    with the most messages waiting to be sent (for /metrics)."""
    now = now_ms()
    async with core.read() as conn:
        states = {
            int(r.id): str(r.state)
            for r in await conn.execute(
                select(instances.c.id, instances.c.state).where(instances.c.deleted_ms.is_(None))
            )
        }
        queues = {
            int(r[0]): int(r[1])
            for r in await conn.execute(
                select(messages.c.instance_id, func.count())
                .where(WAITING_ROW)
                .group_by(messages.c.instance_id)
            )
        }
        waiting = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in await conn.execute(
                select(notifications.c.instance_id, func.count(), func.min(notifications.c.created_ms))
                .where(notifications.c.created_ms >= _live_since(core))
                .group_by(notifications.c.instance_id)
            )
        }
        failing = set((await conn.execute(select(webhook_retries.c.instance_id))).scalars())
    totals: dict[str, dict[str, int]] = {}
    for instance_id, state in states.items():
        t = totals.setdefault(state, {"instances": 0, "queued": 0, "notifications": 0, "webhooks_failing": 0})
        t["instances"] += 1
        t["queued"] += queues.get(instance_id, 0)
        t["notifications"] += waiting.get(instance_id, (0, 0))[0]
        t["webhooks_failing"] += instance_id in failing
    lags = sorted(
        ((i, max(0, now - oldest) / 1000) for i, (_, oldest) in waiting.items() if i in states),
        key=lambda item: (-item[1], item[0]),
    )
    deepest = sorted(((i, n) for i, n in queues.items() if i in states), key=lambda item: (-item[1], item[0]))
    return Fleet(
        by_state={state: StateTotals(**t) for state, t in totals.items()},
        laggards=lags[:top],
        deepest_queues=deepest[:top],
    )


@dataclass(frozen=True, slots=True)
class SilentInstance:
    id: int
    name: str
    wid: str
    account_id: int | None
    authorized_ms: int  # when it was linked (reboots since then do not count)
    last_message_ms: int | None  # its newest message, incoming or outgoing; None: never any

    @property
    def quiet_since_ms(self) -> int:
        return max(self.authorized_ms, self.last_message_ms or 0)


async def silent(core: Core, hours: float, limit: int = 500) -> list[SilentInstance]:
    """Authorized instances that neither sent nor received a message for more than ``hours``
    (counted from their last message, or from linking when that is later), quietest first."""
    cutoff = now_ms() - int(hours * 3_600_000)

    def newest(direction: str) -> Any:
        return (
            select(func.max(messages.c.created_ms))
            .where((messages.c.instance_id == instances.c.id) & (messages.c.direction == direction))
            .scalar_subquery()
        )

    # Linked since: the first "authorized" after the last time it was neither authorized nor
    # starting (a reboot passes through starting and proves nothing, so it does not count).
    off, on = instance_state_history.alias("off"), instance_state_history.alias("on")
    last_off = (
        select(func.max(off.c.id))
        .where((off.c.instance_id == on.c.instance_id) & off.c.state.notin_([AUTHORIZED, STARTING]))
        .scalar_subquery()
    )
    since = (
        select(func.min(on.c.at_ms))
        .where(
            (on.c.instance_id == instances.c.id)
            & (on.c.state == AUTHORIZED)
            & (on.c.id > func.coalesce(last_off, 0))
        )
        .scalar_subquery()
    )
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(
                    instances.c.id,
                    instances.c.name,
                    instances.c.wid,
                    instances.c.account_id,
                    instances.c.created_ms,
                    since.label("since"),
                    newest("in").label("last_in"),
                    newest("out").label("last_out"),
                ).where((instances.c.state == AUTHORIZED) & instances.c.deleted_ms.is_(None))
            )
        ).all()
    found = []
    for r in rows:
        last = max(int(r.last_in or 0), int(r.last_out or 0)) or None
        item = SilentInstance(
            id=int(r.id),
            name=r.name,
            wid=r.wid,
            account_id=r.account_id,
            authorized_ms=int(r.since or r.created_ms),
            last_message_ms=last,
        )
        if item.quiet_since_ms < cutoff:
            found.append(item)
    found.sort(key=lambda s: (s.quiet_since_ms, s.id))
    return found[:limit]
