"""Per-instance, per-method request limits of the wire API (GREEN-API spec section 5).

Each (instance, method) pair may be called ``rate`` times per second. A call over the limit is
answered ``429 Too Many Requests`` with ``Retry-After`` by the router *before* the body is read
or the handler runs, so a refused call has no effect at all (the official Python SDK repeats
POSTs on 429 by itself, which is only safe because of that).

The limiter is a generic cell rate algorithm (GCRA), the token bucket in its one-number form:
per key it keeps the "theoretical arrival time" ``tat`` of the next call. A call at ``now`` is
allowed while ``tat - now`` stays within the burst tolerance; each allowed call moves ``tat`` one
interval (``1 / rate``) on. A key whose ``tat`` lies in the past is a full bucket and is
equivalent to no entry, which is what keeps memory bounded: such keys are swept when the table
grows past its cap. Everything is in-process and synchronous; there is no task per instance.

Several processes on one PostgreSQL store (docs/scaling.md) share the limits instead: the same
algorithm runs as one atomic ``INSERT … ON CONFLICT DO UPDATE … WHERE`` on ``rate_buckets``
(:class:`SharedBuckets`), timed by the database's clock, so an instance gets its documented rate
in total however many processes answer it. The embedded default (SQLite, one process) keeps the
in-memory table: no query on its hot path.

Operators configure the limits in :mod:`verdigris.config` (see docs/rate-limits.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Column, Float, String, Table, text

from verdigris.store.clock import now_ms
from verdigris.store.db import metadata

if TYPE_CHECKING:
    from verdigris.core import Core

# The shared buckets (PostgreSQL): the theoretical arrival time of the next call, in ms of the
# database's clock. A row whose time lies in the past is a full bucket, like no row at all.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("subject", BigInteger, primary_key=True, autoincrement=False),  # an instance (or account) id
    Column("method", String(100), primary_key=True),
    Column("tat_ms", Float, nullable=False),
)

# Requests per second per instance, as documented (spec section 5, 2024–2025 table). Keys are
# lower-case method names, as the router matches them.
DOCUMENTED_RPS: dict[str, float] = {
    # account
    "getsettings": 1,
    "setsettings": 1,
    "getstateinstance": 1,
    "getstatusinstance": 1,
    "reboot": 1,
    "logout": 1,
    "qr": 3,
    "scanqrcode": 1,
    "setprofilepicture": 1,
    "getwasettings": 1,
    "getdeviceinfo": 1,
    # sending
    "sendmessage": 50,
    "sendpoll": 50,
    "sendfilebyurl": 50,
    "sendfilebyupload": 50,
    "sendlocation": 50,
    "sendcontact": 50,
    "forwardmessages": 50,
    "sendbuttons": 50,
    "sendtemplatebuttons": 50,
    "sendlistmessage": 50,
    "sendlink": 50,
    "sendtemplate": 50,
    # receiving
    "receivenotification": 100,
    "deletenotification": 100,
    "downloadfile": 5,
    # journals
    "getchathistory": 1,
    "getmessage": 10,
    "lastincomingmessages": 1,
    "lastoutgoingmessages": 1,
    # read mark
    "readchat": 10,
    # groups
    "creategroup": 1,
    "updategroupname": 1,
    "getgroupdata": 1,
    "addgroupparticipant": 10,
    "removegroupparticipant": 10,
    "setgroupadmin": 10,
    "removeadmin": 10,
    "setgrouppicture": 1,
    "leavegroup": 10,
    # service methods
    "checkwhatsapp": 10,
    "getavatar": 10,
    "getavatarasync": 10,
    "getcontacts": 1,
    "getcontactinfo": 1,
    "getchats": 1,
    "editmessage": 1,
    "deletemessage": 10,
    "archivechat": 10,
    "unarchivechat": 10,
    "setdisappearingchat": 1,
    # queues
    "clearmessagesqueue": 1,
    "showmessagesqueue": 1,
    # statuses
    "sendtextstatus": 5,
    "sendvoicestatus": 5,
    "sendmediastatus": 5,
    "deletestatus": 10,
    "getincomingstatuses": 1,
    "getoutgoingstatuses": 1,
    "getstatusstatistic": 1,
}

# Methods the documentation does not list, where this server picks a value of its own (the spec
# suggests 1–10 rps): credential and account-level actions get the strict end.
CHOSEN_RPS: dict[str, float] = {
    "updateapitoken": 1,
    "getauthorizationcode": 1,
    "getstateinstancehistory": 1,
    "setsystemproxy": 1,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0  # whole seconds to wait, at least 1, when refused
    limit_rps: float = 0.0


ALLOW = Verdict(True)


class RateLimiter:
    """Limits keyed by (instance id, method name); see the module docstring for the algorithm."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        default_rps: float = 10.0,
        multiplier: float = 1.0,
        burst_seconds: float = 1.0,
        overrides: Mapping[str, float] | None = None,
        max_keys: int = 200_000,
    ) -> None:
        self.enabled = enabled
        self.default_rps = default_rps
        self.multiplier = multiplier
        self.burst_seconds = burst_seconds
        self.max_keys = max(1, max_keys)
        table = {**DOCUMENTED_RPS, **CHOSEN_RPS}
        table.update({name.lower(): float(rps) for name, rps in (overrides or {}).items()})
        # name → (interval seconds, burst tolerance seconds); a rate <= 0 means "no limit".
        self._plans: dict[str, tuple[float, float] | None] = {}
        for name, rps in table.items():
            self._plans[name] = self._plan(rps)
        self._default_plan = self._plan(default_rps)
        self._tat: dict[tuple[int, str], float] = {}
        # Set when several processes share the limits (see the module doc); then use :meth:`admit`.
        self.shared: SharedBuckets | None = None

    def _plan(self, rps: float) -> tuple[float, float] | None:
        rate = rps * self.multiplier
        if rate <= 0:
            return None
        interval = 1.0 / rate
        burst = max(1.0, math.floor(rate * self.burst_seconds))  # calls allowed at once
        return interval, (burst - 1) * interval

    def rate_of(self, method: str) -> float:
        """The effective limit of ``method`` in requests per second (0 = unlimited)."""
        plan = self._plans.get(method.lower(), self._default_plan)
        return 0.0 if plan is None else 1.0 / plan[0]

    def check(self, instance_id: int, method: str, now: float | None = None) -> Verdict:
        """Count one call of ``method`` (lower-case) by the instance; refuse it if over the limit."""
        if not self.enabled:
            return ALLOW
        plan = self._plans.get(method, self._default_plan)
        if plan is None:
            return ALLOW
        interval, tolerance = plan
        if now is None:
            now = time.monotonic()
        key = (instance_id, method)
        tat = self._tat.get(key, now)
        if tat < now:
            tat = now
        wait = tat - tolerance - now
        if wait > 0:
            return Verdict(False, max(1, math.ceil(wait)), 1.0 / interval)
        self._tat[key] = tat + interval
        if len(self._tat) > self.max_keys:
            self._sweep(now)
        return ALLOW

    async def admit(self, subject: int, method: str) -> Verdict:
        """:meth:`check` against the shared buckets (one statement), or in memory without them."""
        if self.shared is None:
            return self.check(subject, method)
        if not self.enabled:
            return ALLOW
        plan = self._plans.get(method, self._default_plan)
        if plan is None:
            return ALLOW
        interval, tolerance = plan
        wait_ms = await self.shared.take(subject, method, interval * 1000, tolerance * 1000)
        if wait_ms is None:
            return ALLOW
        return Verdict(False, max(1, math.ceil(wait_ms / 1000)), 1.0 / interval)

    def _sweep(self, now: float) -> None:
        """Drop full buckets (same as absent); if the table is still too big, drop the oldest half."""
        stale = [key for key, tat in self._tat.items() if tat <= now]
        for key in stale:
            del self._tat[key]
        if len(self._tat) > self.max_keys * 0.9:
            # Insertion order approximates age; a dropped key only means a full bucket again.
            for key in list(self._tat)[: len(self._tat) // 2]:
                del self._tat[key]

    def forget(self, instance_id: int) -> None:
        """Release an instance's buckets (e.g. when it is deleted)."""
        for key in [k for k in self._tat if k[0] == instance_id]:
            del self._tat[key]

    def __len__(self) -> int:
        return len(self._tat)


# One call of the GCRA, atomically: the row is created (first call: a full bucket) or moved one
# interval on, unless that would exceed the burst tolerance; then no row comes back (refused).
_TAKE = text(
    """
    INSERT INTO rate_buckets AS b (subject, method, tat_ms)
    VALUES (:subject, :method, extract(epoch FROM statement_timestamp()) * 1000 + :interval)
    ON CONFLICT (subject, method) DO UPDATE
    SET tat_ms = GREATEST(b.tat_ms, extract(epoch FROM statement_timestamp()) * 1000) + :interval
    WHERE GREATEST(b.tat_ms, extract(epoch FROM statement_timestamp()) * 1000) - :tolerance
        <= extract(epoch FROM statement_timestamp()) * 1000
    RETURNING b.tat_ms
    """
)
_WAIT = text(
    """
    SELECT b.tat_ms - :tolerance - extract(epoch FROM statement_timestamp()) * 1000
    FROM rate_buckets AS b WHERE b.subject = :subject AND b.method = :method
    """
)
_PRUNE = text("DELETE FROM rate_buckets WHERE tat_ms < extract(epoch FROM statement_timestamp()) * 1000")
PRUNE_EVERY_MS = 60_000


class SharedBuckets:
    """The limiter's state in PostgreSQL, shared by every process on the store.

    ``space`` keeps limiters with different subjects apart (instances on the wire API, accounts on
    the partner API). Each call is one statement on an autocommit connection (one round trip).
    """

    def __init__(self, core: Core, space: str = "") -> None:
        self.core = core
        self.space = space
        self._engine = core.db.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._pruning = False

    async def take(self, subject: int, method: str, interval_ms: float, tolerance_ms: float) -> float | None:
        """Count one call; None when allowed, else how many ms to wait."""
        key = {"subject": subject, "method": self.space + method}
        async with self._engine.connect() as conn:
            took = await conn.scalar(_TAKE, {**key, "interval": interval_ms, "tolerance": tolerance_ms})
            if took is not None:
                self._plan_prune()
                return None
            wait = await conn.scalar(_WAIT, {**key, "tolerance": tolerance_ms})
        return max(float(wait or 0.0), 1.0)

    def _plan_prune(self) -> None:
        if not self._pruning:
            self._pruning = True
            self.core.timers.schedule(("rate-buckets", self.space), now_ms() + PRUNE_EVERY_MS, self.prune)

    async def prune(self) -> None:
        """Drop full buckets (the same as no row), so the table holds only the busy instances."""
        self._pruning = False
        async with self._engine.connect() as conn:
            await conn.execute(_PRUNE)


def shared_when_clustered(core: Core, limiter: RateLimiter, space: str = "") -> RateLimiter:
    """Share ``limiter``'s buckets through the store when several processes may use it."""
    if not core.db.is_sqlite and core.settings.rate_limit_shared and limiter.enabled:
        limiter.shared = SharedBuckets(core, space)
    return limiter
