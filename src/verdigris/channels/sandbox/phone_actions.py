"""What a person does on a sandbox phone beyond typing text: share a location or contacts, vote in
a poll, react, edit or delete own messages, press a button. Each action is a message the phone
sends, routed by the network like any other (so instances see it exactly as a real phone's).

Blocking is the exception: no message, but the blocked account's instances get ``incomingBlock``
(their messages to the phone then stay ``sent``), and unblocking undoes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete as delete_rows
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from verdigris.channels.sandbox.models import sandbox_blocks, sandbox_phone_messages
from verdigris.channels.sandbox.network import (
    SandboxError,
    _phone_quote,
    blocks,
    linked_instances,
    phone_of,
    wid_of,
)
from verdigris.messaging import rich
from verdigris.messaging.notifications import block_event, emit
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.channels.sandbox.network import SandboxNetwork
    from verdigris.core import Tx


async def _phone_message(tx: Tx, phone: str, id_message: str) -> Any:
    row = (
        await tx.conn.execute(
            select(sandbox_phone_messages)
            .where(
                (sandbox_phone_messages.c.phone == phone)
                & (sandbox_phone_messages.c.id_message == id_message)
            )
            .order_by(sandbox_phone_messages.c.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        raise SandboxError(f"phone {phone} has no message {id_message}")
    return row


async def _check_phone(channel: SandboxNetwork, tx: Tx, phone: str) -> None:
    if not await channel.on_network(tx, phone):
        raise SandboxError(f"no sandbox phone {phone}")


async def send_location(
    channel: SandboxNetwork,
    phone: str,
    chat_id: str,
    latitude: float,
    longitude: float,
    name: str = "",
    address: str = "",
    quoted_id: str | None = None,
) -> str:
    async with channel.core.tx() as tx:
        await _check_phone(channel, tx, phone)
        quoted = await _phone_quote(tx, phone, quoted_id) if quoted_id else None
        content = rich.location(latitude, longitude, name, address, quoted=quoted)
        return await channel.phone_send(tx, phone, chat_id, "locationMessage", content)


async def send_contacts(
    channel: SandboxNetwork,
    phone: str,
    chat_id: str,
    cards: list[dict[str, str]],
    quoted_id: str | None = None,
) -> str:
    async with channel.core.tx() as tx:
        await _check_phone(channel, tx, phone)
        quoted = await _phone_quote(tx, phone, quoted_id) if quoted_id else None
        type_message, content = rich.contacts(cards, quoted=quoted)
        return await channel.phone_send(tx, phone, chat_id, type_message, content)


async def vote(channel: SandboxNetwork, phone: str, poll_id: str, chosen: list[str]) -> str:
    """The phone's owner (re)votes: ``chosen`` is the complete current choice ([] withdraws the vote)."""
    async with channel.core.tx() as tx:
        await _check_phone(channel, tx, phone)
        row = await _phone_message(tx, phone, poll_id)
        if row.type_message != "pollMessage":
            raise SandboxError(f"message {poll_id} is a {row.type_message}, not a poll")
        poll = orjson.loads(row.content)
        options = list(poll.get("options", []))
        unknown = [name for name in chosen if name not in options]
        if unknown:
            raise SandboxError(f"the poll has no option {unknown[0]!r}; options: {options}")
        if len(set(chosen)) != len(chosen):
            raise SandboxError("each option can be chosen once")
        if len(chosen) > 1 and not poll.get("multipleAnswers"):
            raise SandboxError("this poll allows one answer only")
        ordered = [name for name in options if name in chosen]
        content = rich.poll_vote(poll_id, poll, ordered, wid_of(phone))
        return await channel.phone_send(tx, phone, row.chat_id, "pollUpdateMessage", content)


async def react(channel: SandboxNetwork, phone: str, target_id: str, emoji: str) -> str:
    async with channel.core.tx() as tx:
        await _check_phone(channel, tx, phone)
        row = await _phone_message(tx, phone, target_id)
        content = rich.reaction(emoji, target_id, row.sender)
        return await channel.phone_send(tx, phone, row.chat_id, "reactionMessage", content)


