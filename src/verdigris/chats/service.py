"""Chat and contact actions of an instance: phonebook, archive, disappearing messages, listings.

The phonebook belongs to the account the instance is linked to, as on a phone; it is kept per
instance because that is the unit the API addresses. Its names feed ``senderContactName`` of
message notifications and ``contactName`` of getContacts / getContactInfo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, insert, select, update

from verdigris.chats.models import chat_settings, phonebook
from verdigris.messaging.models import messages
from verdigris.store.clock import now_ms
from verdigris.store.direct import Direct

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.channels.capabilities import Profiles
    from verdigris.core import Core
    from verdigris.instances.service import InstanceRecord

DISAPPEARING_TIMERS = (0, 86400, 604800, 7776000)


class ChatError(Exception):
    """An action the chat's current state does not allow."""


@dataclass(slots=True)
class Contact:
    chat_id: str
    first_name: str
    last_name: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(slots=True)
class ChatState:
    archived: bool = False
    ephemeral_expiration: int = 0
    ephemeral_set_ms: int = 0


# --- lookups used on the hot path ------------------------------------------------------------


# Built once: contact_name runs on every sandbox delivery (docs/performance.md).
_CONTACT_NAME = Direct(
    select(phonebook.c.first_name, phonebook.c.last_name).where(
        (phonebook.c.instance_id == bindparam("instance_id")) & (phonebook.c.chat_id == bindparam("chat_id"))
    )
)


async def contact_name(conn: AsyncConnection, instance_id: int, chat_id: str) -> str:
    """The phonebook name of ``chat_id`` for the instance, or ``""``."""
    row = (await _CONTACT_NAME.run(conn, {"instance_id": instance_id, "chat_id": chat_id})).first()
    return f"{row.first_name} {row.last_name}".strip() if row else ""


async def contact_names(core: Core, instance_id: int) -> dict[str, str]:
    """The whole phonebook of an instance: chat id → name."""
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(phonebook.c.chat_id, phonebook.c.first_name, phonebook.c.last_name).where(
                    phonebook.c.instance_id == instance_id
                )
            )
        ).all()
    return {r.chat_id: f"{r.first_name} {r.last_name}".strip() for r in rows}


async def get_contact(conn: AsyncConnection, instance_id: int, chat_id: str) -> Contact | None:
    row = (
        await conn.execute(
            select(phonebook).where(
                (phonebook.c.instance_id == instance_id) & (phonebook.c.chat_id == chat_id)
            )
        )
    ).first()
    return Contact(row.chat_id, row.first_name, row.last_name) if row else None


def profiles_of(core: Core, rec: InstanceRecord) -> Profiles | None:
    """The push names and pictures of the instance's own network (None: it shows none), so that
    an instance never shows the names of another network's accounts."""
    channel = core.channels.get(rec.channel)
    return channel.profiles if channel is not None else None


async def push_name(core: Core, rec: InstanceRecord, conn: AsyncConnection, chat_id: str) -> str:
    """The profile (push) name an account of ``rec``'s network chose for itself, ``""`` when unknown."""
    profiles = profiles_of(core, rec)
    if profiles is None or not chat_id.endswith("@c.us"):
        return ""
    number = chat_id[:-5]
    return (await profiles.push_names(conn, [number])).get(number, "")


async def chat_state(conn: AsyncConnection, instance_id: int, chat_id: str) -> ChatState:
    row = (
        await conn.execute(
            select(chat_settings).where(
                (chat_settings.c.instance_id == instance_id) & (chat_settings.c.chat_id == chat_id)
            )
        )
    ).first()
    if row is None:
        return ChatState()
    return ChatState(bool(row.archived), int(row.ephemeral_expiration), int(row.ephemeral_set_ms))


# --- the phonebook -----------------------------------------------------------------------------


async def save_contact(
    core: Core, rec: InstanceRecord, chat_id: str, first_name: str, last_name: str, in_address_book: bool
) -> bool:
    """Add or replace a phonebook entry; True when it was new."""
    at = now_ms()
    async with core.tx() as tx:
        existing = await get_contact(tx.conn, rec.id, chat_id)
        if existing is None:
            await tx.conn.execute(
                insert(phonebook).values(
                    instance_id=rec.id,
                    chat_id=chat_id,
                    first_name=first_name,
                    last_name=last_name,
                    in_address_book=in_address_book,
                    created_ms=at,
                    updated_ms=at,
                )
            )
            return True
        await tx.conn.execute(
            update(phonebook)
            .where((phonebook.c.instance_id == rec.id) & (phonebook.c.chat_id == chat_id))
            .values(
                first_name=first_name, last_name=last_name, in_address_book=in_address_book, updated_ms=at
            )
        )
        return False


async def edit_contact(
    core: Core, rec: InstanceRecord, chat_id: str, first_name: str, last_name: str, in_address_book: bool
) -> None:
    async with core.tx() as tx:
        result = await tx.conn.execute(
            update(phonebook)
            .where((phonebook.c.instance_id == rec.id) & (phonebook.c.chat_id == chat_id))
            .values(
                first_name=first_name,
                last_name=last_name,
                in_address_book=in_address_book,
                updated_ms=now_ms(),
            )
        )
        if not result.rowcount:
            raise ChatError(f"{chat_id} is not in the phonebook; add it with addContact")


async def delete_contact(core: Core, rec: InstanceRecord, chat_id: str) -> None:
    async with core.tx() as tx:
        result = await tx.conn.execute(
            delete(phonebook).where((phonebook.c.instance_id == rec.id) & (phonebook.c.chat_id == chat_id))
        )
        if not result.rowcount:
            raise ChatError(f"{chat_id} is not in the phonebook")


