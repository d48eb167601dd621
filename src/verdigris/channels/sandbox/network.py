"""The sandbox network: routing between instances and simulated phones, and statuses flowing back.

An *account* on the network is a phone number. A sandbox phone owns it; instances linked to that
phone (by QR or pairing code) are its linked devices, exactly as with WhatsApp. A message to a
number reaches the phone and every authorized instance linked to it. Messages to numbers with no
phone get the ``noAccount`` status.

Statuses: ``sent`` when the network accepts a message, ``delivered`` at once (sandbox devices are
always online), ``read`` when the recipient reads it (readChat, a phone marking it read, or
``markIncomingMessagesReaded``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import bindparam, insert, select, update

from verdigris.channels.base import BaseChannel
from verdigris.channels.sandbox.changes import apply_change, show_typing
from verdigris.channels.sandbox.models import sandbox_blocks, sandbox_phone_messages, sandbox_phones
from verdigris.chats.service import contact_name
from verdigris.instances.service import AUTHORIZED, InstanceRecord, find_by_wid
from verdigris.instances.settings import is_on
from verdigris.messaging import lifecycle
from verdigris.messaging.content import new_device_id, quote_of, text_content, text_type
from verdigris.messaging.incoming import (
    IncomingMessage,
    mark_chat_read,
    message_event,
    receive,
    record_sent_elsewhere,
)
from verdigris.messaging.models import messages
from verdigris.messaging.notifications import emit
from verdigris.messaging.rich import TYPING
from verdigris.messaging.service import StoredMessage, set_author
from verdigris.messaging.vocabulary import STATUS_BROADCAST, Status, status_advances
from verdigris.store.clock import now_ms
from verdigris.store.direct import Direct

if TYPE_CHECKING:
    from verdigris.core import Core, Tx


class SandboxError(Exception):
    """A request to the sandbox network that cannot be carried out (unknown phone, bad chat...)."""


def wid_of(phone: str) -> str:
    return f"{phone}@c.us"


def phone_of(chat_id: str) -> str | None:
    """The digits of a personal chat id, or None for anything else (groups, malformed ids)."""
    if not chat_id.endswith("@c.us"):
        return None
    digits = chat_id[:-5]
    return digits if digits.isascii() and digits.isdigit() else None


@dataclass(slots=True)
class ApiRow:
    """The journal row of a message sent through the API, as the delivery that owns it knows it.

    The delivery claimed the row (status ``pending``) in its own transaction, so it knows the row
    without reading it again; ``_report_status`` keeps ``status`` current as it moves the row on.
    """

    id: int
    instance_id: int
    status: str
    sent_by_api: bool = True
    # Columns to write together with the row's next status change (one UPDATE instead of two).
    pending: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Outgoing:
    """A message leaving an account, in the network's words."""

    sender_wid: str
    sender_name: str
    chat_id: str  # the recipient's chat id as the sender sees it
    id_message: str
    type_message: str
    content: dict[str, Any]
    by_api: bool
    api_instance_id: int | None  # the instance that sent it through the API, if any
    api_row: ApiRow | None = None  # that instance's journal row, when the delivery knows it
    # The status of the sender's phone copy as written in this transaction (None: not known).
    phone_status: str | None = None


# Hot-path statements, built once with bind parameters: building a statement and its cache key
# costs more CPU than SQLite takes to run it (docs/performance.md). UPDATEs without values() take
# their SET columns from the parameters given at execution.
_PHONE_NAME = Direct(select(sandbox_phones.c.name).where(sandbox_phones.c.number == bindparam("number")))
_INSERT_PHONE_MESSAGE = Direct(insert(sandbox_phone_messages))
_API_ROWS_STMT = select(
    messages.c.id, messages.c.instance_id, messages.c.status, messages.c.sent_by_api
).where(
    (messages.c.instance_id == bindparam("instance_id"))
    & (messages.c.id_message == bindparam("id_message"))
    & (messages.c.direction == "out")
)
_API_ROWS = Direct(_API_ROWS_STMT)
_BLOCKED = Direct(
    select(sandbox_blocks.c.at_ms).where(
        (sandbox_blocks.c.phone == bindparam("phone")) & (sandbox_blocks.c.blocked == bindparam("wid"))
    )
)
_HOLDER_ROWS = Direct(_API_ROWS_STMT.where(messages.c.chat_id == bindparam("chat_id")))
_PHONE_OUT_STATUS = Direct(
    update(sandbox_phone_messages).where(
        (sandbox_phone_messages.c.phone == bindparam("w_phone"))
        & (sandbox_phone_messages.c.id_message == bindparam("w_id_message"))
        & (sandbox_phone_messages.c.direction == "out")
    )
)


