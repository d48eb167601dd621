"""The running platform: one object that holds the shared machinery every service uses.

A :class:`Core` is built once per process by :func:`verdigris.app.create_app` (or by the CLI for
offline commands). Services receive it as their first argument; nothing lives in module globals.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris.config import Settings
from verdigris.metrics import Metrics
from verdigris.store.changes import ChangeFeed
from verdigris.store.clock import now_ms
from verdigris.store.db import Database
from verdigris.store.group import GroupCommit
from verdigris.store.leases import WorkLeases, process_name

if TYPE_CHECKING:
    from verdigris.channels.base import Channel
    from verdigris.compliance.moderation import Moderation
    from verdigris.instances.service import InstanceRecord
    from verdigris.licensing.enforce import Licensing
    from verdigris.mail import SmsTransport
    from verdigris.media.service import MediaService
    from verdigris.messaging.notifications import Event, Renderer
    from verdigris.messaging.sender import SendWorker
    from verdigris.screening.service import Screening
    from verdigris.sendpolicy.service import OutgoingPolicy
    from verdigris.store.bus import ClusterBus
    from verdigris.store.direct import Direct
    from verdigris.webhooks.dispatcher import WebhookDispatcher

log = structlog.get_logger("verdigris")

# The connection of the transaction the current task is in, if any (see Core.read).
_CURRENT_TX: ContextVar[AsyncConnection | None] = ContextVar("verdigris_current_tx", default=None)


class Tx:
    """A database transaction plus the actions to run once it has committed.

    Wake-ups (a long-poll, the send worker) must only fire after the rows they announce are
    visible, so services register them with :meth:`on_commit` instead of firing them inline.
    """

    def __init__(self, core: Core, conn: AsyncConnection) -> None:
        self.core = core
        self.conn = conn
        self._after: list[Callable[[], None]] = []
        self._before: list[Callable[[], Awaitable[None]]] = []
        # What this transaction changed that other processes must apply (store/changes.py).
        self.changes: set[tuple[str, int]] = set()
        # Lookups a service may reuse within this transaction (e.g. the instances linked to an
        # account, read up to four times by one sandbox delivery). Cleared by whatever changes them.
        self.memo: dict[Any, Any] = {}

    def on_commit(self, action: Callable[[], None]) -> None:
        self._after.append(action)

    def before_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` last inside the transaction, just before it commits (its writes commit
        with the rest; an error rolls everything back)."""
        self._before.append(action)

    async def _run_before(self) -> None:
        for action in self._before:
            await action()

    def _run_after(self) -> None:
        for action in self._after:
            try:
                action()
            except Exception:  # pragma: no cover - a wake-up must never break a committed request
                log.exception("after-commit action failed")


