"""Voice and video calls on the sandbox network.

A sandbox phone calls a number (control API). The call rings at once: every authorized instance
linked to the called number gets an ``incomingCall`` notification with status ``offer``. After the
requested delay the call ends the way the caller asked (``pickUp``, ``hangUp``, ``declined`` or
``missed``): a second ``incomingCall`` with that status, and, for instances linked to the
*calling* phone (its linked devices), an ``outgoingCall`` notification.

Each instance keeps its own call journal (lastIncomingCalls / lastOutgoingCalls), written under the
same settings as the notifications (incomingWebhook + incomingCallWebhook, outgoingCallWebhook).
The pending outcome is stored with the journal rows, so a restart while a call rings still ends
it (``resume`` on start-up).
"""

from __future__ import annotations

import secrets
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from verdigris.channels.capabilities import CallEntry
from verdigris.channels.sandbox.models import call_journal
from verdigris.channels.sandbox.network import SandboxError, phone_of, wid_of
from verdigris.instances.service import AUTHORIZED, find_by_wid
from verdigris.messaging.notifications import call_event, emit, wanted
from verdigris.messaging.vocabulary import EventKind
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.channels.sandbox.network import SandboxNetwork
    from verdigris.core import Core

OUTCOMES = ("pickUp", "hangUp", "declined", "missed")
# How the caller's side words the end of a call (outgoingCall / lastOutgoingCalls).
_OUTGOING_STATUS = {"pickUp": "pickUp", "hangUp": "hungUp", "declined": "declined", "missed": "missed"}


async def phone_call(
    channel: SandboxNetwork,
    phone: str,
    to: str,
    outcome: str,
    *,
    delay_ms: int,
    is_video: bool,
    duration_s: int,
) -> str:
    """The person on ``phone`` calls ``to`` (a chat id or digits); returns the call id."""
    core = channel.core
    if outcome not in OUTCOMES:
        raise SandboxError(f"outcome must be one of {', '.join(OUTCOMES)}")
    callee = to if to.endswith("@c.us") else wid_of(to)
    callee_phone = phone_of(callee)
    caller = wid_of(phone)
    if callee_phone is None:
        raise SandboxError(f"{to!r} is not a personal chat id or phone number")
    if callee == caller:
        raise SandboxError("a phone cannot call itself")
    call_id = secrets.token_hex(16).upper()
    now = now_ms()
    due = now + delay_ms
    duration = duration_s if outcome == "pickUp" else 0
    async with core.tx() as tx:
        if not await channel.on_network(tx, phone):
            raise SandboxError(f"no sandbox phone {phone}")
        if not await channel.on_network(tx, callee_phone):
            raise SandboxError(f"{callee} has no account on the sandbox network")
        offer = call_event(EventKind.INCOMING_CALL, call_id, now, peer=caller, status="offer")
        for instance_id in await find_by_wid(tx.conn, callee):
            inst = await core.instances.get(instance_id, tx.conn)
            if inst is None or inst.state != AUTHORIZED or not wanted(inst.settings, offer):
                continue
            await _journal(tx.conn, inst.id, call_id, "in", caller, is_video, outcome, duration, now, due)
            await emit(tx, inst, offer)
        finished = call_event(EventKind.OUTGOING_CALL, call_id, now)
        for instance_id in await find_by_wid(tx.conn, caller):
            inst = await core.instances.get(instance_id, tx.conn)
            if inst is None or not wanted(inst.settings, finished):
                continue
            await _journal(tx.conn, inst.id, call_id, "out", callee, is_video, outcome, duration, now, due)
    core.timers.schedule(("call", call_id), due, partial(finish, core, call_id))
    return call_id


async def _journal(
    conn: Any,
    instance_id: int,
    call_id: str,
    direction: str,
    chat_id: str,
    is_video: bool,
    outcome: str,
    duration: int,
    now: int,
    due: int,
) -> None:
    await conn.execute(
        insert(call_journal).values(
            instance_id=instance_id,
            id_message=call_id,
            direction=direction,
            chat_id=chat_id,
            is_video=is_video,
            status="offer",
            duration_s=duration,
            started_ms=now,
            ended_ms=None,
            outcome=outcome,
            due_ms=due,
        )
    )


async def finish(core: Core, call_id: str) -> None:
    """The call ends as planned: update the journals and tell every instance involved."""
    async with core.tx() as tx:
        rows = (
            await tx.conn.execute(
                select(call_journal).where(
                    (call_journal.c.id_message == call_id) & (call_journal.c.status == "offer")
                )
            )
        ).all()
        now = now_ms()
        for row in rows:
            status = row.outcome if row.direction == "in" else _OUTGOING_STATUS[row.outcome]
            await tx.conn.execute(
                update(call_journal).where(call_journal.c.id == row.id).values(status=status, ended_ms=now)
            )
            inst = await core.instances.get(int(row.instance_id), tx.conn)
            if inst is None:
                continue
            if row.direction == "in":
                event = call_event(EventKind.INCOMING_CALL, call_id, now, peer=row.chat_id, status=status)
            else:
                event = call_event(
                    EventKind.OUTGOING_CALL,
                    call_id,
                    now,
                    peer=row.chat_id,
                    status=status,
                    is_video=bool(row.is_video),
                    duration_s=int(row.duration_s),
                )
            await emit(tx, inst, event)


async def resume(core: Core) -> int:
    """Plan the end of every call still ringing (after a restart)."""
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(call_journal.c.id_message, call_journal.c.due_ms)
                .where(call_journal.c.status == "offer")
                .distinct()
            )
        ).all()
    for row in rows:
        core.timers.schedule(("call", row.id_message), int(row.due_ms), partial(finish, core, row.id_message))
    return len(rows)


async def journal(core: Core, instance_id: int, direction: str, minutes: int) -> list[CallEntry]:
    """Finished calls of the instance in the last ``minutes``, newest first."""
    since = now_ms() - minutes * 60_000
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(call_journal)
                .where(
                    (call_journal.c.instance_id == instance_id)
                    & (call_journal.c.direction == direction)
                    & call_journal.c.ended_ms.is_not(None)
                    & (call_journal.c.ended_ms >= since)
                )
                .order_by(call_journal.c.id.desc())
                .limit(10_000)
            )
        ).all()
    return [
        CallEntry(
            id_message=r.id_message,
            direction=r.direction,
            chat_id=r.chat_id,
            is_video=bool(r.is_video),
            status=r.status,
            duration_s=int(r.duration_s),
            started_ms=int(r.started_ms),
            ended_ms=int(r.ended_ms),
        )
        for r in rows
    ]
