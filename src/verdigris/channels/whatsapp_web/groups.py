"""Groups of a linked WhatsApp account (the ``groups`` capability of the WhatsApp Web channel).

The groups live at WhatsApp, in each linked account: every call asks the gateway, through the
session of the instance linked to the acting account (``actor``, a wid), which WhatsApp answers
as that account. WhatsApp's refusals are mapped to the capability's error codes by what whatsmeow
says (not found, not authorized / forbidden).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, overload

from sqlalchemy import select

from verdigris.channels.base import ChannelUnavailable
from verdigris.channels.capabilities import ADMIN, MEMBER, SUPERADMIN, Group, GroupError
from verdigris.channels.whatsapp_web.names import CHANNEL, jid_of, session_of, wid_of
from verdigris.channels.whatsapp_web.protocol import GatewayError
from verdigris.instances.models import instances as instance_rows

if TYPE_CHECKING:
    from verdigris.channels.whatsapp_web.channel import WebChannel
    from verdigris.core import Core

# A participant change WhatsApp refused, by the code it answered for that participant.
_PARTICIPANT_ERRORS = {403: "not_admin", 404: "no_account", 409: "already"}


def _error(exc: GatewayError) -> Exception:
    if exc.retryable:
        return ChannelUnavailable(f"WhatsApp cannot be asked right now: {exc.message}")
    text = exc.message.lower()
    if "404" in text or "item-not-found" in text or "not a group" in text:
        return GroupError("not_found", exc.message)
    if any(word in text for word in ("403", "401", "forbidden", "not-authorized")):
        return GroupError("not_admin", exc.message)
    return GroupError("not_member", exc.message)


def _group(view: dict[str, Any]) -> Group:

    members: dict[str, str] = {}
    for p in view.get("participants") or []:
        role = SUPERADMIN if p.get("super_admin") else ADMIN if p.get("admin") else MEMBER
        members[wid_of(str(p.get("jid", "")))] = role
    return Group(
        id=wid_of(str(view["id"])),
        subject=str(view.get("subject", "")),
        owner=wid_of(str(view.get("owner", ""))) if view.get("owner") else "",
        created_ms=int(view.get("created_ms") or 0),
        subject_ms=int(view.get("subject_ms") or 0),
        subject_owner=wid_of(str(view.get("subject_owner", ""))) if view.get("subject_owner") else "",
        invite_code=str(view.get("invite_code", "")),
        members_edit_info=not view.get("locked"),
        members_send=not view.get("announce"),
        picture="",
        members=members,
    )


class WebGroups:
    def __init__(self, channel: WebChannel) -> None:
        self.channel = channel

    async def _ask(self, core: Core, actor: str, action: str, **params: Any) -> dict[str, Any]:
        """The gateway's answer to a group action of ``actor``'s account."""

        async with core.read() as conn:
            found = await conn.scalar(
                select(instance_rows.c.id)
                .where(
                    (instance_rows.c.channel == CHANNEL)
                    & (instance_rows.c.wid == actor)
                    & instance_rows.c.deleted_ms.is_(None)
                )
                .order_by(instance_rows.c.id)
                .limit(1)
            )
        if found is None or not await self.channel.hold(int(found)):
            raise ChannelUnavailable("the account's WhatsApp Web session is not run by this server process")
        if "group" in params:
            params["group"] = jid_of(str(params["group"]))
        try:
            answer: dict[str, Any] = await self.channel.call(
                "group", {"session": session_of(int(found)), "action": action, **params}
            )
        except GatewayError as exc:
            raise _error(exc) from None
        return answer

    async def create_group(self, core: Core, actor: str, name: str, chat_ids: list[str]) -> Group:

        got = await self._ask(core, actor, "create", name=name, participants=[jid_of(c) for c in chat_ids])
        return _group(got["group"])

    async def get_group(self, core: Core, group_id: str, actor: str = "") -> Group | None:
        try:
            got = await self._ask(core, actor, "info", group=group_id)
        except GroupError:
            return None
        return _group(got["group"])

    async def rename(self, core: Core, actor: str, group_id: str, name: str) -> None:
        await self._ask(core, actor, "rename", group=group_id, name=name)

    async def update_settings(
        self, core: Core, actor: str, group_id: str, *, edit_info: bool | None, send: bool | None
    ) -> None:
        if edit_info is not None:
            await self._ask(core, actor, "locked", group=group_id, value=not edit_info)
        if send is not None:
            await self._ask(core, actor, "announce", group=group_id, value=not send)

    async def _participant(self, core: Core, actor: str, group_id: str, wid: str, change: str) -> None:

        got = await self._ask(
            core, actor, "participants", group=group_id, change=change, participants=[jid_of(wid)]
        )
        for code in got.get("errors") or []:
            if code:
                raise GroupError(_PARTICIPANT_ERRORS.get(int(code), "not_admin"), f"WhatsApp answered {code}")

    async def add_participant(self, core: Core, actor: str, group_id: str, wid: str) -> None:
        await self._participant(core, actor, group_id, wid, "add")

    async def remove_participant(self, core: Core, actor: str, group_id: str, wid: str) -> None:
        await self._participant(core, actor, group_id, wid, "remove")

    async def set_admin(self, core: Core, actor: str, group_id: str, wid: str, admin: bool) -> None:
        await self._participant(core, actor, group_id, wid, "promote" if admin else "demote")

    async def leave(self, core: Core, actor: str, group_id: str) -> None:
        await self._ask(core, actor, "leave", group=group_id)

    async def set_picture(self, core: Core, actor: str, group_id: str, data: bytes) -> str:
        """The group's new picture (the bytes go to the library, never a path); its URL."""
        got = await self._ask(core, actor, "picture", group=group_id, data=base64.b64encode(data).decode())
        return str(got.get("url", ""))


class OwnGroups:
    """The ``groups`` capability of the channel class: present on the class (docs/compatibility.md
    reads the declarations there) and, on each channel, that channel's :class:`WebGroups`."""

    @overload
    def __get__(self, channel: None, owner: type[Any]) -> OwnGroups: ...
    @overload
    def __get__(self, channel: WebChannel, owner: type[Any]) -> WebGroups: ...
    def __get__(self, channel: WebChannel | None, owner: type[Any]) -> OwnGroups | WebGroups:
        return self if channel is None else channel.web_groups