# --- per-chat settings -------------------------------------------------------------------------


async def _put_state(core: Core, rec: InstanceRecord, chat_id: str, **values: Any) -> ChatState:
    async with core.tx() as tx:
        if "archived" in values and values["archived"]:
            has_incoming = await tx.conn.scalar(
                select(messages.c.id)
                .where(
                    (messages.c.instance_id == rec.id)
                    & (messages.c.chat_id == chat_id)
                    & (messages.c.direction == "in")
                )
                .limit(1)
            )
            if has_incoming is None:
                raise ChatError("ArchiveChatError: cannot archive chat cause last message not found in chat")
        current = await chat_state(tx.conn, rec.id, chat_id)
        exists = await tx.conn.scalar(
            select(func.count())
            .select_from(chat_settings)
            .where((chat_settings.c.instance_id == rec.id) & (chat_settings.c.chat_id == chat_id))
        )
        values["updated_ms"] = now_ms()
        if exists:
            await tx.conn.execute(
                update(chat_settings)
                .where((chat_settings.c.instance_id == rec.id) & (chat_settings.c.chat_id == chat_id))
                .values(**values)
            )
        else:
            await tx.conn.execute(insert(chat_settings).values(instance_id=rec.id, chat_id=chat_id, **values))
        for key in ("archived", "ephemeral_expiration", "ephemeral_set_ms"):
            if key in values:
                setattr(current, key, values[key])
        return current


async def set_archived(core: Core, rec: InstanceRecord, chat_id: str, archived: bool) -> ChatState:
    """Archive (needs at least one incoming message in the chat) or unarchive a chat."""
    return await _put_state(core, rec, chat_id, archived=archived)


async def set_disappearing(core: Core, rec: InstanceRecord, chat_id: str, seconds: int) -> ChatState:
    if seconds not in DISAPPEARING_TIMERS:
        raise ChatError(f"'ephemeralExpiration' must be one of {list(DISAPPEARING_TIMERS)}")
    return await _put_state(core, rec, chat_id, ephemeral_expiration=seconds, ephemeral_set_ms=now_ms())


# --- listings ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ChatSummary:
    chat_id: str
    name: str  # phonebook name, else profile name, else ""
    contact_name: str
    push_name: str
    state: ChatState

    @property
    def is_group(self) -> bool:
        return self.chat_id.endswith("@g.us")


async def _summaries(
    core: Core, conn: AsyncConnection, rec: InstanceRecord, chat_ids: list[str]
) -> list[ChatSummary]:
    """Names and settings of many chats in three queries."""
    if not chat_ids:
        return []
    book = {
        r.chat_id: f"{r.first_name} {r.last_name}".strip()
        for r in (
            await conn.execute(
                select(phonebook.c.chat_id, phonebook.c.first_name, phonebook.c.last_name).where(
                    (phonebook.c.instance_id == rec.id) & phonebook.c.chat_id.in_(chat_ids)
                )
            )
        ).all()
    }
    states = {
        r.chat_id: ChatState(bool(r.archived), int(r.ephemeral_expiration), int(r.ephemeral_set_ms))
        for r in (
            await conn.execute(
                select(chat_settings).where(
                    (chat_settings.c.instance_id == rec.id) & chat_settings.c.chat_id.in_(chat_ids)
                )
            )
        ).all()
    }
    profiles = profiles_of(core, rec)
    numbers = [c[:-5] for c in chat_ids if c.endswith("@c.us")]
    found = await profiles.push_names(conn, numbers) if profiles is not None else {}
    pushes = {f"{number}@c.us": name for number, name in found.items()}
    out = []
    for chat_id in chat_ids:
        contact = book.get(chat_id, "")
        push = pushes.get(chat_id, "")
        out.append(ChatSummary(chat_id, contact or push, contact, push, states.get(chat_id, ChatState())))
    return out


async def list_chats(core: Core, rec: InstanceRecord, count: int | None) -> list[ChatSummary]:
    """Chats that have messages in the journal, most recently active first."""
    async with core.read() as conn:
        last = func.max(messages.c.id).label("last")
        query = (
            select(messages.c.chat_id, last)
            .where((messages.c.instance_id == rec.id) & (messages.c.status != "cleared"))
            .group_by(messages.c.chat_id)
            .order_by(last.desc())
        )
        if count is not None:
            query = query.limit(count)
        chat_ids = [r.chat_id for r in (await conn.execute(query)).all()]
        return await _summaries(core, conn, rec, chat_ids)


async def list_contacts(
    core: Core, rec: InstanceRecord, group: bool | None, count: int | None
) -> list[ChatSummary]:
    """The phonebook plus everyone the account has a chat with (groups: chats with a group id)."""
    async with core.read() as conn:
        book = (
            (
                await conn.execute(
                    select(phonebook.c.chat_id)
                    .where(phonebook.c.instance_id == rec.id)
                    .order_by(phonebook.c.id)
                )
            )
            .scalars()
            .all()
        )
        chatted = (
            (
                await conn.execute(
                    select(messages.c.chat_id)
                    .where((messages.c.instance_id == rec.id) & (messages.c.status != "cleared"))
                    .group_by(messages.c.chat_id)
                    .order_by(func.min(messages.c.id))
                )
            )
            .scalars()
            .all()
        )
        seen: dict[str, None] = {}
        for chat_id in [*book, *chatted]:
            if group is True and not chat_id.endswith("@g.us"):
                continue
            if group is False and chat_id.endswith("@g.us"):
                continue
            seen.setdefault(chat_id, None)
        chat_ids = list(seen)
        if count is not None:
            chat_ids = chat_ids[:count]
        return await _summaries(core, conn, rec, chat_ids)
