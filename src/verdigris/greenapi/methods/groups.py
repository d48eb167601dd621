"""Group methods. The instance acts as the account it is linked to (the channel's ``groups`` capability).

Answers follow the documentation: rights problems are "soft" failures with HTTP 200 and a false
flag (``{"addParticipant": false}``; updateGroupSettings adds a ``reason``; setGroupPicture answers
``{"setGroupPicture": false, "urlAvatar": null, "reason": ...}``). A group id that does not exist is
bad input: 400, nothing changes.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from verdigris.channels.base import groups_of
from verdigris.channels.capabilities import MAX_PICTURE_BYTES, GroupError, picture_kind
from verdigris.greenapi.errors import WireError, validation
from verdigris.greenapi.fields import Body
from verdigris.greenapi.registry import Call, wire_method

_GROUP_ID = re.compile(r"^\d{5,20}(-\d{6,12})?@g\.us$")
_PERSON_ID = re.compile(r"^\d{5,20}@c\.us$")


def _group_id(value: str) -> str:
    if not _GROUP_ID.match(value):
        raise ValueError(f"'groupId' must be a group chat id such as 120363000000000000@g.us, got {value!r}")
    return value


def _person_id(value: str) -> str:
    if not _PERSON_ID.match(value):
        raise ValueError(
            f"'participantChatId' must be a personal chat id such as 79001234567@c.us, got {value!r}"
        )
    return value


def _member_ids(values: list[str]) -> list[str]:
    for value in values:
        if not _PERSON_ID.match(value):
            raise ValueError(f"'chatIds' must hold personal chat ids such as 79001234567@c.us, got {value!r}")
    return values


GroupId = Annotated[str, AfterValidator(_group_id)]
PersonId = Annotated[str, AfterValidator(_person_id)]
GroupName = Annotated[str, Field(min_length=1, max_length=100)]


class CreateGroupBody(Body):
    groupName: GroupName
    chatIds: Annotated[list[str], Field(min_length=1, max_length=1024), AfterValidator(_member_ids)]


class GroupBody(Body):
    groupId: GroupId


class GroupNameBody(Body):
    groupId: GroupId
    groupName: GroupName


class ParticipantBody(Body):
    groupId: GroupId
    participantChatId: PersonId


class GroupSettingsBody(Body):
    groupId: GroupId
    allowParticipantsEditGroupSettings: bool | None = None
    allowParticipantsSendMessages: bool | None = None


def _not_found(exc: GroupError) -> WireError:
    return WireError(400, f"Group not found: {exc}")


async def _soft(key: str, action: Any) -> dict[str, Any]:
    """Run a group action: ``{key: true}``, or ``{key: false}`` when the account may not do it."""
    try:
        await action
    except GroupError as exc:
        if exc.code == "not_found":
            raise _not_found(exc) from None
        return {key: False}
    return {key: True}


@wire_method("createGroup", "POST", "groups", body=CreateGroupBody, needs_link=True)
async def create_group(call: Call) -> dict[str, Any]:
    """Create a group with the given members; the instance's account is its creator (superadmin)."""
    body: CreateGroupBody = call.body
    try:
        group = await groups_of(call.channel).create_group(
            call.core, call.instance.wid, body.groupName, body.chatIds
        )
    except GroupError as exc:
        raise WireError(400, str(exc)) from None
    return {"created": True, "chatId": group.id, "groupInviteLink": group.invite_link}


@wire_method("updateGroupName", "POST", "groups", body=GroupNameBody, needs_link=True)
async def update_group_name(call: Call) -> dict[str, Any]:
    """Rename a group."""
    body: GroupNameBody = call.body
    return await _soft(
        "updateGroupName",
        groups_of(call.channel).rename(call.core, call.instance.wid, body.groupId, body.groupName),
    )


@wire_method("updateGroupSettings", "POST", "groups", body=GroupSettingsBody, needs_link=True)
async def update_group_settings(call: Call) -> dict[str, Any]:
    """Who may edit the group's info and who may send messages (admins only)."""
    body: GroupSettingsBody = call.body
    if body.allowParticipantsEditGroupSettings is None and body.allowParticipantsSendMessages is None:
        raise validation(
            "'allowParticipantsEditGroupSettings' or 'allowParticipantsSendMessages' is required"
        )
    try:
        await groups_of(call.channel).update_settings(
            call.core,
            call.instance.wid,
            body.groupId,
            edit_info=body.allowParticipantsEditGroupSettings,
            send=body.allowParticipantsSendMessages,
        )
    except GroupError as exc:
        if exc.code == "not_found":
            raise _not_found(exc) from None
        reason = "FORBIDDEN" if exc.code == "not_member" else "NOT_ENOUGH_RIGHTS"
        return {"updateGroupSettings": False, "reason": reason}
    return {"updateGroupSettings": True}