async def linked_instances(tx: Tx, wid: str) -> list[int]:
    """The authorized instances linked to ``wid``, read once per transaction (a delivery asks for
    the sender's up to three times); ``instances.set_state`` clears the memo when a link changes."""
    key = ("linked", wid)
    found: list[int] | None = tx.memo.get(key)
    if found is None:
        found = tx.memo[key] = await find_by_wid(tx.conn, wid)
    return found


class SandboxNetwork(BaseChannel):
    """The sandbox network's routing: what the channel does with a message (channel.py declares
    the channel itself, with its capabilities)."""

    name = "sandbox"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        # Typing indicators currently shown on phones: phone -> {chat id: (typingType, until ms)}.
        self.typing: dict[str, dict[str, tuple[str, int]]] = {}

    # --- the Channel interface ---------------------------------------------------------------

    async def deliver(self, tx: Tx, rec: InstanceRecord, message: StoredMessage) -> None:
        if message.type_message == TYPING:
            await show_typing(self, tx, rec, message)
            return
        sender_phone = rec.phone
        # The send worker has just claimed the row: it is "pending" and this instance's own.
        api_row = ApiRow(message.row_id, rec.id, "pending")
        msg = Outgoing(
            sender_wid=rec.wid,
            sender_name=await phone_name(tx, sender_phone),
            chat_id=message.chat_id,
            id_message=message.id_message,
            type_message=message.type_message,
            content=message.content,
            by_api=True,
            api_instance_id=rec.id,
            api_row=api_row,
        )
        # Who sent it, as the journal shows it: written with the row's first status change
        # during routing, or below if the routing left the row alone.
        if message.sender != rec.wid or message.sender_name != msg.sender_name:
            api_row.pending = {"sender": rec.wid, "sender_name": msg.sender_name}
        await self._route(tx, msg)
        if api_row.pending:
            await set_author(tx, api_row.id, rec.wid, msg.sender_name)
            api_row.pending = {}
        if is_on(rec.settings, "markIncomingMessagesReadedOnReply"):
            await self.mark_read(tx, rec, message.chat_id, None)

    async def mark_read(self, tx: Tx, rec: InstanceRecord, chat_id: str, up_to: StoredMessage | None) -> int:
        rows = await mark_chat_read(tx, rec, chat_id, up_to)
        for row in rows:
            if chat_id.endswith("@g.us"):
                from verdigris.channels.sandbox import groups

                await groups.report_read(self, tx, chat_id, row.sender, row.id_message)
                continue
            await self._report_status(tx, row.sender, rec.wid, row.id_message, Status.READ)
        return len(rows)

    async def on_network(self, tx: Tx, phone: str) -> bool:
        """Whether a sandbox phone owns ``phone`` (inside the caller's transaction)."""
        return await _phone_row_name(tx, phone) is not None

    async def has_account(self, rec: InstanceRecord, phone: str) -> bool:
        async with self.core.read() as conn:
            return (await _PHONE_NAME.run(conn, {"number": phone})).scalar() is not None

    # --- routing -------------------------------------------------------------------------------

    async def _route(self, tx: Tx, msg: Outgoing) -> None:
        if msg.chat_id.endswith("@g.us"):
            from verdigris.channels.sandbox import groups

            await groups.route(self, tx, msg)
            return
        if msg.chat_id == STATUS_BROADCAST:
            from verdigris.channels.sandbox import statuses

            await statuses.route(self, tx, msg)
            return
        recipient_phone = phone_of(msg.chat_id)
        if recipient_phone is None or not await self.on_network(tx, recipient_phone):
            status = Status.NO_ACCOUNT if recipient_phone is not None else Status.FAILED
            description = (
                "" if recipient_phone is not None else f"chat {msg.chat_id} is not on the sandbox network"
            )
            await self._report_status(
                tx, msg.sender_wid, msg.chat_id, msg.id_message, status, description, msg
            )
            return
        now = now_ms()
        if await blocks(tx, recipient_phone, msg.sender_wid):
            # Blocked by the recipient: the message leaves the sender and stays "sent" for good.
            await self._sender_copies(tx, msg, now)
            await self._report_status(tx, msg.sender_wid, msg.chat_id, msg.id_message, Status.SENT, "", msg)
            return
        await apply_change(tx, msg.sender_wid, msg.chat_id, msg.type_message, msg.content)
        # The sender's side: the message leaves every device of the sender's account.
        await self._sender_copies(tx, msg, now)
        await self._report_status(tx, msg.sender_wid, msg.chat_id, msg.id_message, Status.SENT, "", msg)
        # The recipient's side: the phone and every linked instance.
        recipient_wid = wid_of(recipient_phone)
        await _insert_phone_message(
            tx, recipient_phone, msg.sender_wid, "in", msg, msg.sender_wid, "delivered", now
        )
        auto_read = False
        incoming = IncomingMessage(
            msg.id_message,
            msg.sender_wid,
            msg.sender_wid,
            msg.sender_name,
            msg.type_message,
            msg.content,
            now,
        )
        for instance_id in await linked_instances(tx, recipient_wid):
            target = await self.core.instances.get(instance_id, tx.conn)
            if target is None or target.state != AUTHORIZED:
                continue
            auto_read = await receive(tx, target, incoming) or auto_read
        # recipient_wid is msg.chat_id here (a personal chat id is its phone's wid), so passing msg
        # selects the same rows; it lets the API row be updated without reading it again.
        await self._report_status(
            tx, msg.sender_wid, recipient_wid, msg.id_message, Status.DELIVERED, "", msg
        )
        if auto_read:
            await self._report_status(tx, msg.sender_wid, recipient_wid, msg.id_message, Status.READ, "", msg)

    async def _sender_copies(self, tx: Tx, msg: Outgoing, now: int, chat_name: str | None = None) -> None:
        """Record the message on the sender's phone and announce it to the sender's instances."""
        sender_phone = phone_of(msg.sender_wid)
        if sender_phone is not None and msg.by_api:
            await _insert_phone_message(
                tx, sender_phone, msg.chat_id, "out", msg, msg.sender_wid, "sent", now
            )
            msg.phone_status = "sent"
        for instance_id in await linked_instances(tx, msg.sender_wid):
            inst = await self.core.instances.get(instance_id, tx.conn)
            if inst is None:
                continue
            if instance_id == msg.api_instance_id:
                kind = "outgoingAPIMessageReceived"
            else:
                kind = "outgoingMessageReceived"
                await record_sent_elsewhere(
                    tx,
                    inst,
                    IncomingMessage(
                        msg.id_message,
                        msg.chat_id,
                        msg.sender_wid,
                        msg.sender_name,
                        msg.type_message,
                        msg.content,
                        now,
                    ),
                )
            if chat_name is None:
                chat_name = await contact_name(tx.conn, inst.id, msg.chat_id) or await phone_name(
                    tx, phone_of(msg.chat_id) or ""
                )
            await emit(
                tx,
                inst,
                message_event(
                    kind,
                    msg.id_message,
                    msg.type_message,
                    msg.content,
                    msg.chat_id,
                    msg.sender_wid,
                    msg.sender_name,
                    now,
                    chat_name,
                ),
            )

    async def _report_status(
        self,
        tx: Tx,
        sender_wid: str,
        chat_id: str,
        id_message: str,
        status: Status,
        description: str = "",
        msg: Outgoing | None = None,
    ) -> None:
        """Move a sent message of account ``sender_wid`` (in chat ``chat_id``) to ``status``.

        Statuses only move forward (sent → delivered → read); each instance that holds the
        message gets an outgoingMessageStatus notification.
        """
        rows: list[Any] = []
        api_row = msg.api_row if msg is not None and msg.id_message == id_message else None
        if api_row is not None:
            rows = [api_row]
        elif msg is not None and msg.api_instance_id is not None:
            rows = list(
                await _API_ROWS.run(tx.conn, {"instance_id": msg.api_instance_id, "id_message": id_message})
            )
        for instance_id in await linked_instances(tx, sender_wid):
            if msg is not None and instance_id == msg.api_instance_id:
                continue
            rows += list(
                await _HOLDER_ROWS.run(
                    tx.conn, {"instance_id": instance_id, "id_message": id_message, "chat_id": chat_id}
                )
            )
        for row in rows:
            if not status_advances(row.status, status):
                continue
            columns = None
            if row is api_row:
                columns, api_row.pending = api_row.pending, {}
                api_row.status = status
            await lifecycle.set_status(
                tx,
                await self.core.instances.get(int(row.instance_id), tx.conn),
                row.id,
                chat_id,
                id_message,
                status,
                description,
                sent_by_api=bool(row.sent_by_api),
                columns=columns,
            )
        sender_phone = phone_of(sender_wid)
        own_copy = msg is not None and msg.sender_wid == sender_wid and msg.id_message == id_message
        if sender_phone is not None and not (own_copy and msg is not None and msg.phone_status == status):
            await _PHONE_OUT_STATUS.run(
                tx.conn, {"w_phone": sender_phone, "w_id_message": id_message, "status": status}
            )
            if own_copy and msg is not None:
                msg.phone_status = status

    # --- what phones do ------------------------------------------------------------------------

    async def phone_send_text(self, phone: str, chat_id: str, text: str, quoted_id: str | None = None) -> str:
        """A person types a message on a sandbox phone and sends it."""
        async with self.core.tx() as tx:
            if not await self.on_network(tx, phone):
                raise SandboxError(f"no sandbox phone {phone}")
            quoted = None
            if quoted_id:
                quoted = await _phone_quote(tx, phone, quoted_id)
            content = text_content(text, quoted=quoted)
            return await self.phone_send(tx, phone, chat_id, text_type(content), content)

    async def phone_send(
        self, tx: Tx, phone: str, chat_id: str, type_message: str, content: dict[str, Any]
    ) -> str:
        """A sandbox phone sends any kind of message (in the caller's transaction)."""
        if await blocks(tx, phone, chat_id):
            raise SandboxError(f"phone {phone} blocked {chat_id}: unblock it to send a message")
        msg = Outgoing(
            sender_wid=wid_of(phone),
            sender_name=await phone_name(tx, phone),
            chat_id=chat_id,
            id_message=new_device_id(),
            type_message=type_message,
            content=content,
            by_api=False,
            api_instance_id=None,
        )
        await _insert_phone_message(tx, phone, chat_id, "out", msg, msg.sender_wid, "pending", now_ms())
        await self._route(tx, msg)
        return msg.id_message

    async def phone_send_content(
        self,
        phone: str,
        chat_id: str,
        type_message: str,
        content: dict[str, Any],
        quoted_id: str | None = None,
    ) -> str:
        """A person sends any message (a file, ...) from a sandbox phone; ``content`` in domain form."""
        async with self.core.tx() as tx:
            if not await self.on_network(tx, phone):
                raise SandboxError(f"no sandbox phone {phone}")
            if quoted_id:
                content = {**content, "quoted": await _phone_quote(tx, phone, quoted_id)}
            return await self.phone_send(tx, phone, chat_id, type_message, content)

    async def phone_read(self, phone: str, chat_id: str | None, id_messages: list[str] | None) -> int:
        """The person opens a chat (or specific messages): senders learn they were read."""
        async with self.core.tx() as tx:
            cond = (
                (sandbox_phone_messages.c.phone == phone)
                & (sandbox_phone_messages.c.direction == "in")
                & (sandbox_phone_messages.c.read.is_(False))
            )
            if chat_id:
                cond = cond & (sandbox_phone_messages.c.chat_id == chat_id)
            if id_messages:
                cond = cond & sandbox_phone_messages.c.id_message.in_(id_messages)
            rows = (
                await tx.conn.execute(
                    select(
                        sandbox_phone_messages.c.id,
                        sandbox_phone_messages.c.id_message,
                        sandbox_phone_messages.c.sender,
                        sandbox_phone_messages.c.chat_id,
                    ).where(cond)
                )
            ).all()
            if not rows:
                return 0
            await tx.conn.execute(
                update(sandbox_phone_messages)
                .where(sandbox_phone_messages.c.id.in_([r.id for r in rows]))
                .values(read=True, status="read")
            )
            for row in rows:
                if row.chat_id.endswith("@g.us"):
                    from verdigris.channels.sandbox import groups

                    await groups.report_read(self, tx, row.chat_id, row.sender, row.id_message)
                    continue
                await self._report_status(tx, row.sender, wid_of(phone), row.id_message, Status.READ)
        return len(rows)


