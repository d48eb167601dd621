"""The send worker: delivers each instance's queued messages in order, paced by its settings.

No task or coroutine exists per instance. An instance with due work has one timer in
``core.timers`` (a heap keyed by due time); accepting a message or authorizing an instance wakes
it. When a timer fires, the head message of that instance is handed to its channel and, if more
are queued, the next timer is set ``delaySendMessagesMilliseconds`` later. The gap is measured from
the previous send, so a message to an idle instance goes out at once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import bindparam, select

from verdigris.instances.models import instances
from verdigris.instances.service import AUTHORIZED, InstanceRecord
from verdigris.messaging import lifecycle
from verdigris.messaging.models import messages
from verdigris.messaging.service import QUEUED, _stored
from verdigris.messaging.vocabulary import FILE_TYPES, Status
from verdigris.store.clock import now_ms
from verdigris.store.direct import Direct

if TYPE_CHECKING:
    from verdigris.core import Core, Tx

log = structlog.get_logger("verdigris.sender")

# Built once with bind parameters (statement building costs more CPU than SQLite's answer).
_QUEUE_HEAD = Direct(
    select(messages)
    .where((messages.c.instance_id == bindparam("instance_id")) & (messages.c.status == QUEUED))
    .order_by(messages.c.id)
    .limit(2)
)

# The instance's last send, and what it was (a file's gap is longer).
_LAST_SENT = Direct(
    select(messages.c.sent_ms, messages.c.type_message)
    .where(
        (messages.c.instance_id == bindparam("instance_id"))
        & (messages.c.direction == "out")
        & messages.c.sent_ms.is_not(None)
    )
    # Newest first by the index on (instance_id, direction, created_ms): an instance's queue is
    # sent in order, so its last send is its newest sent message (no index on sent_ms is needed).
    .order_by(messages.c.created_ms.desc())
    .limit(1)
)


class SendWorker:
    def __init__(self, core: Core) -> None:
        self.core = core
        # When each recently active instance last sent (ms) and whether that was a file.
        self._last_sent: dict[int, tuple[int, bool]] = {}
        # Messages whose typing indicator is showing: id_message -> when it may be sent.
        self._typing_until: dict[str, int] = {}
        self._busy: set[int] = set()
        self._again: set[int] = set()
        # Remote channels: no send before this time (ms) after a temporary refusal, whatever wakes
        # the instance meanwhile; and the rows whose network call is running in this process.
        self._hold_until: dict[int, int] = {}
        self._in_flight: set[int] = set()
        self.sent_total = 0
        # False in an API process (``--role api``): it sends nothing and hands every wake-up to
        # the workers (``handoff``, the cluster bus; workers also sweep the queues periodically).
        self.active = core.settings.role != "api"
        self.handoff: Callable[[int], None] | None = None

    def _gap_ms(self, rec: InstanceRecord, is_file: bool) -> int:
        gap = int(rec.settings.get("delaySendMessagesMilliseconds", self.core.settings.send_delay_default_ms))
        gap = self.core.settings.clamp_send_delay(gap)
        last = self._last_sent.get(rec.id)
        if is_file and last is not None and last[1]:
            gap = max(gap, self.core.settings.file_send_gap_ms)
        return gap

    def wake(self, rec: InstanceRecord, handed: bool = False) -> None:
        """There may be work for ``rec``: plan its next send (never earlier than its gap allows).
        Another process's work (an API process, or a partition leased elsewhere) is handed to
        the others, unless it was handed here (``handed``)."""
        if rec.state != AUTHORIZED:
            return
        if not self.core.leases.owns(rec.id):
            if not handed:
                self.hand_off(rec.id)
            return
        last = self._last_sent.get(rec.id)
        due = max(now_ms(), self._hold_until.get(rec.id, 0))
        if last is not None:
            due = max(due, last[0] + self._gap_ms(rec, False))
        self.core.timers.schedule(("send", rec.id), due, partial(self._run, rec.id))

    def hand_off(self, instance_id: int) -> None:
        """Ask the other processes' send workers to look at the instance's queue (through the
        cluster bus; nothing without one): this process does not send it (an API process), or
        cannot (another process holds the instance's network session)."""
        if self.handoff is not None:
            self.handoff(instance_id)

    def forget(self, instance_id: int) -> None:
        self.core.timers.cancel(("send", instance_id))
        self._last_sent.pop(instance_id, None)
        self._hold_until.pop(instance_id, None)

    async def start(self) -> None:
        """Plan a send for every instance that has queued messages (after a restart)."""
        if not self.active:
            return
        await self.requeue_interrupted()
        await self.plan_queued()

    async def plan_queued(self, parts: frozenset[int] | None = None) -> None:
        """Plan a send for every instance of this process's partitions (or of ``parts``, just
        leased) that has queued messages: at start, when partitions move here, and periodically
        in a worker process, in case another process's hand-off was lost."""
        mine = self.core.leases.part_filter(messages.c.instance_id, parts)
        if parts is not None:
            # Another process may have sent them since: their next gap counts from the store.
            leases = self.core.leases
            for key in [k for k in self._last_sent if leases.part_of(k) in parts]:
                del self._last_sent[key]
        async with self.core.read() as conn:
            ids = (
                (
                    await conn.execute(
                        select(messages.c.instance_id).where((messages.c.status == QUEUED) & mine).distinct()
                    )
                )
                .scalars()
                .all()
            )
        for instance_id in ids:
            rec = await self.core.instances.get(int(instance_id))
            if rec is not None:
                self.wake(rec)

    async def requeue_interrupted(self) -> None:
        """Put back into the queue the messages a remote channel claimed but never settled (the
        process died during the network call): sending them again may duplicate one, losing
        them is worse (docs/decisions/0008). A claim counts as interrupted when it is older than
        twice the longest a network call of its channel may run (``deadline_seconds``, enforced
        by the channel) and not running in this process. Runs at start and every minute after."""
        core = self.core
        remote = {name: channel for name, channel in core.channels.items() if channel.remote}
        if remote:
            horizon = now_ms() - int(2000 * max(c.deadline_seconds for c in remote.values()))
            stale = (
                (messages.c.status == Status.PENDING)
                & (messages.c.direction == "out")
                & messages.c.sent_by_api
                & (messages.c.sent_ms < horizon)
                & messages.c.instance_id.in_(
                    select(instances.c.id).where(instances.c.channel.in_(list(remote)))
                )
                & core.leases.part_filter(messages.c.instance_id)
            )
            if self._in_flight:
                stale = stale & messages.c.id.not_in(list(self._in_flight))
            async with core.read() as conn:
                found = (
                    (await conn.execute(select(messages.c.instance_id).where(stale).distinct()))
                    .scalars()
                    .all()
                )
            if found:
                async with core.tx() as tx:
                    await lifecycle.requeue(tx, stale)
                log.warning("interrupted sends queued again", instances=len(found))
                for instance_id in found:
                    rec = await core.instances.get(int(instance_id))
                    if rec is not None:
                        self.wake(rec)
        core.timers.schedule("requeue-interrupted", now_ms() + 60_000, self.requeue_interrupted)

    async def _run(self, instance_id: int) -> None:
        # One send at a time per instance: a wake-up that arrives mid-send is remembered and
        # honoured when the current send is done.
        if not self.core.leases.owns(instance_id):
            return  # its partition moved to another process, which planned it
        if instance_id in self._busy:
            self._again.add(instance_id)
            return
        self._busy.add(instance_id)
        try:
            await self._send_head(instance_id)
        finally:
            self._busy.discard(instance_id)
            if instance_id in self._again:
                self._again.discard(instance_id)
                rec = await self.core.instances.get(instance_id)
                if rec is not None:
                    self.wake(rec)

    async def _send_head(self, instance_id: int) -> None:
        core = self.core
        if core.changes.exact:
            await core.changes.sync()  # a measure, licence or state changed through another process
        rec = await core.instances.get(instance_id)
        if rec is None or rec.state != AUTHORIZED:
            return
        hold = self._hold_until.get(instance_id)
        if hold is not None:
            if now_ms() < hold:  # a remote channel asked for a pause after a temporary refusal
                core.timers.schedule(("send", instance_id), hold, partial(self._run, instance_id))
                return
            del self._hold_until[instance_id]
        if not await core.licensing.may_send(rec):
            return  # expired: the queue is kept; a renewal wakes the instance again
        if not core.moderation.may_send(rec.account_id):
            return  # blocked, suspended or restricted by the operator: the queue is kept; lifting wakes it
        hold = await core.policy.hold(rec, now_ms())
        if hold is not None:
            if hold > 0:  # quiet hours or the daily cap: try again when they end
                core.timers.schedule(("send", instance_id), hold, partial(self._run, instance_id))
            return  # paused: resuming wakes the instance
        async with core.read() as conn:
            rows = (await _QUEUE_HEAD.run(conn, {"instance_id": instance_id})).all()
            if rows and instance_id not in self._last_sent:
                # Its first send in this process (after a start, a partition moved here, or a
                # prune): the gap counts from the last send of any process, as the store has it.
                last_row = (await _LAST_SENT.run(conn, {"instance_id": instance_id})).first()
                if last_row is not None:
                    self._last_sent[instance_id] = (
                        int(last_row.sent_ms),
                        last_row.type_message in FILE_TYPES,
                    )
        if not rows:
            return
        head = _stored(rows[0])
        if head.content.get("fetchUrl"):
            return  # its file is still being fetched; the fetch wakes this instance when done
        now = now_ms()
        is_file = head.type_message in FILE_TYPES
        last = self._last_sent.get(instance_id)
        if last is not None and now < last[0] + self._gap_ms(rec, is_file):
            core.timers.schedule(
                ("send", instance_id), last[0] + self._gap_ms(rec, is_file), partial(self._run, instance_id)
            )
            return
        typing = head.typing_ms or _auto_typing_ms(rec, head.content.get("text", ""))
        if typing:
            until = self._typing_until.setdefault(head.id_message, now + typing)
            if now < until:  # another wake-up (a new message, a sweep) must not cut the typing short
                core.timers.schedule(("send", instance_id), until, partial(self._run, instance_id))
                return
        self._typing_until.pop(head.id_message, None)
        expired = head.created_ms < now - core.settings.retention_seconds * 1000
        channel = core.channels.get(rec.channel)
        if channel is None:
            return  # its network is switched off on this server: the queue is kept

        async def hand_over(tx: Tx) -> bool:
            # Claim the message: only one sender (in any process) moves it out of the queue.
            if not await lifecycle.claim(tx, head.row_id, now, core.leases.fence(instance_id)):
                return False
            if expired:
                await lifecycle.set_status(
                    tx,
                    rec,
                    head.row_id,
                    head.chat_id,
                    head.id_message,
                    Status.EXPIRED,
                    "not sent within the queue's retention period",
                )
            elif not channel.remote:
                await channel.deliver(tx, rec, head)
            return True

        # The sends falling due together (other instances' timers) share one transaction with
        # each other and with the accepts of the moment (store/group.py); a failing one is
        # retried alone, so it cannot fail the others.
        if not await core.group.run(hand_over):
            return
        if channel.remote and not expired:
            # The claim is committed; the network call runs outside any transaction.
            self._in_flight.add(head.row_id)
            try:
                retry_at = await channel.transmit(rec, head)
            finally:
                self._in_flight.discard(head.row_id)
            if retry_at is not None:  # not sent for now: the message is queued again
                self._hold_until[instance_id] = retry_at
                core.timers.schedule(("send", instance_id), retry_at, partial(self._run, instance_id))
                return
        self._last_sent[instance_id] = (now_ms(), is_file)
        core.policy.sent(instance_id)
        self.sent_total += 1
        core.metrics.messages_sent.inc()
        if len(self._last_sent) > 20_000:
            self._prune()
        if len(rows) > 1:
            nxt = rows[1]
            next_is_file = nxt.type_message in FILE_TYPES
            due = self._last_sent[instance_id][0] + (0 if expired else self._gap_ms(rec, next_is_file))
            core.timers.schedule(("send", instance_id), due, partial(self._run, instance_id))

    def _prune(self) -> None:
        horizon = now_ms() - self.core.settings.send_delay_max_ms
        for key in [k for k, (at, _) in self._last_sent.items() if at < horizon]:
            del self._last_sent[key]


def _auto_typing_ms(rec: InstanceRecord, text: str) -> int:
    """autoTyping levels 1..4: a typing pause that grows with the text, between 1 and 20 s."""
    level = int(rec.settings.get("autoTyping") or 0)
    if level <= 0 or not text:
        return 0
    return max(1000, min(20_000, len(text) * 25 * level))
