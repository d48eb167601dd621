"""Messages that change other messages (edits, deletions) and typing indicators, on the sandbox
network.

An edit or a deletion travels like any message (so the other side gets its editedMessage /
deletedMessage notification through the normal routing); before it is routed, every copy of the
original in this conversation is changed: the sender's and recipient's instances' journals and
both phones' views.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select, update

from verdigris.channels.sandbox.models import sandbox_phone_messages
from verdigris.instances.service import find_by_wid
from verdigris.messaging import service as journal
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Tx
    from verdigris.instances.service import InstanceRecord
    from verdigris.messaging.service import StoredMessage


def _digits(wid: str) -> str | None:
    if not wid.endswith("@c.us"):
        return None
    number = wid[:-5]
    return number if number.isdigit() else None


def changed_content(type_message: str, change: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    out = dict(original)
    if type_message == "editedMessage":
        for key in ("text", "caption"):
            if key in change:
                out[key] = change[key]
        out["edited"] = True
    else:
        out["deleted"] = True
    return out


async def apply_change(
    tx: Tx, sender_wid: str, chat_id: str, type_message: str, content: dict[str, Any]
) -> int:
    """Apply an edit or a deletion to every copy of its target in the conversation; returns how many."""
    if type_message not in ("editedMessage", "deletedMessage"):
        return 0
    target = str(content.get("target_id", ""))
    if not target:
        return 0
    changed = 0
    sides = [(sender_wid, chat_id), (chat_id, sender_wid)]
    for owner_wid, peer in sides:
        holders = await find_by_wid(tx.conn, owner_wid)
        if holders:
            changed += await journal.rewrite(
                tx, holders, peer, target, partial(changed_content, type_message, content)
            )
        phone = _digits(owner_wid)
        if phone is None:
            continue
        rows = (
            await tx.conn.execute(
                select(sandbox_phone_messages.c.id, sandbox_phone_messages.c.content).where(
                    (sandbox_phone_messages.c.phone == phone)
                    & (sandbox_phone_messages.c.id_message == target)
                    & (sandbox_phone_messages.c.chat_id == peer)
                )
            )
        ).all()
        for row in rows:
            new = changed_content(type_message, content, orjson.loads(row.content))
            await tx.conn.execute(
                update(sandbox_phone_messages)
                .where(sandbox_phone_messages.c.id == row.id)
                .values(content=orjson.dumps(new).decode())
            )
            changed += 1
    return changed


async def show_typing(channel: Any, tx: Tx, rec: InstanceRecord, message: StoredMessage) -> None:
    """sendTyping reached the head of the queue: the recipient's phone shows the indicator.

    It is not a chat message, so it leaves the queue without a journal entry or statuses.
    """
    phone = _digits(message.chat_id)
    if phone is not None and await channel.on_network(tx, phone):
        until = now_ms() + int(message.content.get("typingTime", 1000))
        shown: dict[str, tuple[str, int]] = channel.typing.setdefault(phone, {})
        shown[rec.wid] = (str(message.content.get("typingType", "typing")), until)
    await journal.drop(tx, message.row_id)


def typing_on(channel: Any, phone: str) -> list[dict[str, Any]]:
    """Typing indicators a phone currently shows (expired ones are dropped)."""
    now = now_ms()
    shown: dict[str, tuple[str, int]] = channel.typing.get(phone, {})
    live = {chat: value for chat, value in shown.items() if value[1] > now}
    if live:
        channel.typing[phone] = live
    else:
        channel.typing.pop(phone, None)
    return [{"chatId": chat, "typingType": kind, "untilMs": until} for chat, (kind, until) in live.items()]