async def blocks(tx: Tx, phone: str, wid: str) -> bool:
    """Whether the sandbox phone ``phone`` has blocked the account ``wid``."""
    return (await _BLOCKED.run(tx.conn, {"phone": phone, "wid": wid})).scalar() is not None


async def _phone_row_name(tx: Tx, phone: str) -> str | None:
    """The phone's name, ``None`` when there is no such phone; read once per transaction (phones
    are created and renamed in transactions of their own)."""
    key = ("phone", phone)
    if key in tx.memo:
        name: str | None = tx.memo[key]
        return name
    name = (await _PHONE_NAME.run(tx.conn, {"number": phone})).scalar()
    tx.memo[key] = name
    return name


async def phone_name(tx: Tx, phone: str) -> str:
    if not phone:
        return ""
    return await _phone_row_name(tx, phone) or ""


async def _insert_phone_message(
    tx: Tx, phone: str, chat_id: str, direction: str, msg: Outgoing, sender: str, status: str, at: int
) -> None:
    await _INSERT_PHONE_MESSAGE.run(
        tx.conn,
        {
            "phone": phone,
            "chat_id": chat_id,
            "id_message": msg.id_message,
            "direction": direction,
            "sender": sender,
            "sender_name": msg.sender_name,
            "type_message": msg.type_message,
            "content": orjson.dumps(msg.content).decode(),
            "status": status,
            "read": direction == "out",
            "created_ms": at,
        },
    )


