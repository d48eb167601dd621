"""The outgoing-queue policy engine (installed as ``core.policy``).

Per instance, on top of the GREEN-API pacing (``delaySendMessagesMilliseconds``):

* **quiet hours**: no message leaves between ``quiet_from`` and ``quiet_to`` local time (the window
  may span midnight); messages wait in the queue and go out, paced, when the window ends;
* **daily cap**: at most ``daily_limit`` messages per local day; the rest wait for the next day;
* **auto-pause**: after ``pause_after_failures`` consecutive ``failed``/``noAccount`` statuses the
  queue pauses (a number sending to many invalid chats is what messengers ban); the owner resumes
  it in the console. A user may also pause and resume by hand.

Nothing is dropped: a held queue keeps its messages (the wire's ``showMessagesQueue`` lists them)
and ``clearMessagesQueue`` still withdraws them. The send worker asks :meth:`OutgoingPolicy.hold`
before each send: with no policy for the instance that is one dictionary lookup. Policies are
kept in memory (loaded at start, reloaded every minute for other processes' changes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, insert, select, update

from verdigris.errors import ServiceError
from verdigris.messaging import lifecycle
from verdigris.messaging.models import messages
from verdigris.messaging.notifications import Event
from verdigris.messaging.vocabulary import Status
from verdigris.sendpolicy.models import send_policies
from verdigris.store.clock import now_ms
from verdigris.words import plural

if TYPE_CHECKING:
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

PAUSED = -1  # hold(): the queue is paused until someone resumes it
RELOAD_EVERY_MS = 60_000
FAILURES = frozenset({Status.FAILED, Status.NO_ACCOUNT})
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class SendPolicyError(ServiceError):
    pass


@dataclass(slots=True)
class Policy:
    instance_id: int
    quiet_from: str
    quiet_to: str
    timezone: str
    daily_limit: int | None
    pause_after_failures: int | None
    paused_ms: int | None
    pause_reason: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def quiet_until(self, at_ms: int) -> int | None:
        """The end of the quiet window ``at_ms`` falls in, or None outside it."""
        if not self.quiet_from or not self.quiet_to or self.quiet_from == self.quiet_to:
            return None
        local = datetime.fromtimestamp(at_ms / 1000, self.zone)
        now = local.strftime("%H:%M")
        inside = (
            self.quiet_from <= now < self.quiet_to
            if self.quiet_from < self.quiet_to
            else now >= self.quiet_from or now < self.quiet_to
        )
        if not inside:
            return None
        hour, minute = map(int, self.quiet_to.split(":"))
        end = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if end <= local:
            end = _next_day(local, hour, minute, self.zone)
        return int(end.timestamp() * 1000)

    def as_json(self) -> dict[str, Any]:
        return {
            "instanceId": self.instance_id,
            "quietFrom": self.quiet_from,
            "quietTo": self.quiet_to,
            "timezone": self.timezone,
            "dailyLimit": self.daily_limit,
            "pauseAfterFailures": self.pause_after_failures,
            "pausedMs": self.paused_ms,
            "pauseReason": self.pause_reason,
        }


def _next_day(local: datetime, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    """``hour:minute`` on the next calendar day (wall clock, so DST changes are respected)."""
    day = (local + timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def _policy(row: Any) -> Policy:
    return Policy(
        instance_id=int(row.instance_id),
        quiet_from=row.quiet_from,
        quiet_to=row.quiet_to,
        timezone=row.timezone,
        daily_limit=row.daily_limit,
        pause_after_failures=row.pause_after_failures,
        paused_ms=row.paused_ms,
        pause_reason=row.pause_reason,
    )


class OutgoingPolicy:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._policies: dict[int, Policy] = {}
        self._loaded_ms = -RELOAD_EVERY_MS
        # Messages sent per (instance, local day), counted from the journal on first need.
        self._sent: dict[int, tuple[str, int]] = {}
        self._failures: dict[int, int] = {}

    async def load(self) -> None:
        async with self.core.read() as conn:
            rows = (await conn.execute(select(send_policies))).all()
        self._policies = {int(r.instance_id): _policy(r) for r in rows}
        self._loaded_ms = now_ms()

    def get(self, instance_id: int) -> Policy | None:
        return self._policies.get(instance_id)

    async def hold(self, rec: InstanceRecord, at_ms: int) -> int | None:
        """None: send now. PAUSED: the queue is paused. Otherwise the time to try again."""
        if at_ms - self._loaded_ms >= RELOAD_EVERY_MS:
            await self.load()
        policy = self._policies.get(rec.id)
        if policy is None:
            return None
        if policy.paused_ms is not None:
            return PAUSED
        quiet = policy.quiet_until(at_ms)
        if quiet is not None:
            return quiet
        if policy.daily_limit is not None:
            day, count = await self._sent_today(policy, at_ms)
            if count >= policy.daily_limit:
                local = datetime.fromtimestamp(at_ms / 1000, policy.zone)
                return int(_next_day(local, 0, 0, policy.zone).timestamp() * 1000)
        return None

    async def _sent_today(self, policy: Policy, at_ms: int) -> tuple[str, int]:
        local = datetime.fromtimestamp(at_ms / 1000, policy.zone)
        day = local.date().isoformat()
        cached = self._sent.get(policy.instance_id)
        if cached is not None and cached[0] == day:
            return cached
        start = int(datetime(local.year, local.month, local.day, tzinfo=policy.zone).timestamp() * 1000)
        async with self.core.read() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(messages)
                .where(
                    (messages.c.instance_id == policy.instance_id)
                    & (messages.c.direction == "out")
                    & messages.c.sent_by_api.is_(True)
                    & (messages.c.sent_ms >= start)
                )
            )
        self._sent[policy.instance_id] = (day, int(count or 0))
        return self._sent[policy.instance_id]

    def sent(self, instance_id: int) -> None:
        """The send worker handed a message to the channel."""
        cached = self._sent.get(instance_id)
        if cached is not None:
            self._sent[instance_id] = (cached[0], cached[1] + 1)

    async def on_event(self, tx: Tx, inst: InstanceRecord, event: Event) -> None:
        """Every event of every instance passes here (before the settings filter): count failures."""
        if event.kind != "outgoingMessageStatus" or not event.data.get("sent_by_api"):
            return
        policy = self._policies.get(inst.id)
        if policy is None or policy.pause_after_failures is None:
            return
        status = event.data.get("status")
        if status not in FAILURES:
            if status in ("sent", "delivered", "read"):
                self._failures.pop(inst.id, None)
            return
        count = self._failures.get(inst.id, 0) + 1
        self._failures[inst.id] = count
        if count >= policy.pause_after_failures and policy.paused_ms is None:
            reason = f"paused automatically after {plural(count, 'failed send')} in a row (last: {status})"
            at = now_ms()
            await tx.conn.execute(
                update(send_policies)
                .where(send_policies.c.instance_id == inst.id)
                .values(paused_ms=at, pause_reason=reason, updated_ms=at)
            )
            policy.paused_ms, policy.pause_reason = at, reason
            self._failures.pop(inst.id, None)


# --- changes (console) -----------------------------------------------------------------------------


def _wake(core: Core, rec: InstanceRecord) -> None:
    lifecycle.wake(core, rec)


async def save(
    core: Core,
    rec: InstanceRecord,
    *,
    quiet_from: str,
    quiet_to: str,
    timezone: str,
    daily_limit: str,
    pause_after_failures: str,
) -> dict[str, Any]:
    quiet_from, quiet_to, timezone = quiet_from.strip(), quiet_to.strip(), timezone.strip()
    if bool(quiet_from) != bool(quiet_to):
        raise SendPolicyError(400, "quiet hours need both a start and an end (HH:MM), or neither")
    for value in (quiet_from, quiet_to):
        if value and not _HHMM.match(value):
            raise SendPolicyError(400, f"{value!r} is not a time of day (HH:MM, 24-hour)")
    timezone = timezone or core.settings.operator_timezone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SendPolicyError(400, f"unknown time zone {timezone!r} (e.g. Europe/Berlin)") from None
    limits: list[int | None] = []
    for raw, what, top in ((daily_limit, "daily limit", 1_000_000), (pause_after_failures, "failures", 1000)):
        raw = raw.strip()
        if not raw:
            limits.append(None)
        elif raw.isdigit() and 1 <= int(raw) <= top:
            limits.append(int(raw))
        else:
            raise SendPolicyError(400, f"{what}: a whole number from 1 to {top}, or empty")
    values = {
        "quiet_from": quiet_from,
        "quiet_to": quiet_to,
        "timezone": timezone,
        "daily_limit": limits[0],
        "pause_after_failures": limits[1],
        "updated_ms": now_ms(),
    }
    async with core.tx() as tx:
        done = await tx.conn.execute(
            update(send_policies).where(send_policies.c.instance_id == rec.id).values(**values)
        )
        if not done.rowcount:
            await tx.conn.execute(insert(send_policies).values(instance_id=rec.id, **values))
    await _refresh(core, rec)
    policy = core.policy.get(rec.id)
    return policy.as_json() if policy else {}


async def set_paused(core: Core, rec: InstanceRecord, paused: bool, reason: str = "") -> None:
    at = now_ms()
    async with core.tx() as tx:
        values = {
            "paused_ms": at if paused else None,
            "pause_reason": reason if paused else "",
            "updated_ms": at,
        }
        done = await tx.conn.execute(
            update(send_policies).where(send_policies.c.instance_id == rec.id).values(**values)
        )
        if not done.rowcount:
            if not paused:
                return
            await tx.conn.execute(
                insert(send_policies).values(
                    instance_id=rec.id, timezone=core.settings.operator_timezone, **values
                )
            )
    await _refresh(core, rec)


async def _refresh(core: Core, rec: InstanceRecord) -> None:
    await core.policy.load()
    core.policy._failures.pop(rec.id, None)
    _wake(core, rec)


async def of_instance(core: Core, instance_id: int) -> dict[str, Any] | None:
    async with core.read() as conn:
        row = (
            await conn.execute(select(send_policies).where(send_policies.c.instance_id == instance_id))
        ).first()
    return _policy(row).as_json() if row else None