async def _own_message(tx: Tx, phone: str, target_id: str, action: str) -> Any:
    row = await _phone_message(tx, phone, target_id)
    if row.direction != "out":
        raise SandboxError(f"only the phone's own messages can be {action}")
    if orjson.loads(row.content).get("deleted"):
        raise SandboxError(f"message {target_id} is deleted")
    return row


async def edit(channel: SandboxNetwork, phone: str, target_id: str, text: str) -> str:
    async with channel.core.tx() as tx:
        await _check_phone(channel, tx, phone)
        row = await _own_message(tx, phone, target_id, "edited")
        if not rich.editable(row.type_message):
            raise SandboxError(f"a {row.type_message} cannot be edited (text messages and captions can)")
        if now_ms() - int(row.created_ms) > rich.EDIT_WINDOW_MS:
            raise SandboxError("messages can be edited within 15 minutes of sending")
        content = rich.edit(target_id, row.type_message, text)
        return await channel.phone_send(tx, phone, row.chat_id, "editedMessage", content)


async def delete(channel: SandboxNetwork, phone: str, target_id: str) -> str:
    async with channel.core.tx() as tx:
        await _check_phone(channel, tx, phone)
        row = await _own_message(tx, phone, target_id, "deleted for everyone")
        return await channel.phone_send(tx, phone, row.chat_id, "deletedMessage", rich.deletion(target_id))


async def press(channel: SandboxNetwork, phone: str, target_id: str, button_id: str) -> str:
    async with channel.core.tx() as tx:
        await _check_phone(channel, tx, phone)
        row = await _phone_message(tx, phone, target_id)
        if row.direction != "in":
            raise SandboxError("a phone presses buttons of messages it received")
        try:
            type_message, content = rich.press(
                target_id, row.sender, row.type_message, orjson.loads(row.content), button_id
            )
        except ValueError as exc:
            raise SandboxError(str(exc)) from None
        return await channel.phone_send(tx, phone, row.chat_id, type_message, content)


async def set_blocked(channel: SandboxNetwork, phone: str, chat_id: str, blocked: bool) -> bool:
    """The person blocks (or unblocks) the account ``chat_id`` on the phone. The instances linked to
    that account learn it (``incomingBlock``). Returns False when nothing changed (already so)."""
    digits = phone_of(chat_id)
    if digits is None or not 5 <= len(digits) <= 20:
        raise SandboxError(f"'chatId' must be a personal chat such as 79990000001@c.us, got {chat_id!r}")
    if chat_id == wid_of(phone):
        raise SandboxError("a phone cannot block its own number")
    try:
        async with channel.core.tx() as tx:
            await _check_phone(channel, tx, phone)
            if blocked:
                if await blocks(tx, phone, chat_id):
                    return False
                await tx.conn.execute(
                    insert(sandbox_blocks).values(phone=phone, blocked=chat_id, at_ms=now_ms())
                )
            else:
                gone = await tx.conn.execute(
                    delete_rows(sandbox_blocks).where(
                        (sandbox_blocks.c.phone == phone) & (sandbox_blocks.c.blocked == chat_id)
                    )
                )
                if not gone.rowcount:  # not blocked, or a simultaneous unblock took it
                    return False
            event = block_event(wid_of(phone), blocked)
            for instance_id in await linked_instances(tx, chat_id):
                rec = await channel.core.instances.get(instance_id, tx.conn)
                if rec is not None:
                    await emit(tx, rec, event)
    except IntegrityError:  # a simultaneous block of the same pair committed first: already so
        return False
    return True


async def blocked_by(channel: SandboxNetwork, phone: str) -> list[str]:
    """The accounts the phone has blocked, oldest block first."""
    async with channel.core.read() as conn:
        rows = await conn.execute(
            select(sandbox_blocks.c.blocked)
            .where(sandbox_blocks.c.phone == phone)
            .order_by(sandbox_blocks.c.at_ms)
        )
        return [str(r[0]) for r in rows]
