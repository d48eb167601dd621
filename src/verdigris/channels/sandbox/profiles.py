"""What sandbox accounts show of themselves: push names (the phone's name) and profile pictures
(stored next to group pictures, channels/sandbox/groups.py). The sandbox's ``profiles`` capability."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from verdigris.channels.capabilities import Avatar, ContactProfile
from verdigris.channels.sandbox.groups import profile_picture_url, set_profile_picture
from verdigris.channels.sandbox.models import sandbox_phones

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core
    from verdigris.instances.service import InstanceRecord

__all__ = [
    "avatar",
    "contact_profile",
    "contacts",
    "profile_picture_url",
    "push_names",
    "set_profile_picture",
]


def _phone(chat_id: str) -> str | None:
    number = chat_id[:-5] if chat_id.endswith("@c.us") else ""
    return number if number.isdigit() else None


async def avatar(core: Core, rec: InstanceRecord, chat_id: str) -> Avatar:
    """A sandbox phone's picture (group chats: none shown)."""
    phone = _phone(chat_id)
    exists = phone is not None and await core.channel(rec.channel).has_account(rec, phone)
    url = await profile_picture_url(core, phone) if exists and phone else ""
    return Avatar(url, exists, exists)


async def contact_profile(core: Core, rec: InstanceRecord, chat_id: str) -> ContactProfile | None:
    phone = _phone(chat_id)
    if phone is None or not await core.channel(rec.channel).has_account(rec, phone):
        return None
    return ContactProfile(avatar=await profile_picture_url(core, phone))


async def contacts(core: Core, rec: InstanceRecord) -> dict[str, str]:
    """A sandbox phone has no address book beyond the instance's phonebook."""
    return {}


async def push_names(conn: AsyncConnection, numbers: list[str]) -> dict[str, str]:
    """The names the phones of ``numbers`` (digits) show; numbers without a phone are left out."""
    if not numbers:
        return {}
    rows = await conn.execute(
        select(sandbox_phones.c.number, sandbox_phones.c.name).where(sandbox_phones.c.number.in_(numbers))
    )
    return {r.number: r.name for r in rows if r.name}
