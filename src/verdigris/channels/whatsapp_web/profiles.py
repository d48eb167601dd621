"""What WhatsApp accounts show of themselves, as a linked account sees them (the ``profiles``
capability of the WhatsApp Web channel): avatars (people's and groups'), contact profiles, the
account's address book, and its own picture.

Every answer is WhatsApp's, asked through the session of the instance (or, for the account's own
picture, of the instance linked to that number). Avatars are not number lookups and do not count
against the ``checkWhatsapp`` cap; a contact profile asks WhatsApp for the account's user info,
which tells whether the number is on WhatsApp, so it counts as one.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, overload

import structlog
from sqlalchemy import select

from verdigris.channels.base import ChannelUnavailable, ChannelUnsupported
from verdigris.channels.capabilities import Avatar, ContactProfile
from verdigris.channels.whatsapp_web.names import CHANNEL, jid_of, wid_of
from verdigris.instances.models import instances as instance_rows
from verdigris.instances.service import InstanceError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.channels.whatsapp_web.channel import WebChannel
    from verdigris.core import Core
    from verdigris.instances.service import InstanceRecord

log = structlog.get_logger("verdigris.waweb")


class WebProfiles:
    def __init__(self, channel: WebChannel) -> None:
        self.channel = channel

    async def avatar(self, core: Core, rec: InstanceRecord, chat_id: str) -> Avatar:
        got = await self.channel.ask(rec, "avatar", {"jid": jid_of(chat_id)})
        return Avatar(str(got.get("url", "")), bool(got.get("available")), bool(got.get("exists")))

    async def contact_profile(self, core: Core, rec: InstanceRecord, chat_id: str) -> ContactProfile | None:
        got = await self.channel.ask(rec, "contact", {"jid": jid_of(chat_id)}, counted="getContactInfo")
        if not got.get("exists"):
            return None
        return ContactProfile(
            avatar=str(got.get("avatar", "")),
            push_name=str(got.get("push_name", ""))[:200],
            description=str(got.get("about", ""))[:1000],
            business=bool(got.get("business")),
        )

    async def contacts(self, core: Core, rec: InstanceRecord) -> dict[str, str]:
        """The phone's address book ({} while WhatsApp cannot be asked: the phonebook and the
        chats, kept by the server, are still listed)."""
        try:
            got = await self.channel.ask(rec, "contacts", {})
        except (ChannelUnavailable, InstanceError) as exc:
            log.info("WhatsApp Web address book not read", instance=rec.id, reason=str(exc)[:200])
            return {}
        out: dict[str, str] = {}
        for c in got.get("contacts") or []:
            if not isinstance(c, dict) or "@" not in str(c.get("jid", "")):
                continue
            name = c.get("full_name") or c.get("business_name") or c.get("push_name") or ""
            out[wid_of(str(c["jid"]))] = str(name)[:200]
        return out

    async def push_names(self, conn: AsyncConnection, numbers: list[str]) -> dict[str, str]:
        """Not asked without the instance (getContactInfo and getContacts ask WhatsApp for them)."""
        return {}

    async def _own(self, core: Core, phone: str) -> InstanceRecord:
        """The instance linked to ``phone`` on this channel (its own picture is asked through it)."""
        async with core.read() as conn:
            found = await conn.scalar(
                select(instance_rows.c.id)
                .where(
                    (instance_rows.c.channel == CHANNEL)
                    & (instance_rows.c.wid == f"{phone}@c.us")
                    & instance_rows.c.deleted_ms.is_(None)
                )
                .order_by(instance_rows.c.id)
                .limit(1)
            )
        rec = await core.instances.get(int(found)) if found is not None else None
        if rec is None:
            raise ChannelUnavailable(f"no instance of this server is linked to {phone}")
        return rec

    async def profile_picture_url(self, core: Core, phone: str) -> str:
        """The account's own picture (getWaSettings); "" when it cannot be asked right now."""
        try:
            rec = await self._own(core, phone)
            return (await self.avatar(core, rec, f"{phone}@c.us")).url
        except (ChannelUnavailable, ChannelUnsupported, InstanceError):
            return ""

    async def set_profile_picture(self, core: Core, phone: str, data: bytes) -> str:
        rec = await self._own(core, phone)
        await self.channel.ask(rec, "set_picture", {"data": base64.b64encode(data).decode()})
        return await self.profile_picture_url(core, phone)


class OwnProfiles:
    """The ``profiles`` capability on the channel class (the compatibility table reads it there)
    and, on each channel, that channel's :class:`WebProfiles` (as groups.OwnGroups)."""

    @overload
    def __get__(self, channel: None, owner: type[Any]) -> OwnProfiles: ...
    @overload
    def __get__(self, channel: WebChannel, owner: type[Any]) -> WebProfiles: ...
    def __get__(self, channel: WebChannel | None, owner: type[Any]) -> OwnProfiles | WebProfiles:
        return self if channel is None else channel.web_profiles
