"""Work owned by leases: which worker process sends an instance's queue and pushes its webhooks.

Instances are spread over ``VERDIGRIS_WORK_PARTITIONS`` partitions (the instance id modulo their
number). For each kind of work (``send``: the outgoing queues; ``webhook``: the webhook pushes)
each partition is leased by at most one live process at a time (``work_leases``), and only the
holder does that work for the partition's instances, so an instance's pace and webhook order are
kept by one process without routing requests to it. A process takes part in a kind only when it
does that work (a worker or ``all`` process; for webhooks, one with ``VERDIGRIS_WEBHOOK_ENABLED``).

Every worker process beats every third of the lease time (``VERDIGRIS_WORK_LEASE_SECONDS``):

1. it records itself as a live member (``work_members``) and forgets members that stopped beating;
2. it renews its leases;
3. it gives back the partitions above its fair share (the partition count divided by the live
   members, rounded up), so a process that joins gets work; a given-back partition may be taken
   only after one lease time, which lets the sends under way in the old holder finish first;
4. it takes free or expired partitions up to its fair share (``FOR UPDATE SKIP LOCKED``: two
   processes never take the same one) and plans the queued work found in them.

A process that dies stops beating: its leases expire after one lease time and the others take
them over. Expiry is judged by the database's clock, so machines whose clocks differ agree; a
process also stops acting on its leases by its own clock when it could not renew them in time
(a process cut off from the database does not go on sending). On SQLite (one process) and in a
process that only answers (``--role api``) nothing is leased: the process owns everything or
nothing, with the same calls.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Integer,
    String,
    Table,
    bindparam,
    cast,
    delete,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from verdigris.store.clock import now_ms
from verdigris.store.db import metadata

if TYPE_CHECKING:
    from verdigris.core import Core

log = structlog.get_logger("verdigris.leases")

work_leases = Table(
    "work_leases",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("part", Integer, primary_key=True, autoincrement=False),
    Column("holder", String(80), nullable=True),
    Column("expires_ms", BigInteger, nullable=False),
)

work_members = Table(
    "work_members",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("holder", String(80), primary_key=True),
    Column("seen_ms", BigInteger, nullable=False),
)

_DB_NOW = text("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
_TAKE = text(
    """
    UPDATE work_leases SET holder = :holder, expires_ms = :expires
    WHERE kind = :kind AND part IN (
        SELECT part FROM work_leases WHERE kind = :kind AND expires_ms < :now
        ORDER BY part LIMIT :wanted FOR UPDATE SKIP LOCKED
    )
    RETURNING part
    """
)

# Whether the caller still holds the lease named by the bind parameters ``lease_kind``,
# ``lease_part`` and ``lease_holder``, by the database's clock: a statement that moves work
# (the send worker's claim) carries it, so a process whose lease lapsed while it was busy (a late
# beat, a pause) cannot act on a partition another process has taken over meanwhile.
HELD: ColumnElement[bool] = exists(
    select(work_leases.c.part).where(
        (work_leases.c.kind == bindparam("lease_kind"))
        & (work_leases.c.part == bindparam("lease_part"))
        & (work_leases.c.holder == bindparam("lease_holder"))
        & (work_leases.c.expires_ms > cast(func.extract("epoch", func.clock_timestamp()) * 1000, BigInteger))
    )
)

Gained = Callable[[frozenset[int]], Awaitable[None]]


def _monotonic_ms() -> float:
    return time.monotonic() * 1000


def process_name() -> str:
    """This process among the others: host, pid and a random part (pids repeat across restarts)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class WorkLeases:
    def __init__(self, core: Core, kind: str, holder: str, does_work: bool) -> None:
        self.core = core
        self.kind = kind
        self.holder = holder
        settings = core.settings
        self.partitions = settings.work_partitions
        self.lease_ms = int(settings.work_lease_seconds * 1000)
        # Leased only where several processes share the store and this one does the work.
        self.does_work = does_work
        self.shared = not core.db.is_sqlite and does_work
        self.mine: frozenset[int] = frozenset(range(self.partitions)) if not self.shared else frozenset()
        self._valid_until = math.inf if not self.shared else 0.0
        self.members = 1
        self.taken_total = 0
        self.given_total = 0
        # Called with the partitions just taken: plan their queued sends and webhooks (and open
        # their WhatsApp Web sessions); and with those just lost to another process.
        self.on_gained: list[Gained] = []
        self.on_lost: list[Gained] = []

    def part_of(self, instance_id: int) -> int:
        return instance_id % self.partitions

    def owns(self, instance_id: int) -> bool:
        """Whether this process does the work of ``instance_id`` now."""
        if not self.does_work:
            return False
        if not self.shared:
            return True
        return _monotonic_ms() < self._valid_until and instance_id % self.partitions in self.mine

    def fence(self, instance_id: int) -> dict[str, Any] | None:
        """The parameters of :data:`HELD` for ``instance_id``'s partition; None where nothing is
        leased (one process owns everything)."""
        if not self.shared:
            return None
        return {
            "lease_kind": self.kind,
            "lease_part": instance_id % self.partitions,
            "lease_holder": self.holder,
        }

    def part_filter(self, column: Any, parts: frozenset[int] | None = None) -> Any:
        """A WHERE clause keeping rows whose instance id (``column``) is in ``parts`` or, by
        default, in this process's partitions (everything when nothing is leased)."""
        if not self.shared:
            return column.is_not(None) if self.does_work else column.is_(None)
        return (column % self.partitions).in_(sorted(self.mine if parts is None else parts))

    async def start(self) -> None:
        if not self.shared:
            return
        async with self.core.tx() as tx:
            present = set(
                (
                    await tx.conn.execute(select(work_leases.c.part).where(work_leases.c.kind == self.kind))
                ).scalars()
            )
            missing = [p for p in range(self.partitions) if p not in present]
            if missing:
                await tx.conn.execute(
                    pg_insert(work_leases)
                    .values(
                        [{"kind": self.kind, "part": p, "holder": None, "expires_ms": 0} for p in missing]
                    )
                    .on_conflict_do_nothing()
                )
        await self._tick()

    async def _tick(self) -> None:
        try:
            await self.beat()
        except Exception as exc:  # the database is away: the leases lapse by our own clock meanwhile
            log.warning("could not renew the work leases", error=str(exc))
        self.core.timers.schedule(("work-leases", self.kind), now_ms() + self.lease_ms // 3, self._tick)

    async def beat(self) -> None:
        """Renew, rebalance and take over (see the module doc); plans the work of taken partitions."""
        started = _monotonic_ms()
        async with self.core.tx() as tx:
            conn = tx.conn
            now = int(await conn.scalar(_DB_NOW) or 0)
            expires = now + self.lease_ms
            members = work_members.c.kind == self.kind
            await conn.execute(
                pg_insert(work_members)
                .values(kind=self.kind, holder=self.holder, seen_ms=now)
                .on_conflict_do_update(index_elements=["kind", "holder"], set_={"seen_ms": now})
            )
            await conn.execute(
                delete(work_members).where(members & (work_members.c.seen_ms < now - self.lease_ms))
            )
            self.members = max(
                1, int(await conn.scalar(select(func.count()).select_from(work_members).where(members)) or 1)
            )
            mine = (work_leases.c.kind == self.kind) & (work_leases.c.holder == self.holder)
            kept = set(
                (
                    await conn.execute(
                        update(work_leases)
                        .where(mine)
                        .values(expires_ms=expires)
                        .returning(work_leases.c.part)
                    )
                ).scalars()
            )
            fair = math.ceil(self.partitions / self.members)
            if len(kept) > fair:
                surplus = sorted(kept)[fair:]
                # Given back, but free only after one lease time: the sends under way here end first.
                await conn.execute(
                    update(work_leases)
                    .where(mine & work_leases.c.part.in_(surplus))
                    .values(holder=None, expires_ms=expires)
                )
                kept -= set(surplus)
                self.given_total += len(surplus)
            taken: set[int] = set()
            if len(kept) < fair:
                taken = set(
                    (
                        await conn.execute(
                            _TAKE,
                            {
                                "kind": self.kind,
                                "holder": self.holder,
                                "expires": expires,
                                "now": now,
                                "wanted": fair - len(kept),
                            },
                        )
                    ).scalars()
                )
        lost = self.mine - kept
        # Renewed after this process had stopped acting on them (a beat came late): the work
        # dropped meanwhile is planned again, as for partitions just taken.
        regained = kept if started >= self._valid_until else set()
        self.mine = frozenset(kept | taken)
        self.core.metrics.partitions_held.labels(self.kind).set(len(self.mine))
        # Acting on the leases stops by this process's own clock a little before they expire.
        self._valid_until = started + self.lease_ms - self.lease_ms / 6
        if taken or lost:
            self.taken_total += len(taken)
            log.info(
                "work leases moved",
                kind=self.kind,
                taken=sorted(taken),
                lost=sorted(lost),
                holding=len(self.mine),
            )
        if lost:
            for gone in self.on_lost:
                await gone(frozenset(lost))
        if taken or regained:
            for gained in self.on_gained:
                await gained(frozenset(taken | regained))

    async def stop(self) -> None:
        """Give every lease back at once (a clean stop): the others take them on their next beat."""
        if not self.shared:
            return
        self.core.timers.cancel(("work-leases", self.kind))
        held, self.mine, self._valid_until = self.mine, frozenset(), 0.0
        self.core.metrics.partitions_held.labels(self.kind).set(0)
        async with self.core.tx() as tx:
            await tx.conn.execute(
                update(work_leases)
                .where(work_leases.c.holder == self.holder)
                .values(holder=None, expires_ms=0)
            )
            await tx.conn.execute(delete(work_members).where(work_members.c.holder == self.holder))
        log.info("work leases given back", count=len(held))
