"""The optional capabilities of a channel, and the values they hand to the faces.

A channel offers a capability by setting the attribute of that name (``groups``, ``statuses``,
``calls``, ``profiles``) to an object with these functions (a module does: the sandbox passes its
own modules); ``None`` means the network lacks it, and the wire methods that need it answer 501
with the channel's reason (:meth:`verdigris.channels.base.BaseChannel.lacks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.core import Core
    from verdigris.instances.service import InstanceRecord

# The capability names, as wire methods declare what they need (greenapi.registry).
GROUPS, STATUSES, CALLS, PROFILES = "groups", "statuses", "calls", "profiles"
CAPABILITIES = (GROUPS, STATUSES, CALLS, PROFILES)

INVITE_PREFIX = "https://chat.whatsapp.com/"
MEMBER, ADMIN, SUPERADMIN = "member", "admin", "superadmin"


class GroupError(Exception):
    """A group action that cannot be carried out. ``code`` says why:

    ``not_found`` (no such group), ``not_member`` (the actor is not in it), ``not_admin`` (the actor
    lacks the rights), ``no_account`` (the target has no account), ``already`` (nothing to change),
    ``not_participant`` (the target is not in the group), ``owner`` (the creator cannot be touched).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Group:
    id: str
    subject: str
    owner: str
    created_ms: int
    subject_ms: int
    subject_owner: str
    invite_code: str
    members_edit_info: bool
    members_send: bool
    picture: str
    members: dict[str, str] = field(default_factory=dict)  # wid -> role, in joining order

    @property
    def invite_link(self) -> str:
        return INVITE_PREFIX + self.invite_code

    def role(self, wid: str) -> str | None:
        return self.members.get(wid)

    def is_admin(self, wid: str) -> bool:
        return self.members.get(wid) in (ADMIN, SUPERADMIN)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "owner": self.owner,
            "createdMs": self.created_ms,
            "subjectMs": self.subject_ms,
            "subjectOwner": self.subject_owner,
            "inviteLink": self.invite_link,
            "membersEditInfo": self.members_edit_info,
            "membersSend": self.members_send,
            "picture": self.picture,
            "participants": [{"id": wid, "role": role} for wid, role in self.members.items()],
        }


# Group and profile pictures: JPEG or PNG, at most this size.
MAX_PICTURE_BYTES = 5 * 1024 * 1024


def picture_kind(data: bytes) -> str | None:
    """The image type of the bytes (by signature): jpg or png, else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return None


class Groups(Protocol):
    """Group chats; the instance acts as the account it is linked to (``actor``, a wid)."""

    async def create_group(self, core: Core, actor: str, name: str, chat_ids: list[str]) -> Group: ...
    async def get_group(self, core: Core, group_id: str, actor: str = "") -> Group | None: ...
    async def rename(self, core: Core, actor: str, group_id: str, name: str) -> None: ...
    async def update_settings(
        self, core: Core, actor: str, group_id: str, *, edit_info: bool | None, send: bool | None
    ) -> None: ...
    async def add_participant(self, core: Core, actor: str, group_id: str, wid: str) -> None: ...
    async def remove_participant(self, core: Core, actor: str, group_id: str, wid: str) -> None: ...
    async def set_admin(self, core: Core, actor: str, group_id: str, wid: str, admin: bool) -> None: ...
    async def leave(self, core: Core, actor: str, group_id: str) -> None: ...
    async def set_picture(self, core: Core, actor: str, group_id: str, data: bytes) -> str: ...


class StatusNotFound(Exception):
    pass


@dataclass(slots=True)
class StatusPost:
    """A status (story) as its author or a viewer sees it."""

    id_message: str
    author: str
    author_name: str
    type_message: str
    content: dict[str, Any]
    participants: list[str]
    sent_by_api: bool
    created_ms: int
    # For the author: the furthest any viewer got (sent, delivered, read); for a viewer: its own.
    status: str = "sent"


class Statuses(Protocol):
    """Statuses (stories): posting goes through the outgoing queue to ``status@broadcast``."""

    async def delete(self, core: Core, rec: InstanceRecord, id_message: str) -> None: ...
    async def statistic(self, core: Core, wid: str, id_message: str) -> list[dict[str, Any]]: ...
    async def incoming(self, core: Core, wid: str, minutes: int) -> list[StatusPost]: ...
    async def outgoing(self, core: Core, wid: str, minutes: int) -> list[StatusPost]: ...


@dataclass(slots=True)
class CallEntry:
    id_message: str
    direction: str
    chat_id: str
    is_video: bool
    status: str
    duration_s: int
    started_ms: int
    ended_ms: int | None


class Calls(Protocol):
    """Voice and video calls: the instance's call journal."""

    async def journal(
        self, core: Core, instance_id: int, direction: str, minutes: int
    ) -> list[CallEntry]: ...


@dataclass(slots=True)
class Avatar:
    url: str  # "" when none is set or it is hidden
    available: bool  # False: the account's privacy settings hide it
    exists: bool  # whether the chat is on the network (as far as the network tells)


@dataclass(slots=True)
class ContactProfile:
    avatar: str = ""
    push_name: str = ""  # the name the account chose, as the network reports it
    description: str = ""  # the account's about text
    business: bool = False


class Profiles(Protocol):
    """What accounts show of themselves: push names and profile pictures. ``avatar``,
    ``contact_profile`` and ``contacts`` are asked as the instance ``rec`` sees them."""

    async def avatar(self, core: Core, rec: InstanceRecord, chat_id: str) -> Avatar: ...
    async def contact_profile(self, core: Core, rec: InstanceRecord, chat_id: str) -> ContactProfile | None:
        """None: ``chat_id`` (a personal chat) is not on the network."""

    async def contacts(self, core: Core, rec: InstanceRecord) -> dict[str, str]:
        """The chats the network knows for the instance's account (its address book), by name."""

    async def push_names(self, conn: AsyncConnection, numbers: list[str]) -> dict[str, str]: ...
    async def profile_picture_url(self, core: Core, phone: str) -> str: ...
    async def set_profile_picture(self, core: Core, phone: str, data: bytes) -> str: ...
