"""The licensing runtime of a process: who may call what, metering, quota notices.

Installed as ``core.licensing`` by the app factory. The wire router asks :meth:`Licensing.admit`
after authentication and body parsing and before the handler runs, so a refused call (466 or the
expired-account 400) changes nothing but the quota notice. The send worker asks
:meth:`Licensing.may_send`; the sandbox network asks :meth:`Licensing.admit_incoming`.

Hot-path cost: an instance's entitlement (its licenses and their limits) is cached in memory and
re-read at most every ``ENTITLEMENT_TTL_MS`` (or at once when any process changes it: store/changes.py); a call to
an unlimited instance costs one dict lookup and one counter increment. Counters are flushed to
``license_usage`` every ``licensing_flush_seconds``; a crash loses at most that interval's counts.
Where several processes share the store (PostgreSQL), a call to an instance with a limited licence
is checked and counted in the store in one transaction instead (``_usage_in``), so its quotas hold
in total whichever process answers.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import BigInteger, bindparam, insert, select, text, update

from verdigris.instances.models import instances
from verdigris.licensing import dates
from verdigris.licensing.limits import CORRESPONDENTS, MESSAGES, Limits, parse_limits
from verdigris.licensing.models import correspondents, licenses, tariffs, usage
from verdigris.messaging.notifications import emit, quota_event
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

log = structlog.get_logger("verdigris.licensing")

ENTITLEMENT_TTL_MS = 60_000
EXPIRED_MESSAGE = "Instance account is expired. Renew your instance from personal area"
# Read-only account methods that still answer on an expired instance, so monitoring can see it.
NOTICE_PREFIX = "notice:"
# A transaction-scoped PostgreSQL advisory lock (the instance's quota counters, _usage_in).
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# Counter rows written per statement when flushing.
FLUSH_CHUNK = 500


# An instance's entitlement is read on its first call and then every ENTITLEMENT_TTL_MS, i.e.
# once per active instance per minute: built once, as statement building costs more than the query.
_ACTIVE_LICENSES = (
    select(licenses, tariffs.c.code, tariffs.c.name.label("tariff_name"), tariffs.c.limits)
    .join(tariffs, tariffs.c.id == licenses.c.tariff_id)
    .where(
        (licenses.c.instance_id == bindparam("instance_id"))
        & (licenses.c.status == "active")
        & (licenses.c.end_ms.is_(None) | (licenses.c.end_ms > bindparam("at_ms", type_=BigInteger)))
    )
    .order_by(licenses.c.start_ms, licenses.c.id)
)
_LICENSED = select(licenses.c.instance_id).distinct()
# A license that has started (even if over or revoked since): from then on the unlicensed policy no
# longer applies. One that has not started yet leaves the instance as it is until its first day.
_STARTED_LICENSE = (
    select(licenses.c.id)
    .where(
        (licenses.c.instance_id == bindparam("instance_id"))
        & (licenses.c.start_ms <= bindparam("at_ms", type_=BigInteger))
    )
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class LicenseView:
    id: int
    kind: str
    tariff_id: int
    tariff_code: str
    tariff_name: str
    start_ms: int
    end_ms: int | None
    limits: Limits

    def covers(self, at_ms: int) -> bool:
        return self.start_ms <= at_ms and (self.end_ms is None or at_ms < self.end_ms)


@dataclass(slots=True)
class Entitlement:
    """Licenses of an instance that are not over yet (sorted by start), or the unlicensed policy."""

    licenses: list[LicenseView]
    unlicensed: str  # "open" or "deny" when there is no license at all
    loaded_ms: int

    def current(self, at_ms: int) -> LicenseView | None:
        for lic in self.licenses:
            if lic.covers(at_ms):
                return lic
        return None

    def open(self, at_ms: int) -> bool:
        """Unlimited under the "open" policy: no license has started yet (one bought today and
        starting tomorrow leaves the instance as it was until then, docs/licensing.md)."""
        return self.unlicensed == "open" and all(lic.start_ms > at_ms for lic in self.licenses)


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """One limit's state, in domain words (greenapi renders the 466 body from it)."""

    method: str
    used: int
    total: int
    exceeded: bool
    description: str = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    expired: bool = False
    invoke: QuotaStatus | None = None
    correspondents: QuotaStatus | None = None

    @property
    def reason(self) -> str:
        """In words, for the console and campaigns (the wire renders its own bodies)."""
        if self.expired:
            return "the instance's license has expired or it has none"
        if self.correspondents is not None:
            total = self.correspondents.total
            return f"the license allows {plural(total, 'correspondent')} a month, all used"
        if self.invoke is not None:
            return (
                f"the monthly quota of {self.invoke.method} is used ({self.invoke.used}/{self.invoke.total})"
            )
        return "refused by the license"


