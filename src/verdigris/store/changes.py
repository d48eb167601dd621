"""Changes every server process must apply before it answers its next request (issue 15, item 3).

Each process keeps instances (token, settings, state, owner), the operator's measures on accounts
and licence entitlements in memory. With several processes on one PostgreSQL store, a change made
through one process must reach the others *before they answer their next request*: a token
rotated through process A must be refused by process B at once.

LISTEN/NOTIFY alone cannot promise that: a notice is delivered some time after the commit, so a
client that gets A's answer and calls B at once can beat the notice. The promise is kept by a
change log read before each request instead:

* Whatever changes such a fact calls :func:`changed` inside its transaction (the one owner of
  the announcement). Just before the commit, the transaction takes the next number of the
  one-row ``cluster_clock`` (its row lock orders the writers: numbers commit in order, with no
  gaps) and writes one ``cluster_changes`` row per changed thing under that number.
* :meth:`ChangeFeed.sync` reads the rows numbered above the last one this process applied and
  applies them (re-reads the instance, the account's measure; drops the licence entitlement).
  The faces (the wire API, the webhook API) call it before they look an instance up. The read
  starts after the request arrived, so it sees every change committed before: exact.
* Cost: one indexed query that returns no rows, shared by every request that arrives while one
  is in flight (at most one read runs and one waits, whatever the request rate). On SQLite (one
  process) nothing is written or read.
* After the commit the change is also announced on the cluster bus (NOTIFY, store/bus.py), so idle
  processes apply it within milliseconds without waiting for a request; a timer re-reads the log
  every ``SYNC_EVERY_MS`` in case a notice was lost, and deletes rows older than ``KEEP_MS``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from verdigris.store.clock import now_ms
from verdigris.store.db import BigId, metadata

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core, Tx

log = structlog.get_logger("verdigris.changes")

# What changed: the key is an instance id, an account id or an instance id (its licences).
INSTANCE = "instance"
ACCOUNT = "account"
LICENCE = "licence"
KINDS = (INSTANCE, ACCOUNT, LICENCE)
# The key of a licence change that concerns every instance (the unlicensed policy).
EVERY_INSTANCE = 0

SYNC_EVERY_MS = 30_000
KEEP_MS = 15 * 60_000

cluster_clock = Table(
    "cluster_clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
)

cluster_changes = Table(
    "cluster_changes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("key", BigInteger, nullable=False),
    # The process that made the change (it has applied it already).
    Column("origin", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)
Index("ix_cluster_changes_seq", cluster_changes.c.seq)

_SINCE = (
    select(cluster_changes.c.seq, cluster_changes.c.kind, cluster_changes.c.key, cluster_changes.c.origin)
    .where(cluster_changes.c.seq > bindparam("last", type_=BigInteger))
    .order_by(cluster_changes.c.seq, cluster_changes.c.id)
)
_TICK = (
    update(cluster_clock)
    .where(cluster_clock.c.id == 1)
    .values(seq=cluster_clock.c.seq + 1)
    .returning(cluster_clock.c.seq)
)


def changed(tx: Tx, kind: str, key: int | None) -> None:
    """Announce that ``tx`` changes the ``kind`` fact of ``key`` (an instance's token, settings,
    state, owner or existence; an account's measure; an instance's licences).

    This process applies its own change itself (as it always has); every other process applies
    it before it answers its next request. The only way such a change is announced.
    """
    assert kind in KINDS, kind
    if key is None:
        return
    feed = tx.core.changes
    if not feed.shared:
        return
    first = not tx.changes
    tx.changes.add((kind, int(key)))
    if first:
        tx.before_commit(lambda: feed.write(tx))
        tx.on_commit(feed.announce)


class ChangeFeed:
    """This process's position in the change log and the code that applies what it reads."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.last = 0
        self.started = False
        self.applied = 0
        self._running: asyncio.Future[None] | None = None
        self._next: asyncio.Future[None] | None = None
        # Publishes "the log has grown" to the other processes (set by store/bus.py).
        self.announcer: Callable[[], None] | None = None

    @property
    def shared(self) -> bool:
        """Whether other processes may share the store (PostgreSQL)."""
        return not self.core.db.is_sqlite

    @property
    def exact(self) -> bool:
        """Whether requests check the log first (see the module doc)."""
        return self.started and self.core.settings.cluster_sync

    # --- writing -------------------------------------------------------------------------------

    async def write(self, tx: Tx) -> None:
        """Number the transaction's changes and log them (runs last, just before the commit)."""
        if not tx.changes:
            return
        seq = int(await tx.conn.scalar(_TICK) or 0)
        at = now_ms()
        await tx.conn.execute(
            insert(cluster_changes),
            [
                {"seq": seq, "kind": kind, "key": key, "origin": self.origin, "at_ms": at}
                for kind, key in sorted(tx.changes)
            ],
        )

    def announce(self) -> None:
        """Tell the listening processes that the log has grown (through the cluster bus, when it
        runs; a lost notice costs latency only)."""
        if self.announcer is not None:
            self.announcer()

    # --- reading -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start at the log's current end (nothing is cached yet), listen, plan the re-reads."""
        if not self.shared:
            return
        async with self.core.db.read() as conn:
            self.last = int(
                await conn.scalar(select(cluster_clock.c.seq).where(cluster_clock.c.id == 1)) or 0
            )
        self.started = True

        async def tick() -> None:
            try:
                await self.sync()
                await self.prune()
            except Exception as exc:
                log.warning("could not read the change log", error=str(exc))
            self.core.timers.schedule(("changes", "sync"), now_ms() + SYNC_EVERY_MS, tick)

        self.core.timers.schedule(("changes", "sync"), now_ms() + SYNC_EVERY_MS, tick)

    def stop(self) -> None:
        self.started = False

    def on_notice(self, origin: str) -> None:
        """Another process announced a change (store/bus.py): apply it now, not at the next request."""
        if origin != self.origin and self.started:
            asyncio.ensure_future(self._sync_quietly())

    async def _sync_quietly(self) -> None:
        try:
            await self.sync()
        except Exception as exc:  # the next request or the timer reads again
            log.warning("could not read the change log", error=str(exc))

    async def sync(self) -> None:
        """Apply every change committed before this call (one shared read, see the module doc)."""
        if not self.started:
            return
        loop = asyncio.get_running_loop()
        if self._running is None:
            fut = self._running = loop.create_future()
            asyncio.ensure_future(self._read_loop())
        else:
            # The read in flight may have started before this call: wait for the next one.
            if self._next is None:
                self._next = loop.create_future()
            fut = self._next
        await asyncio.shield(fut)

    async def _read_loop(self) -> None:
        while self._running is not None:
            fut = self._running
            try:
                await self._read()
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # retrieved: callers that gave up must not log it again
            else:
                fut.set_result(None)
            self._running, self._next = self._next, None

    async def _read(self) -> None:
        async with self.core.db.read() as conn:
            rows = (await conn.execute(_SINCE, {"last": self.last})).all()
            if not rows:
                return
            if int(rows[0].seq) > self.last + 1:
                # Rows this process never read were deleted (it stalled longer than KEEP_MS):
                # start over from the store.
                log.warning("change log gap: reloading every cached fact", last=self.last)
                await self._reload_all(conn)
            else:
                done: set[tuple[str, int]] = set()
                for row in rows:
                    what = (row.kind, int(row.key))
                    if row.origin != self.origin and what not in done:
                        done.add(what)
                        await self._apply(conn, *what)
            self.last = int(rows[-1].seq)

    async def _apply(self, conn: AsyncConnection, kind: str, key: int) -> None:
        core = self.core
        self.applied += 1
        if kind == INSTANCE:
            await core.instances.refresh(key, conn)
        elif kind == ACCOUNT:
            await core.moderation.refresh(key, conn)
        elif kind == LICENCE and key == EVERY_INSTANCE:
            core.licensing.forget_all()
        elif kind == LICENCE:
            core.licensing.forget(key)
            rec = core.instances.peek(key)
            if rec is not None:
                core.sender.wake(rec)  # a renewal lets held messages go

    async def _reload_all(self, conn: AsyncConnection) -> None:
        core = self.core
        core.instances.clear()
        core.licensing.forget_all()
        await core.moderation.load()

    async def prune(self) -> int:
        """Delete rows older than ``KEEP_MS`` (never the newest: it shows a stalled process its gap)."""
        async with self.core.tx() as tx:
            newest = select(cluster_clock.c.seq).where(cluster_clock.c.id == 1).scalar_subquery()
            result = await tx.conn.execute(
                delete(cluster_changes).where(
                    (cluster_changes.c.at_ms < now_ms() - KEEP_MS) & (cluster_changes.c.seq < newest)
                )
            )
        return int(result.rowcount or 0)


# Paths that show nothing cached about instances or accounts.
_NO_SYNC_PATHS = frozenset({"/health", "/ready", "/metrics", "/favicon.ico", "/docs", "/openapi.json"})
_NO_SYNC_PREFIX = "/console/static/"


class SyncBeforeRequests:
    """ASGI middleware: every HTTP request applies the changes committed before it arrived
    (through any process) before it is answered (the wire, partner, webhook and licensing APIs,
    the console). One place, so no face can forget it (the wire front door, front.py, calls
    :func:`before_request` as this does, before it routes)."""

    def __init__(self, app: Any, core: Core) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await before_request(self.core, scope["path"])
        await self.app(scope, receive, send)


async def before_request(core: Core, path: str) -> None:
    """Apply the changes committed before a request to ``path`` arrived, if it may show them."""
    if core.changes.exact and path not in _NO_SYNC_PATHS and not path.startswith(_NO_SYNC_PREFIX):
        await core.changes.sync()