@wire_method("getGroupData", "POST", "groups", body=GroupBody, needs_link=True)
async def get_group_data(call: Call) -> dict[str, Any]:
    """A group's name, owner, members and invite link (members only)."""
    group = await groups_of(call.channel).get_group(call.core, call.body.groupId, call.instance.wid)
    if group is None or group.role(call.instance.wid) is None:
        raise WireError(400, f"Group not found: {call.body.groupId} (or this account is not a participant)")
    return {
        "groupId": group.id,
        "owner": group.owner,
        "subject": group.subject,
        "creation": group.created_ms // 1000,
        "participants": [
            {"id": wid, "isAdmin": role in ("admin", "superadmin"), "isSuperAdmin": role == "superadmin"}
            for wid, role in group.members.items()
        ],
        "subjectTime": group.subject_ms // 1000,
        "subjectOwner": group.subject_owner,
        "groupInviteLink": group.invite_link,
    }


@wire_method("addGroupParticipant", "POST", "groups", body=ParticipantBody, needs_link=True)
async def add_group_participant(call: Call) -> dict[str, Any]:
    """Add a member (admins only; false if already a member or without an account)."""
    body: ParticipantBody = call.body
    action = groups_of(call.channel).add_participant(
        call.core, call.instance.wid, body.groupId, body.participantChatId
    )
    return await _soft("addParticipant", action)


@wire_method("removeGroupParticipant", "POST", "groups", body=ParticipantBody, needs_link=True)
async def remove_group_participant(call: Call) -> dict[str, Any]:
    """Remove a member (admins only)."""
    body: ParticipantBody = call.body
    action = groups_of(call.channel).remove_participant(
        call.core, call.instance.wid, body.groupId, body.participantChatId
    )
    return await _soft("removeParticipant", action)


@wire_method("setGroupAdmin", "POST", "groups", body=ParticipantBody, needs_link=True)
async def set_group_admin(call: Call) -> dict[str, Any]:
    """Make a member an admin (admins only)."""
    body: ParticipantBody = call.body
    action = groups_of(call.channel).set_admin(
        call.core, call.instance.wid, body.groupId, body.participantChatId, True
    )
    return await _soft("setGroupAdmin", action)


@wire_method("removeAdmin", "POST", "groups", body=ParticipantBody, needs_link=True)
async def remove_admin(call: Call) -> dict[str, Any]:
    """Take admin rights away from a member (admins only)."""
    body: ParticipantBody = call.body
    action = groups_of(call.channel).set_admin(
        call.core, call.instance.wid, body.groupId, body.participantChatId, False
    )
    return await _soft("removeAdmin", action)


@wire_method("leaveGroup", "POST", "groups", body=GroupBody, needs_link=True)
async def leave_group(call: Call) -> dict[str, Any]:
    """Leave a group."""
    return await _soft(
        "leaveGroup", groups_of(call.channel).leave(call.core, call.instance.wid, call.body.groupId)
    )


@wire_method("setGroupPicture", "POST", "groups", body_kind="multipart", needs_link=True)
async def set_group_picture(call: Call) -> dict[str, Any]:
    """Set the group's picture: multipart ``file`` (JPEG or PNG) and ``groupId``."""
    group_id, data = await read_picture_form(call, with_group=True)
    try:
        url = await groups_of(call.channel).set_picture(call.core, call.instance.wid, group_id, data)
    except GroupError as exc:
        reason = "Timed Out" if exc.code in ("not_found", "not_member") else "NOT_ENOUGH_RIGHTS"
        return {"reason": reason, "urlAvatar": None, "setGroupPicture": False}
    return {"setGroupPicture": True, "urlAvatar": url, "reason": ""}


async def read_picture_form(call: Call, *, with_group: bool) -> tuple[str, bytes]:
    """The ``file`` part (a JPEG or PNG, checked by content) and, for groups, ``groupId`` of a
    multipart picture upload (setGroupPicture, setProfilePicture)."""
    fields = "'file' and 'groupId'" if with_group else "'file'"
    content_type = call.request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise WireError(
            400, f"Validation failed. Details: the body must be multipart/form-data with {fields}"
        )
    try:
        form = await call.request.form(max_files=1, max_fields=20)
    except Exception as exc:  # malformed multipart (starlette raises several kinds)
        raise WireError(400, f"bad request data: {exc}") from None
    group_id = ""
    try:
        if with_group:
            value = form.get("groupId")
            if value is None or not isinstance(value, str) or not value:
                raise validation("'groupId' is required")
            try:
                group_id = _group_id(value)
            except ValueError as exc:
                raise validation(str(exc)) from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise validation("'file' is required")
        data = await upload.read(MAX_PICTURE_BYTES + 1)
    finally:
        await form.close()
    if not data:
        raise WireError(400, "File is empty")
    if len(data) > MAX_PICTURE_BYTES:
        raise WireError(400, f"File is too large: the limit is {MAX_PICTURE_BYTES // (1024 * 1024)} MB")
    if picture_kind(data) is None:
        raise WireError(400, "Unsupported media type")
    return group_id, data