@dataclass(slots=True)
class _Usage:
    counts: dict[str, int] = field(default_factory=dict)
    chats: list[str] = field(default_factory=list)
    noticed: set[str] = field(default_factory=set)


def limits_of(row: Any) -> Limits:
    return parse_limits(orjson.loads(row.limits))


class Licensing:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.tz = dates.zone(core.settings.operator_timezone)
        self._entitlements: dict[int, Entitlement] = {}
        # Deltas not yet written to license_usage: (instance, period, method) -> count.
        self._pending: dict[tuple[int, str, str], int] = {}
        # The instances with counts in _pending (so a limited call need not walk it).
        self._pending_instances: set[int] = set()
        # Running totals of limited instances in the current period (loaded on first need).
        self._usage: dict[tuple[int, str], _Usage] = {}
        self._lock = asyncio.Lock()
        self.flushed_total = 0
        # Instances that had a license (of any state) at start, plus those whose licenses changed
        # since: every other instance has never had one, so its entitlement is the unlicensed policy
        # (no read on its first call). None: not known (not loaded, or reset by forget_all).
        self._licensed: set[int] | None = None
        self._policy: dict[str, Any] | None = None  # the unlicensed policy, while it is unchanged
        self._resets = 0
        # The current quota period and its bounds, so most calls skip the calendar arithmetic.
        self._period: tuple[str, int, int] = ("", 0, 0)

    def period(self, at_ms: int) -> str:
        key, start, end = self._period
        if start <= at_ms < end:
            return key
        key = dates.month_key(at_ms, self.tz)
        year, month = int(key[:4]), int(key[5:])
        start = dates.day_start_ms(date(year, month, 1), self.tz)
        self._period = (key, start, dates.next_month_start_ms(at_ms, self.tz))
        return key

    # --- entitlements ---------------------------------------------------------------------------

    def forget(self, instance_id: int) -> None:
        """This process changed the instance's licenses: reload on next use."""
        self._entitlements.pop(instance_id, None)
        if self._licensed is not None:
            self._licensed.add(instance_id)

    def forget_all(self) -> None:
        """Every entitlement may have changed (the unlicensed policy): reload each on next use."""
        self._entitlements.clear()
        self._licensed = None
        self._policy = None
        self._resets += 1

    async def load_index(self) -> None:
        """At start: which instances have (or had) a license, and the unlicensed policy."""
        from verdigris.licensing import service

        resets = self._resets
        async with self.core.read() as conn:
            licensed = {int(i) for i in (await conn.execute(_LICENSED)).scalars()}
            policy = await service.get_policy(self.core, conn)
        if resets == self._resets:  # no policy change or log gap meanwhile
            self._licensed = licensed | (self._licensed or set())
            self._policy = policy

    def _never_licensed(self, inst: InstanceRecord, at_ms: int) -> Entitlement | None:
        """The entitlement of an instance that has never had a license, from memory (None: not
        known here; read it from the store). Mirrors :meth:`load` and ``unlicensed_policy_for``."""
        licensed, policy = self._licensed, self._policy
        if licensed is None or policy is None or inst.id in licensed:
            return None
        value = str(policy["unlicensed"])
        if value.startswith("assign:"):
            if inst.created_ms >= int(policy["sinceMs"]):
                return None  # a default license is to be assigned: the store's path does that
            value = "open"
        elif value not in ("open", "deny"):
            value = "open"
        ent = Entitlement([], value, at_ms)
        self._entitlements[inst.id] = ent
        if len(self._entitlements) > 100_000:
            self._entitlements.pop(next(iter(self._entitlements)))
        return ent

    def drop(self, instance_id: int) -> None:
        """The instance is gone: forget it and the counts not yet written."""
        self.forget(instance_id)
        for key in [k for k in self._pending if k[0] == instance_id]:
            del self._pending[key]
        self._pending_instances.discard(instance_id)
        for state in [k for k in self._usage if k[0] == instance_id]:
            del self._usage[state]

    async def load(self, conn: AsyncConnection, instance_id: int, at_ms: int) -> Entitlement:
        rows = (await conn.execute(_ACTIVE_LICENSES, {"instance_id": instance_id, "at_ms": at_ms})).all()
        views = [
            LicenseView(
                id=int(r.id),
                kind=r.kind,
                tariff_id=int(r.tariff_id),
                tariff_code=r.code,
                tariff_name=r.tariff_name,
                start_ms=int(r.start_ms),
                end_ms=int(r.end_ms) if r.end_ms is not None else None,
                limits=limits_of(r),
            )
            for r in rows
        ]
        started = any(v.start_ms <= at_ms for v in views) or (
            await conn.scalar(_STARTED_LICENSE, {"instance_id": instance_id, "at_ms": at_ms}) is not None
        )
        unlicensed = "deny" if started else await self._unlicensed(conn, instance_id)
        ent = Entitlement(views, unlicensed, at_ms)
        self._entitlements[instance_id] = ent
        if len(self._entitlements) > 100_000:
            self._entitlements.pop(next(iter(self._entitlements)))
        return ent

    async def _unlicensed(self, conn: AsyncConnection, instance_id: int) -> str:
        from verdigris.licensing import service

        return await service.unlicensed_policy_for(self.core, conn, instance_id)

    async def entitlement(
        self, inst: InstanceRecord, at_ms: int, conn: AsyncConnection | None = None
    ) -> Entitlement:
        ent = self._entitlements.get(inst.id)
        if ent is not None and at_ms - ent.loaded_ms < ENTITLEMENT_TTL_MS:
            return ent
        ent = self._never_licensed(inst, at_ms)
        if ent is not None:
            return ent
        if conn is not None:
            return await self.load(conn, inst.id, at_ms)
        async with self.core.read() as own:
            ent = await self.load(own, inst.id, at_ms)
        if ent.unlicensed.startswith("assign:") and not ent.licenses:
            from verdigris.licensing import service

            await service.assign_default(self.core, inst, ent.unlicensed.split(":", 1)[1], at_ms)
            async with self.core.read() as own:
                ent = await self.load(own, inst.id, at_ms)
        return ent

    # --- metering -------------------------------------------------------------------------------

    def count(self, instance_id: int, period: str, method: str, usage_state: _Usage | None) -> None:
        key = (instance_id, period, method)
        self._pending[key] = self._pending.get(key, 0) + 1
        self._pending_instances.add(instance_id)
        if usage_state is not None:
            usage_state.counts[method] = usage_state.counts.get(method, 0) + 1

    async def _usage_of(self, conn: AsyncConnection | None, instance_id: int, period: str) -> _Usage:
        state = self._usage.get((instance_id, period))
        if state is not None:
            return state
        # No lock is held across the read: a caller inside a transaction holds the (single SQLite)
        # connection, so waiting here for anything that needs a connection would deadlock. A batch
        # that is being flushed at this very moment may be missed by this first read (at most one
        # flush interval of calls made before the instance was limited).
        if conn is None:
            async with self.core.read() as own:
                loaded = await self._read_usage(own, instance_id, period)
        else:
            loaded = await self._read_usage(conn, instance_id, period)
        state = self._usage.get((instance_id, period))
        if state is not None:
            return state  # loaded meanwhile by another call
        for (inst_id, per, method), delta in self._pending.items():
            if inst_id == instance_id and per == period:
                loaded.counts[method] = loaded.counts.get(method, 0) + delta
        for key in [k for k in self._usage if k[0] == instance_id and k[1] != period]:
            del self._usage[key]  # an older period of this instance is over
        self._usage[(instance_id, period)] = loaded
        return loaded

    async def _read_usage(self, conn: AsyncConnection, instance_id: int, period: str) -> _Usage:
        state = _Usage()
        rows = await conn.execute(
            select(usage.c.method, usage.c.count).where(
                (usage.c.instance_id == instance_id) & (usage.c.period == period)
            )
        )
        for method, count in rows:
            if method.startswith(NOTICE_PREFIX):
                state.noticed.add(method[len(NOTICE_PREFIX) :])
            else:
                state.counts[method] = int(count)
        chats = await conn.execute(
            select(correspondents.c.chat_id)
            .where((correspondents.c.instance_id == instance_id) & (correspondents.c.period == period))
            .order_by(correspondents.c.first_ms, correspondents.c.chat_id)
        )
        state.chats = [c for (c,) in chats]
        return state

    async def usage_snapshot(self, instance_id: int, period: str) -> dict[str, Any]:
        """Counts of a period as the personal area shows them (flushed + pending)."""
        async with self.core.read() as conn:
            state = await self._read_usage(conn, instance_id, period)
        counts = dict(state.counts)
        for (inst_id, per, method), delta in self._pending.items():
            if inst_id == instance_id and per == period:
                counts[method] = counts.get(method, 0) + delta
        return {"counts": counts, "correspondents": state.chats}

    async def flush(self) -> int:
        """Write pending counts to the database; returns how many counter rows changed."""
        if not self._pending:
            return 0
        async with self._lock:  # one flush at a time (the timer and shutdown)
            batch, self._pending = self._pending, {}
            self._pending_instances = set()
            keys = sorted(batch)  # one order in every process: two flushes never wait on each other's rows
            done = 0
            try:
                # Small transactions, so wire calls waiting for the connection interleave.
                for start in range(0, len(keys), FLUSH_CHUNK):
                    chunk = keys[start : start + FLUSH_CHUNK]
                    rows = [
                        {"instance_id": i, "period": p, "method": m, "count": batch[(i, p, m)]}
                        for (i, p, m) in chunk
                    ]
                    async with self.core.tx() as tx:
                        await _upsert_usage(tx.conn, rows)
                    done += len(chunk)
            except BaseException:
                for key in keys[done:]:  # keep what was not written for the next flush
                    self._pending[key] = self._pending.get(key, 0) + batch[key]
                    self._pending_instances.add(key[0])
                raise
        self.flushed_total += len(batch)
        return len(batch)

    def pending(self) -> int:
        return len(self._pending)

    # --- admission --------------------------------------------------------------------------------

    async def admit(
        self,
        inst: InstanceRecord,
        method: str,
        chat_id: str | None,
        *,
        sending: bool,
        when_expired: bool = False,
    ) -> Refusal | None:
        """Whether a call may run; counts it when it may. ``None`` means go ahead. ``sending``: it
        sends a message to ``chat_id`` (the monthly cap and the correspondents apply);
        ``when_expired``: it is allowed without a current license. The method registry
        (greenapi.registry) says both for wire methods."""
        now = now_ms()
        lowered = method.lower()
        ent = await self.entitlement(inst, now)
        period = self.period(now)
        if ent.open(now):
            self.count(inst.id, period, lowered, None)
            return None
        lic = ent.current(now)
        if lic is None:
            if when_expired:
                return None
            return Refusal(expired=True)
        limits = lic.limits
        if limits.unlimited:
            self.count(inst.id, period, lowered, None)
            return None
        if self.core.changes.shared:
            async with self.core.tx() as tx:
                state = await self._usage_in(tx, inst.id, period)
                return await self._admit_limited(
                    inst, lowered, chat_id, limits, state, period, now, sending, tx
                )
        state = await self._usage_of(None, inst.id, period)
        return await self._admit_limited(inst, lowered, chat_id, limits, state, period, now, sending, None)

    async def _admit_limited(
        self,
        inst: InstanceRecord,
        method: str,
        chat_id: str | None,
        limits: Limits,
        state: _Usage,
        period: str,
        now: int,
        sending: bool,
        tx: Tx | None,
    ) -> Refusal | None:
        """The quotas of a limited licence against ``state``; the call is counted when admitted:
        in the store within ``tx`` (several processes, :meth:`_usage_in`), else in memory."""
        total = limits.methods.get(method)
        used = state.counts.get(method, 0)
        if total is not None and used >= total:
            status = QuotaStatus(method, used, total, True, self._change_tariff_text())
            await self._notice(inst, period, state, method, status, tx)
            return Refusal(invoke=status)
        if sending and limits.messages_per_month is not None:
            sent = state.counts.get(MESSAGES, 0)
            if sent >= limits.messages_per_month:
                status = QuotaStatus(
                    MESSAGES, sent, limits.messages_per_month, True, self._change_tariff_text()
                )
                await self._notice(inst, period, state, MESSAGES, status, tx)
                return Refusal(invoke=status)
        if sending and chat_id:
            refusal = await self._correspondent(
                inst, method, chat_id, limits, state, period, now, used, total, tx
            )
            if refusal is not None:
                return refusal
        for counted in (method, MESSAGES) if sending else (method,):
            if tx is None:
                self.count(inst.id, period, counted, state)
            else:
                state.counts[counted] = state.counts.get(counted, 0) + 1
                await _add_usage(tx.conn, inst.id, period, counted, 1)
        return None

    async def _usage_in(self, tx: Tx, instance_id: int, period: str) -> _Usage:
        """Several processes share the store: the instance's counters as the store has them now,
        read under a lock on the instance that ``tx`` holds to its end, so the check and the count
        of a call are one step across all processes and a quota holds in total. Calls counted here
        before the instance was limited and not yet flushed are added."""
        key = int.from_bytes(hashlib.sha256(b"quota:%d" % instance_id).digest()[:8], "big", signed=True)
        await tx.conn.execute(_LOCK, {"key": key})
        state = await self._read_usage(tx.conn, instance_id, period)
        if instance_id in self._pending_instances:
            for (inst_id, per, method), delta in self._pending.items():
                if inst_id == instance_id and per == period:
                    state.counts[method] = state.counts.get(method, 0) + delta
        return state

    async def _correspondent(
        self,
        inst: InstanceRecord,
        method: str,
        chat_id: str,
        limits: Limits,
        state: _Usage,
        period: str,
        now: int,
        used: int,
        total: int | None,
        tx: Tx | None,
    ) -> Refusal | None:
        if limits.correspondents is None or chat_id in state.chats:
            return None
        if len(state.chats) >= limits.correspondents:
            invoke = QuotaStatus(method, used, total or 0, False)
            corr = self._correspondents_status(state, limits.correspondents, "these numbers")
            await self._notice(inst, period, state, CORRESPONDENTS, corr, tx)
            return Refusal(invoke=invoke, correspondents=corr)
        state.chats.append(chat_id)
        if tx is not None:
            await _add_chat(tx.conn, inst.id, period, chat_id, now)
            return None
        async with self.core.tx() as own:
            await _add_chat(own.conn, inst.id, period, chat_id, now)
        return None

    async def admit_chat(self, inst: InstanceRecord, method: str, chat_id: str) -> Refusal | None:
        """The correspondents check alone, for handlers that learn the chat only from a body the
        router does not parse (multipart uploads). Call it before anything is queued; the call
        itself was already admitted and counted by :meth:`admit`."""
        now = now_ms()
        ent = await self.entitlement(inst, now)
        lic = ent.current(now)
        if ent.open(now) or lic is None or lic.limits.correspondents is None:
            return None
        lowered = method.lower()
        period = self.period(now)
        total = lic.limits.methods.get(lowered)
        if self.core.changes.shared:
            async with self.core.tx() as tx:
                state = await self._usage_in(tx, inst.id, period)
                used = state.counts.get(lowered, 0)
                return await self._correspondent(
                    inst, lowered, chat_id, lic.limits, state, period, now, used, total, tx
                )
        state = await self._usage_of(None, inst.id, period)
        used = state.counts.get(lowered, 0)
        return await self._correspondent(
            inst, lowered, chat_id, lic.limits, state, period, now, used, total, None
        )

    async def may_send(self, inst: InstanceRecord) -> bool:
        """Whether the send worker may deliver the instance's queued messages now."""
        now = now_ms()
        ent = await self.entitlement(inst, now)
        return ent.open(now) or ent.current(now) is not None

    async def admit_incoming(self, tx: Tx, inst: InstanceRecord, chat_id: str) -> bool:
        """Whether an incoming message from ``chat_id`` may be announced to the instance.

        Free-tier correspondents are limited for receiving too: a message from a chat beyond the
        limit is kept in the journal, its notification is replaced by ``quotaExceeded``.
        """
        now = now_ms()
        ent = await self.entitlement(inst, now, tx.conn)
        if ent.open(now):
            return True
        lic = ent.current(now)
        if lic is None or lic.limits.correspondents is None:
            return True  # an expired instance keeps receiving into its queue (kept for renewal)
        period = self.period(now)
        if self.core.changes.shared:
            return await self._admit_incoming_shared(
                tx, inst, chat_id, lic.limits.correspondents, period, now
            )
        state = await self._usage_of(tx.conn, inst.id, period)
        if chat_id in state.chats:
            return True
        if len(state.chats) < lic.limits.correspondents:
            state.chats.append(chat_id)
            await _add_chat(tx.conn, inst.id, period, chat_id, now)
            return True
        corr = self._correspondents_status(state, lic.limits.correspondents, "these numbers")
        await self._notice(inst, period, state, CORRESPONDENTS, corr, tx)
        return False

    async def _admit_incoming_shared(
        self, tx: Tx, inst: InstanceRecord, chat_id: str, limit: int, period: str, now: int
    ) -> bool:
        """:meth:`admit_incoming` where several processes share the store. The instance's lock is
        taken in a short transaction of its own, not in the delivery's: one delivery may receive
        into several instances (a group, a phone's linked devices) in no set order, and two such
        deliveries holding each other's locks would deadlock."""
        async with self.core.tx() as own:
            state = await self._usage_in(own, inst.id, period)
            if chat_id in state.chats:
                return True
            if len(state.chats) < limit:
                await _add_chat(own.conn, inst.id, period, chat_id, now)
                return True
            corr = self._correspondents_status(state, limit, "these numbers")
            first = CORRESPONDENTS not in state.noticed
            if first:
                await _mark_noticed(own.conn, inst.id, period, CORRESPONDENTS)
        if first:  # queued with the refused message, in the delivery's transaction
            await emit(
                tx, inst, quota_event(CORRESPONDENTS, corr.method, corr.used, corr.total, corr.description)
            )
        return False

    # --- quota notices ----------------------------------------------------------------------------

    def _console_url(self) -> str:
        return self.core.settings.console_url or f"{self.core.public_url}/console"

    def _change_tariff_text(self) -> str:
        return (
            "Monthly quota has been exceeded. Please go to your personal account and change the tariff "
            f"{self._console_url()}"
        )

    def _correspondents_status(self, state: _Usage, total: int, words: str) -> QuotaStatus:
        return QuotaStatus(
            CORRESPONDENTS,
            len(state.chats),
            total,
            True,
            "Monthly quota has been exceeded. You can only send or receive messages from "
            f"{words}: {', '.join(state.chats)}. Please go to your personal account and change the tariff "
            f"{self._console_url()}",
        )

    async def _notice(
        self,
        inst: InstanceRecord,
        period: str,
        state: _Usage,
        limit: str,
        status: QuotaStatus,
        tx: Tx | None,
    ) -> None:
        """The first refusal of a limit in a period queues one ``quotaExceeded`` notification."""
        if limit in state.noticed:
            return
        state.noticed.add(limit)
        event = quota_event(limit, status.method, status.used, status.total, status.description)
        if tx is not None:
            await _mark_noticed(tx.conn, inst.id, period, limit)
            await emit(tx, inst, event)
            return
        async with self.core.tx() as own:
            await _mark_noticed(own.conn, inst.id, period, limit)
            await emit(own, inst, event)


