"""The webhook dispatcher: pushes each instance's notifications to its ``webhookUrl``.

* FIFO per instance: one notification of an instance is in flight at a time, and the next one
  waits until the current one is answered 200 (then it leaves the queue).
* Instances in parallel, bounded: at most ``webhook_concurrency`` POSTs are in flight overall.
  No task exists per instance; an instance with work has one timer in ``core.timers``
  (key ``("webhook", id)``), woken by ``core.hub`` after each committed notification.
* Failures wait (fixed 60 s like GREEN-API, or exponential backoff) without holding anything:
  the failing instance just has a later timer, so it never delays another instance.
* Batched bookkeeping: the next notification of every instance ready at the same moment is read
  with one statement, and the deliveries answered meanwhile are recorded in one transaction
  (``batching.Coalescer``); the POSTs go out on kept-alive connections (``http.WebhookClient``),
  each new one checked by the outbound rule.
* Durable: the attempt count and the next attempt time live in ``webhook_retries``; on start,
  every instance with a webhookUrl and queued work is planned again. A ``kill -9`` between the
  receiver's 200 and our commit re-sends that one notification (at-least-once, same event id).
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING

import structlog
from prometheus_client import Counter, Histogram

from verdigris.outbound import public_error, webhooks_may_go_private
from verdigris.store.clock import now_ms
from verdigris.webhooks import service
from verdigris.webhooks.batching import Coalescer
from verdigris.webhooks.http import WebhookClient
from verdigris.webhooks.service import Item, Options, Outcome, Retry

if TYPE_CHECKING:
    from verdigris.core import Core
    from verdigris.instances.service import InstanceRecord

log = structlog.get_logger("verdigris.webhooks")

PURGE_EVERY_MS = 10 * 60 * 1000
STEP_ERROR_PAUSE_MS = 5_000

ATTEMPTS = Counter(
    "verdigris_webhook_attempts", "Webhook POST attempts by result (delivered, failed, dead)", ["outcome"]
)
LATENCY = Histogram(
    "verdigris_webhook_attempt_seconds",
    "Time a webhook receiver took to answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180),
)


def _key(instance_id: int) -> tuple[str, int]:
    return ("webhook", instance_id)


class WebhookDispatcher:
    def __init__(self, core: Core) -> None:
        self.core = core
        settings = core.settings
        self._sem = asyncio.Semaphore(settings.webhook_concurrency)
        self._client: WebhookClient | None = None
        # Instances whose webhook is failing: the durable retry state, mirrored in memory.
        self._retry: dict[int, Retry] = {}
        # Instances with notifications queued again by a replay or a dead-letter resend, with a
        # counter bumped on each new replay (so a concurrent replay is never forgotten).
        self._replaying: dict[int, int] = {}
        # Instances with a POST (or its bookkeeping) under way, and those woken meanwhile.
        self._busy: set[int] = set()
        self._again: set[int] = set()
        self._options: dict[int, Options] = {}
        # Reads of the next notification and records of deliveries, batched over instances.
        self._next_item: Coalescer[tuple[int, bool], Item | None] = Coalescer(
            lambda requests: service.next_items(core, requests)
        )
        self._delivered: Coalescer[tuple[Item, int, Outcome, bool], None] = Coalescer(
            lambda batch: service.record_delivered_many(core, batch)
        )
        self.delivered_total = 0
        self.failed_total = 0
        self.started = False

    # --- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume: load the retry state and plan every instance that has work waiting."""
        core = self.core
        if not core.settings.webhook_enabled:
            return
        settings = core.settings
        self._client = WebhookClient(
            allow_private=webhooks_may_go_private(settings),
            timeout_s=settings.webhook_timeout_seconds,
            per_host=settings.webhook_concurrency,
            max_idle=settings.webhook_concurrency,
        )
        core.hub.listeners.append(self.wake)
        self.started = True
        await self.resume()
        core.timers.schedule("webhook-purge", now_ms() + PURGE_EVERY_MS, self._purge)

    async def resume(self, parts: frozenset[int] | None = None) -> None:
        """Plan every instance of this process's partitions (or of ``parts``, just leased) that
        has work waiting, with its durable retry state (at start, and when partitions move here)."""
        core = self.core
        if not self.started:
            return
        retries = await service.load_retries(core)
        queued, replays = await service.instances_with_work(core)
        now = now_ms()
        leases = core.webhook_leases
        for instance_id in sorted(queued | replays | set(retries)):
            if not leases.owns(instance_id) or (
                parts is not None and leases.part_of(instance_id) not in parts
            ):
                continue
            retry = retries.get(instance_id)
            if retry is not None:
                self._retry[instance_id] = retry
            if instance_id in replays:
                self._replaying.setdefault(instance_id, 0)
            due = max(now, retry.next_attempt_ms) if retry is not None else now
            core.timers.schedule(_key(instance_id), due, partial(self._run, instance_id))

    async def stop(self) -> None:
        self.started = False
        if self.wake in self.core.hub.listeners:
            self.core.hub.listeners.remove(self.wake)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- wake-ups --------------------------------------------------------------------------------

    def wake(self, instance_id: int) -> None:
        """Something new for the instance (a notification, a settings change): plan a run now
        (in the process that holds the instance's partition; every process hears of it)."""
        if not self.started or not self.core.webhook_leases.owns(instance_id):
            return
        rec = self.core.instances.peek(instance_id)
        if rec is not None and not rec.settings.get("webhookUrl") and instance_id not in self._retry:
            return  # a polling instance: nothing to push
        if instance_id in self._busy:
            self._again.add(instance_id)
            return
        retry = self._retry.get(instance_id)
        url = rec.settings.get("webhookUrl") if rec is not None else None
        if retry is not None and retry.url == url and retry.next_attempt_ms > now_ms():
            return  # waiting out a failure; its timer is set
        self.core.timers.schedule(_key(instance_id), now_ms(), partial(self._run, instance_id))

    def replays_queued(self, instance_id: int) -> None:
        self._replaying[instance_id] = self._replaying.get(instance_id, 0) + 1
        self.wake(instance_id)

    def options_changed(self, instance_id: int, options: Options) -> None:
        self._options[instance_id] = options

    # --- one step for one instance ---------------------------------------------------------------

    async def _run(self, instance_id: int) -> None:
        if not self.core.webhook_leases.owns(instance_id):
            return  # its partition moved to another process, which planned it
        if instance_id in self._busy:
            self._again.add(instance_id)
            return
        self._busy.add(instance_id)
        due: int | None = None
        try:
            due = await self._step(instance_id)
        except Exception:
            # The database was unavailable or similar: nothing was lost, try again a bit later.
            log.exception("webhook step failed", instance=instance_id)
            due = now_ms() + STEP_ERROR_PAUSE_MS
        finally:
            self._busy.discard(instance_id)
            again = instance_id in self._again
            self._again.discard(instance_id)
        if due is None and again:
            due = now_ms()
        if due is not None and self.started:
            self.core.timers.schedule(_key(instance_id), due, partial(self._run, instance_id))

    async def _step(self, instance_id: int) -> int | None:
        """Push the instance's next notification once; returns when to run again (None: idle)."""
        core = self.core
        if core.changes.exact:
            await core.changes.sync()  # a URL, token or measure changed through another process
        rec = await core.instances.get(instance_id)
        url = str(rec.settings.get("webhookUrl") or "") if rec is not None else ""
        if rec is None or not url:
            return None  # deleted, or polling: the queue stays for receiveNotification
        if not core.moderation.may_push(rec.account_id):
            return None  # blocked or suspended by the operator: the queue waits; lifting wakes it
        retry = self._retry.get(instance_id)
        now = now_ms()
        if retry is not None and retry.next_attempt_ms > now and retry.url in (None, url):
            return retry.next_attempt_ms
        async with self._sem:
            generation = self._replaying.get(instance_id)
            item = await self._next_item((instance_id, generation is not None))
            if generation is not None and (item is None or item.source == service.QUEUE):
                # No replay left: stop looking, unless a new one arrived meanwhile.
                if self._replaying.get(instance_id) == generation:
                    del self._replaying[instance_id]
            if item is None:
                if retry is not None:
                    self._retry.pop(instance_id, None)
                    await service.forget_retry(core, instance_id)
                return None
            if retry is not None and not retry.same_item(item):
                retry = None  # the failing notification left (deleted, cleared): start afresh
            attempts = retry.attempts if retry is not None else 0
            if item.expired(core.settings, now):
                reason = f"not delivered within the retention period after {attempts} attempts" + (
                    f"; last error: {retry.last_error}" if retry is not None and retry.last_error else ""
                )
                await service.record_dead(core, item, attempts, reason)
                ATTEMPTS.labels("dead").inc()
                self._retry.pop(instance_id, None)
                return now_ms()
            attempt = attempts + 1
            outcome = await self._post(rec, url, item, attempt)
        LATENCY.observe(outcome.latency_ms / 1000)
        had_retry = instance_id in self._retry
        if outcome.ok:
            await self._delivered((item, attempt, outcome, had_retry))
            self._retry.pop(instance_id, None)
            self.delivered_total += 1
            ATTEMPTS.labels("delivered").inc()
            return now_ms()
        delay = service.retry_delay_ms(core.settings, attempt)
        error = outcome.error or f"HTTP {outcome.status_code}"
        new = Retry(
            item.source,
            item.receipt_id,
            attempt,
            retry.first_failure_ms if retry is not None else outcome.at_ms,
            now_ms() + delay,
            error,
            url,
        )
        await service.record_failed(core, item, new, outcome, had_retry)
        self._retry[instance_id] = new
        self.failed_total += 1
        ATTEMPTS.labels("failed").inc()
        if attempt == 1 or attempt % 10 == 0:
            log.info(
                "webhook delivery failed",
                instance=instance_id,
                receipt=item.receipt_id,
                attempt=attempt,
                error=error,
                retry_in_ms=delay,
            )
        return new.next_attempt_ms

    async def _post(self, rec: InstanceRecord, url: str, item: Item, attempt: int) -> Outcome:
        client = self._client
        assert client is not None, "dispatcher not started"
        options = await self._options_for(rec.id)
        body = item.body.encode()
        token = str(rec.settings.get("webhookUrlToken") or "")
        headers = service.request_headers(token, options, item, body, attempt, int(time.time()))
        at = now_ms()
        started = time.perf_counter()
        status: int | None = None
        error = ""
        try:
            status = await client.post(url, body, headers)
            if status != 200:
                error = f"HTTP {status}"
        except Exception as exc:  # a bad URL and the like: a failed attempt, never a crash
            # The tenant reads this in the delivery log: one text for every network failure (so the
            # log is no port scanner); the operator's log keeps the detail.
            error = public_error(exc, self.core.settings.webhook_timeout_seconds)
            log.info("webhook POST failed", instance=rec.id, detail=f"{type(exc).__name__}: {exc}")
        latency = int((time.perf_counter() - started) * 1000)
        return Outcome(at, latency, status, error)

    async def _options_for(self, instance_id: int) -> Options:
        options = self._options.get(instance_id)
        if options is None:
            options = await service.get_options(self.core, instance_id)
            if len(self._options) > 100_000:
                self._options.clear()
            self._options[instance_id] = options
        return options

    async def _purge(self) -> None:
        try:
            removed = await service.purge(self.core)
            if removed:
                log.info("old webhook records removed", count=removed)
        finally:
            if self.started:
                self.core.timers.schedule("webhook-purge", now_ms() + PURGE_EVERY_MS, self._purge)

    # --- facts for the API -----------------------------------------------------------------------

    def retry_of(self, instance_id: int) -> Retry | None:
        return self._retry.get(instance_id)