async def _phone_quote(tx: Tx, phone: str, id_message: str) -> dict[str, Any]:
    row = (
        await tx.conn.execute(
            select(sandbox_phone_messages).where(
                (sandbox_phone_messages.c.phone == phone)
                & (sandbox_phone_messages.c.id_message == id_message)
            )
        )
    ).first()
    if row is None:
        raise SandboxError(f"phone {phone} has no message {id_message} to quote")
    return quote_of(row.id_message, row.sender, row.type_message, orjson.loads(row.content))


# --- phones ------------------------------------------------------------------------------------


async def create_phone(core: Core, number: str, name: str = "") -> dict[str, Any]:
    if not (number.isascii() and number.isdigit()) or not 7 <= len(number) <= 15:
        raise SandboxError("phone number must be 7 to 15 digits, international format, no '+'")
    async with core.tx() as tx:
        exists = await tx.conn.scalar(
            select(sandbox_phones.c.number).where(sandbox_phones.c.number == number)
        )
        if exists is None:
            # Like a messenger account without a profile name, a phone without a name shows its number.
            name = name or number
            await tx.conn.execute(
                insert(sandbox_phones).values(number=number, name=name, created_ms=now_ms())
            )
        elif name:
            await tx.conn.execute(
                update(sandbox_phones).where(sandbox_phones.c.number == number).values(name=name)
            )
    return {"number": number, "name": name, "wid": wid_of(number)}