class NotificationHub:
    """Wakes long-polling readers of an instance's notification queue.

    Only instances with a waiting reader have an entry, so idle instances cost nothing.
    """

    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Future[None]]] = {}
        # Other consumers of "instance X has a new notification" (the webhook dispatcher).
        self.listeners: list[Callable[[int], None]] = []
        # Tells other processes on the same store (store/bus.py), when there are any.
        self.publisher: Callable[[int], None] | None = None

    def notify(self, instance_id: int) -> None:
        if self.publisher is not None:
            self.publisher(instance_id)
        self.notify_local(instance_id)

    def notify_local(self, instance_id: int) -> None:
        for listener in self.listeners:
            listener(instance_id)
        for fut in self._waiters.pop(instance_id, ()):
            if not fut.done():
                fut.set_result(None)

    def subscribe(self, instance_id: int) -> asyncio.Future[None]:
        """A future resolved by the next :meth:`notify` of the instance.

        Subscribe *before* looking at the queue, then wait: nothing committed in between is missed.
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(instance_id, set()).add(fut)
        return fut

    def unsubscribe(self, instance_id: int, fut: asyncio.Future[None]) -> None:
        current = self._waiters.get(instance_id)
        if current is not None:
            current.discard(fut)
            if not current:
                del self._waiters[instance_id]

    @staticmethod
    async def wait(fut: asyncio.Future[None], timeout: float) -> bool:
        """Wait for a subscription; False on timeout."""
        if timeout <= 0:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except TimeoutError:
            return False

    def waiting(self) -> int:
        return sum(len(v) for v in self._waiters.values())


@dataclass(order=True)
class _Timer:
    due_ms: int
    seq: int
    key: Any = field(compare=False)
    action: Callable[[], Awaitable[None]] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Timers:
    """One task that runs actions at due times (a heap, not a task per waiting thing).

    ``schedule(key, due_ms, action)`` replaces any earlier timer with the same key, so an
    instance is in the heap at most once per purpose.
    """

    def __init__(self) -> None:
        self._heap: list[_Timer] = []
        self._by_key: dict[Any, _Timer] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def schedule(self, key: Any, due_ms: int, action: Callable[[], Awaitable[None]]) -> None:
        old = self._by_key.get(key)
        if old is not None:
            if old.due_ms <= due_ms and not old.cancelled:
                return  # an earlier run is already planned; it reschedules itself if needed
            old.cancelled = True
        timer = _Timer(due_ms, next(self._seq), key, action)
        self._by_key[key] = timer
        heapq.heappush(self._heap, timer)
        if self._heap[0] is timer:
            self._wake.set()

    def cancel(self, key: Any) -> None:
        old = self._by_key.pop(key, None)
        if old is not None:
            old.cancelled = True

    def pending(self, key: Any) -> bool:
        return key in self._by_key

    def poke(self) -> None:
        """Look at the due times again now (the sandbox clock moved)."""
        self._wake.set()

    def __len__(self) -> int:
        return len(self._by_key)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="verdigris-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for task in list(self._running):
            task.cancel()

    async def _loop(self) -> None:
        while True:
            while self._heap and self._heap[0].cancelled:
                heapq.heappop(self._heap)
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = (self._heap[0].due_ms - now_ms()) / 1000
            if delay > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                continue
            timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            if self._by_key.get(timer.key) is timer:
                del self._by_key[timer.key]
            task = asyncio.create_task(self._run(timer))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, timer: _Timer) -> None:
        try:
            await timer.action()
        except Exception:
            log.exception("timer action failed", key=str(timer.key))


class Core:
    """Shared machinery of one process."""

    def __init__(self, settings: Settings) -> None:
        from verdigris.instances.service import InstanceCache

        self.settings = settings
        self.db = Database(settings.resolved_database_url())
        # The hot small writes (accepting a message, deleteNotification, a send's hand-over) share
        # commits on SQLite, which has one writer (store/group.py). Not on PostgreSQL yet: there
        # every statement is a round trip a batch's other pieces wait for, and grouped accepts
        # measured 0.6-0.8× the ungrouped figure (4 and 16 lanes; docs/performance.md).
        self.group: GroupCommit[Tx] = GroupCommit(self.tx, lanes=1 if self.db.is_sqlite else 0)
        self.hub = NotificationHub()
        self.timers = Timers()
        self.metrics = Metrics()
        self.metrics.bind(self)
        self.instances = InstanceCache(self)
        self.channels: dict[str, Channel] = {}
        # The services every process has, built by verdigris.app.build_core (which alone sets
        # them, each constructed with this Core): declared here so that their types are exact.
        self.render: Renderer
        self.sender: SendWorker
        self.media: MediaService
        self.dispatcher: WebhookDispatcher
        self.licensing: Licensing
        self.moderation: Moderation
        self.screening: Screening
        self.policy: OutgoingPolicy
        self.sms: SmsTransport
        # Cross-process wake-ups: only when several processes share a PostgreSQL store.
        self.bus: ClusterBus | None = None
        # Changes to instances, measures and licences, shared with the other processes.
        self.changes = ChangeFeed(self)
        # Which instances' sends and webhook pushes this process does (store/leases.py).
        holder = process_name()
        works = settings.role != "api"
        self.leases = WorkLeases(self, "send", holder, works)
        self.webhook_leases = WorkLeases(self, "webhook", holder, works and settings.webhook_enabled)
        # Called for every event of every instance, in its transaction, before the settings decide
        # whether it becomes a notification (the policy engine counts failed sends here).
        self.event_hooks: list[Callable[[Tx, InstanceRecord, Event], Awaitable[None]]] = []
        # Called by channels for every incoming message, inside the transaction that stores it
        # (the customer database's opt-out by reply is one); they must be cheap when not concerned.
        self.incoming_hooks: list[
            Callable[[Tx, InstanceRecord, str, str, dict[str, Any]], Awaitable[None]]
        ] = []
        self.public_url = settings.resolved_public_url()
        self.media_url = settings.resolved_public_media_url()
        # Workspace secrets (instances.service.workspace_value), read from the store once.
        self.secrets: dict[str, str] = {}

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        """A transaction; after-commit actions run once it has committed."""
        async with self.db.transaction() as conn:
            tx = Tx(self, conn)
            token = _CURRENT_TX.set(conn)
            try:
                yield tx
                await tx._run_before()
            finally:
                _CURRENT_TX.reset(token)
        tx._run_after()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads. Inside a transaction of the same task it is that transaction's
        connection, so the read sees the transaction's own writes and takes no second connection
        (e.g. the instance cache loading an instance while a message is being routed).
        """
        current = _CURRENT_TX.get()
        if current is not None:
            yield current
            return
        async with self.db.read() as conn:
            yield conn

    async def fetch(self, stmt: Direct, params: Mapping[str, Any]) -> Any:
        """Run one read statement (store/direct.py) as :meth:`read` would. Outside a transaction on
        SQLite it runs on the store's direct reader, with no connection taken from the pool."""
        current = _CURRENT_TX.get()
        if current is None:
            raw = self.db.direct_reader()
            if raw is not None:
                outcome = stmt.run_on(raw, self.db.reader.dialect, params)
                if outcome is not None:
                    return outcome
        async with self.read() as conn:
            return await stmt.run(conn, params)

    def channel(self, name: str) -> Channel:
        return self.channels[name]