async def _add_usage(conn: AsyncConnection, instance_id: int, period: str, method: str, delta: int) -> None:
    key = (usage.c.instance_id == instance_id) & (usage.c.period == period) & (usage.c.method == method)
    result = await conn.execute(update(usage).where(key).values(count=usage.c.count + delta))
    if not result.rowcount:
        await conn.execute(
            insert(usage).values(instance_id=instance_id, period=period, method=method, count=delta)
        )


async def _upsert_usage(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Add many deltas in one statement (INSERT ... ON CONFLICT DO UPDATE, SQLite and PostgreSQL).
    Counts of instances deleted since they were made (an erased account's) are not written back."""
    ids = {r["instance_id"] for r in rows}
    alive = set(await conn.scalars(select(instances.c.id).where(instances.c.id.in_(ids))))
    rows = [r for r in rows if r["instance_id"] in alive]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    stmt = dialect_insert(usage)
    stmt = stmt.on_conflict_do_update(
        index_elements=[usage.c.instance_id, usage.c.period, usage.c.method],
        set_={"count": usage.c.count + stmt.excluded.count},
    )
    await conn.execute(stmt, rows)


async def _mark_noticed(conn: AsyncConnection, instance_id: int, period: str, limit: str) -> None:
    await _add_usage(conn, instance_id, period, NOTICE_PREFIX + limit, 1)


async def _add_chat(conn: AsyncConnection, instance_id: int, period: str, chat_id: str, at_ms: int) -> None:
    exists = await conn.scalar(
        select(correspondents.c.chat_id).where(
            (correspondents.c.instance_id == instance_id)
            & (correspondents.c.period == period)
            & (correspondents.c.chat_id == chat_id)
        )
    )
    if exists is None:
        await conn.execute(
            insert(correspondents).values(
                instance_id=instance_id, period=period, chat_id=chat_id, first_ms=at_ms
            )
        )
