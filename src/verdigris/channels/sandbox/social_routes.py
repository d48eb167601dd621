"""Sandbox control API, continued: what phones do with groups, statuses and calls (docs/groups.md).

Same credentials as the rest of the control API (``Authorization: Bearer <sandbox token>``).
Group pictures are served without credentials under unguessable names, as WhatsApp's picture
URLs are.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from verdigris.channels.capabilities import GroupError
from verdigris.channels.sandbox import calls, groups, network, statuses
from verdigris.channels.sandbox.network import SandboxError, wid_of
from verdigris.channels.sandbox.routes import RESPONSES, ErrorOut, StrictIn, guard
from verdigris.core import Core

# Group pictures (<group digits>-<hex>) and profile pictures (profile-<phone>-<hex>).
_PICTURE_NAME = re.compile(r"^(profile-)?[0-9-]+-[0-9a-f]{16}\.(jpg|png)$")


class GroupIn(StrictIn):
    name: str = Field(min_length=1, max_length=100, description="The group's name (subject)")
    participants: list[str] = Field(
        default_factory=list, max_length=1024, description="Chat ids to add, e.g. 79990000001@c.us"
    )


class JoinIn(StrictIn):
    inviteLink: str = Field(description="The groupInviteLink of createGroup / getGroupData")


class MemberActionIn(StrictIn):
    participant: str = Field(description="The member's chat id, e.g. 79990000001@c.us")
    action: Literal["add", "remove", "promote", "demote"]


class StatusIn(StrictIn):
    message: str = Field(min_length=1, max_length=500)
    backgroundColor: str = Field(default="#000000", pattern=r"^#[0-9A-Fa-f]{6}$")
    font: str = "SERIF"
    participants: list[str] = Field(
        default_factory=list, description="Empty = everyone this phone chats with"
    )


class CallIn(StrictIn):
    to: str = Field(
        description="Who is called: a chat id (79990000001@c.us) or digits", examples=["79990000001"]
    )
    outcome: Literal["pickUp", "hangUp", "declined", "missed"] = Field(
        default="pickUp", description="How the call ends: answered, caller hung up, declined, not answered"
    )
    delaySeconds: float = Field(default=0, ge=0, le=600, description="How long it rings before it ends")
    isVideo: bool = False
    durationSeconds: int = Field(default=0, ge=0, le=86400, description="Talk time of an answered call")


class IdOut(BaseModel):
    idMessage: str


def build_router(core: Core) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox"], dependencies=guard(core), responses=RESPONSES)
    channel: network.SandboxNetwork = core.channels["sandbox"]  # type: ignore[assignment]

    async def existing_phone(number: str) -> None:
        if await network.get_phone(core, number) is None:
            raise HTTPException(404, f"no sandbox phone {number}; create it with POST /sandbox/phones")

    # --- groups ----------------------------------------------------------------------------------

    @router.post("/phones/{number}/groups", summary="Create a group as this phone (it becomes superadmin)")
    async def create_group(number: str, body: GroupIn) -> dict[str, Any]:
        await existing_phone(number)
        for chat_id in body.participants:
            if network.phone_of(chat_id) is None:
                raise HTTPException(400, f"participants must be personal chat ids, got {chat_id!r}")
        try:
            group = await groups.create_group(core, wid_of(number), body.name, body.participants)
        except GroupError as exc:
            raise HTTPException(400, str(exc)) from None
        return group.view()

    @router.get("/phones/{number}/groups", summary="Groups this phone is a member of")
    async def phone_groups(number: str) -> list[dict[str, Any]]:
        await existing_phone(number)
        return [g.view() for g in await groups.groups_of(core, wid_of(number))]

    @router.post("/phones/{number}/groups/{group_id}/leave", summary="Leave a group as this phone")
    async def leave_group(number: str, group_id: str) -> dict[str, bool]:
        await existing_phone(number)
        try:
            await groups.leave(core, wid_of(number), group_id)
        except GroupError as exc:
            raise HTTPException(404 if exc.code == "not_found" else 400, str(exc)) from None
        return {"left": True}

    @router.post("/phones/{number}/groups/join", summary="Join a group by its invite link")
    async def join_group(number: str, body: JoinIn) -> dict[str, Any]:
        await existing_phone(number)
        try:
            group = await groups.join_by_invite(core, wid_of(number), body.inviteLink)
        except GroupError as exc:
            raise HTTPException(404 if exc.code == "not_found" else 400, str(exc)) from None
        return {"groupId": group.id}

    @router.post(
        "/phones/{number}/groups/{group_id}/participants",
        summary="Add, remove, promote or demote a member, as this phone (an admin)",
    )
    async def manage_member(number: str, group_id: str, body: MemberActionIn) -> dict[str, bool]:
        await existing_phone(number)
        actor = wid_of(number)
        try:
            if body.action == "add":
                await groups.add_participant(core, actor, group_id, body.participant)
            elif body.action == "remove":
                await groups.remove_participant(core, actor, group_id, body.participant)
            else:
                await groups.set_admin(core, actor, group_id, body.participant, body.action == "promote")
        except GroupError as exc:
            raise HTTPException(404 if exc.code == "not_found" else 400, str(exc)) from None
        return {"done": True}

    @router.get("/groups/{group_id}", summary="A group: members, switches, and what happened to it")
    async def get_group(group_id: str) -> dict[str, Any]:
        group = await groups.get_group(core, group_id)
        if group is None:
            raise HTTPException(404, f"no group {group_id}")
        view = group.view()
        view["pictureUrl"] = groups.picture_url(core, group.picture)
        view["events"] = await groups.events(core, group_id)
        return view

    # --- statuses --------------------------------------------------------------------------------

    @router.post(
        "/phones/{number}/statuses", response_model=IdOut, summary="Post a text status as this phone"
    )
    async def post_status(number: str, body: StatusIn) -> Any:
        await existing_phone(number)
        try:
            id_message = await statuses.phone_post(
                channel, number, body.message, body.backgroundColor, body.font, body.participants
            )
        except SandboxError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"idMessage": id_message}

    @router.get("/phones/{number}/statuses", summary="Statuses of others that reached this phone")
    async def phone_statuses(number: str) -> list[dict[str, Any]]:
        await existing_phone(number)
        return await statuses.phone_statuses(core, number)

    @router.post(
        "/phones/{number}/statuses/{id_message}/view",
        summary="View a status on this phone (its author sees it)",
    )
    async def view_status(number: str, id_message: str) -> dict[str, bool]:
        await existing_phone(number)
        try:
            await statuses.phone_view(channel, number, id_message)
        except SandboxError as exc:
            raise HTTPException(404, str(exc)) from None
        return {"viewed": True}

    # --- calls -----------------------------------------------------------------------------------

    @router.post("/phones/{number}/calls", response_model=IdOut, summary="Call a number from this phone")
    async def place_call(number: str, body: CallIn) -> Any:
        await existing_phone(number)
        try:
            call_id = await calls.phone_call(
                channel,
                number,
                body.to,
                body.outcome,
                delay_ms=int(body.delaySeconds * 1000),
                is_video=body.isVideo,
                duration_s=body.durationSeconds,
            )
        except SandboxError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"idMessage": call_id}

    return router


def build_public_router(core: Core) -> APIRouter:
    """Group pictures, readable by anyone who has the (unguessable) URL."""
    router = APIRouter(
        prefix="/sandbox-media",
        tags=["sandbox"],
        responses={404: {"model": ErrorOut, "description": "No such picture"}},
    )

    @router.get("/group-pictures/{name}", summary="A picture set with setGroupPicture or setProfilePicture")
    async def group_picture(name: str) -> FileResponse:
        path = groups.picture_dir(core) / name
        if not _PICTURE_NAME.match(name) or not path.is_file():
            raise HTTPException(404, "no such picture")
        media = "image/png" if name.endswith(".png") else "image/jpeg"
        return FileResponse(path, media_type=media)

    return router
