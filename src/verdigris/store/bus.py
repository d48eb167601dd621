"""Cross-process wake-ups on PostgreSQL (LISTEN/NOTIFY), for several server processes on one store.

In one process, a committed notification wakes the instance's long-polling readers and the webhook
dispatcher through ``core.hub``. With several processes on one PostgreSQL database, the reader or
the dispatcher may live in another process: the hub then also *publishes* the instance ids it was
told about, and every process *listens* and wakes its own readers for ids published elsewhere.

Publishing is batched: ids collected while the event loop runs other work go out as one
``pg_notify`` on a dedicated connection (nothing is added to the transactions on the hot path).
A notification lost in transit (a reconnect) costs latency only: readers re-read the queue when
their long-poll times out and the dispatcher sweeps its queues periodically.

The bus also carries "the change log has grown" (``CHANGES_CHANNEL``, store/changes.py), so idle
processes apply a rotated token, a measure or a licence at once; correctness does not depend on
it (every request reads the log first).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from verdigris.core import Core

log = structlog.get_logger("verdigris.bus")

CHANNEL = "verdigris_notifications"
# "The change log has grown" (store/changes.py); the payload is the announcing process's origin.
CHANGES_CHANNEL = "verdigris_changes"
# "Instances with messages to send" that this process does not send (an API process, or one that
# does not hold the instance's network session), to the processes that send.
SENDS_CHANNEL = "verdigris_sends"
MAX_PAYLOAD = 7000  # PostgreSQL allows 8000 bytes per notification


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://...`` (SQLAlchemy) → ``postgresql://...`` (asyncpg)."""
    scheme, _, rest = url.partition("://")
    return "postgresql://" + rest if scheme.startswith("postgres") else url


class ClusterBus:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._conn: Any = None
        self._pending: set[int] = set()
        self._sends: set[int] = set()
        self._change_pending = False
        self._flushing = False
        self.published = 0
        self.received = 0

    @staticmethod
    def wanted(core: Core) -> bool:
        return not core.db.is_sqlite and core.settings.cluster_notify

    async def start(self) -> None:
        import asyncpg  # the PostgreSQL driver SQLAlchemy uses here

        self._conn = await asyncpg.connect(asyncpg_dsn(self.core.db.url))
        await self._conn.add_listener(CHANNEL, self._on_notify)
        await self._conn.add_listener(CHANGES_CHANNEL, self._on_change)
        self.core.hub.publisher = self.publish
        self.core.changes.announcer = self.announce_change
        if self.core.sender.active:
            await self._conn.add_listener(SENDS_CHANNEL, self._on_sends)
        self.core.sender.handoff = self.hand_off_send
        log.info("listening for other processes' notifications", channel=CHANNEL)

    async def stop(self) -> None:
        self.core.hub.publisher = None
        self.core.changes.announcer = None
        self.core.sender.handoff = None
        if self._conn is not None:
            await self._flush()
            await self._conn.close()
            self._conn = None

    def publish(self, instance_id: int) -> None:
        self._pending.add(instance_id)
        self._schedule()

    def hand_off_send(self, instance_id: int) -> None:
        """Another process's send worker should look at the instance's queue (SendWorker.hand_off)."""
        self._sends.add(instance_id)
        self._schedule()

    def announce_change(self) -> None:
        """The change log has grown (store/changes.py): tell the others, with the next batch."""
        self._change_pending = True
        self._schedule()

    def _schedule(self) -> None:
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush()))

    async def _flush(self) -> None:
        # One flush at a time: an asyncpg connection runs one statement at a time.
        try:
            while (self._pending or self._sends or self._change_pending) and self._conn is not None:
                if self._change_pending:
                    self._change_pending = False
                    await self._send(self.core.changes.origin, CHANGES_CHANNEL)
                sends, self._sends = self._sends, set()
                await self._send_ids(sends, SENDS_CHANNEL)
                ids, self._pending = self._pending, set()
                await self._send_ids(ids, CHANNEL)
        finally:
            self._flushing = False

    async def _send_ids(self, ids: set[int], channel: str) -> None:
        if not ids:
            return
        payload = self.origin + ":"
        for instance_id in ids:
            part = f"{instance_id},"
            if len(payload) + len(part) > MAX_PAYLOAD:
                await self._send(payload.rstrip(","), channel)
                payload = self.origin + ":"
            payload += part
        await self._send(payload.rstrip(","), channel)

    async def _send(self, payload: str, channel: str = CHANNEL) -> None:
        try:
            await self._conn.execute("SELECT pg_notify($1, $2)", channel, payload)
            self.published += 1
            self.core.metrics.cluster_notifies.labels("published").inc()
        except Exception as exc:  # a lost wake-up only costs latency (see the module doc)
            log.warning("could not publish notifications", error=str(exc))

    def _on_sends(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        origin, _, listed = payload.partition(":")
        if origin == self.origin:
            return
        ids = [int(raw) for raw in listed.split(",") if raw.isdigit()]
        asyncio.ensure_future(self._wake_senders(ids))

    async def _wake_senders(self, ids: list[int]) -> None:
        for instance_id in ids:
            try:
                rec = await self.core.instances.get(instance_id)
            except Exception as exc:  # the periodic sweep finds the queue anyway
                log.warning("could not plan a handed-off send", error=str(exc))
                continue
            if rec is not None:
                self.core.sender.wake(rec, handed=True)

    def _on_change(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.core.changes.on_notice(payload)

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        origin, _, ids = payload.partition(":")
        if origin == self.origin:
            return
        self.received += 1
        self.core.metrics.cluster_notifies.labels("received").inc()
        for raw in ids.split(","):
            if raw.isdigit():
                self.core.hub.notify_local(int(raw))