async def get_phone(core: Core, number: str) -> dict[str, Any] | None:
    async with core.read() as conn:
        row = (await conn.execute(select(sandbox_phones).where(sandbox_phones.c.number == number))).first()
        if row is None:
            return None
        linked = await find_by_wid(conn, wid_of(number))
    return {"number": row.number, "name": row.name, "wid": wid_of(row.number), "linkedInstances": linked}


async def list_phones(core: Core) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (await conn.execute(select(sandbox_phones).order_by(sandbox_phones.c.created_ms))).all()
    return [{"number": r.number, "name": r.name, "wid": wid_of(r.number)} for r in rows]


async def phone_messages(
    core: Core, phone: str, *, chat_id: str | None, unread_only: bool, direction: str | None, limit: int
) -> list[dict[str, Any]]:
    cond = sandbox_phone_messages.c.phone == phone
    if chat_id:
        cond = cond & (sandbox_phone_messages.c.chat_id == chat_id)
    if unread_only:
        cond = cond & (sandbox_phone_messages.c.read.is_(False))
    if direction:
        cond = cond & (sandbox_phone_messages.c.direction == direction)
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(sandbox_phone_messages)
                .where(cond)
                .order_by(sandbox_phone_messages.c.id.desc())
                .limit(limit)
            )
        ).all()
    return [
        {
            "idMessage": r.id_message,
            "chatId": r.chat_id,
            "direction": "incoming" if r.direction == "in" else "outgoing",
            "sender": r.sender,
            "senderName": r.sender_name,
            "typeMessage": r.type_message,
            "content": orjson.loads(r.content),
            # Files: where the phone's owner would open them.
            **_file_link(r.content),
            "status": r.status,
            "read": bool(r.read),
            "timestamp": int(r.created_ms) // 1000,
        }
        for r in reversed(rows)
    ]


def _file_link(content_json: str) -> dict[str, Any]:
    """A file message's link, shown next to the content in a phone's message list."""
    url = orjson.loads(content_json).get("downloadUrl")
    return {"downloadUrl": url} if url else {}
