"""Service methods: who is on the network, avatars, contacts and the phonebook, chats (archive,
disappearing messages), editing and deleting sent messages.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictBool, field_validator, model_validator

from verdigris.channels.base import profiles_of
from verdigris.channels.capabilities import PROFILES
from verdigris.chats import service as chats
from verdigris.greenapi.errors import WireError, validation
from verdigris.greenapi.fields import Body, ChatId, MessageId, MessageText
from verdigris.greenapi.registry import EMPTY, Call, Empty, wire_method
from verdigris.messaging import rich
from verdigris.messaging import service as messaging
from verdigris.store.clock import now_ms


async def _on_network(call: Call, phone: str) -> bool:
    # Outside any transaction: a channel may ask its network.
    return await call.core.channel(call.instance.channel).has_account(call.instance, phone)


def _personal(chat_id: str) -> str | None:
    number = chat_id[:-5] if chat_id.endswith("@c.us") else None
    return number if number and number.isdigit() else None


class CheckWhatsappBody(Body):
    phoneNumber: int | str | None = None
    chatId: ChatId | None = None
    force: bool | None = None

    @field_validator("phoneNumber")
    @classmethod
    def _digits(cls, value: int | str | None) -> str | None:
        if value is None:
            return None
        text = str(value)
        if isinstance(value, bool) or not text.isdigit():
            raise ValueError("Wrong format. 'phoneNumber' must contain only digits")
        return text

    @model_validator(mode="after")
    def _one(self) -> CheckWhatsappBody:
        if self.phoneNumber is None and self.chatId is None:
            raise ValueError("'phoneNumber' is required")
        return self


@wire_method("checkWhatsapp", "POST", "service", body=CheckWhatsappBody, needs_link=True)
async def check_whatsapp(call: Call) -> dict[str, Any]:
    """Whether a number has an account on the network (a sandbox phone exists for it)."""
    body: CheckWhatsappBody = call.body
    phone = str(body.phoneNumber) if body.phoneNumber is not None else _personal(body.chatId or "")
    if phone is None:
        raise validation("'chatId' must be a personal chat id such as 79001234567@c.us")
    if not 7 <= len(phone) <= 15:
        raise WireError(400, "bad phone number, valid 7 to 15 digits")
    return {"existsWhatsapp": await _on_network(call, phone)}


class ChatBody(Body):
    chatId: ChatId


@wire_method("getAvatar", "POST", "service", body=ChatBody, needs_link=True, capability=PROFILES)
async def get_avatar(call: Call) -> dict[str, Any]:
    """A chat's avatar URL, as the instance's account may see it; ``""`` when none is set or it is hidden."""
    found = await profiles_of(call.channel).avatar(call.core, call.instance, call.body.chatId)
    return {
        "urlAvatar": found.url,
        "available": found.available,
        "existsWhatsapp": found.exists,
        "reason": "",
    }


@wire_method("getContactInfo", "POST", "service", body=ChatBody, needs_link=True, capability=PROFILES)
async def get_contact_info(call: Call) -> dict[str, Any]:
    """Profile of a person: names (phonebook first), archive and disappearing state."""
    chat_id = call.body.chatId
    if _personal(chat_id) is None:
        raise WireError(400, f"getContactInfo takes a personal chat id (…@c.us), got {chat_id}")
    profile = await profiles_of(call.channel).contact_profile(call.core, call.instance, chat_id)
    if profile is None:
        raise WireError(404, f"{chat_id} is not on WhatsApp")
    async with call.core.read() as conn:
        contact = await chats.contact_name(conn, call.instance.id, chat_id)
        push = await chats.push_name(call.core, call.instance, conn, chat_id) or profile.push_name
        state = await chats.chat_state(conn, call.instance.id, chat_id)
    return {
        "avatar": profile.avatar,
        "name": contact or push,
        "contactName": contact,
        "email": "",
        "category": "",
        "description": profile.description,
        "products": [],
        "chatId": chat_id,
        "lastSeen": None,
        "isArchive": state.archived,
        "isDisappearing": state.ephemeral_expiration > 0,
        "isMute": False,
        "messageExpiration": state.ephemeral_expiration,
        "muteExpiration": 0,
        "isBusiness": profile.business,
    }


def _bool_param(call: Call, name: str) -> bool | None:
    value = call.param(name)
    if value is None:
        return None
    text = str(value).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise validation(f"'{name}' must be a boolean")


@wire_method("getContacts", "GET", "service", needs_link=True, query=("group", "count"))
async def get_contacts(call: Call) -> list[dict[str, Any]]:
    """The phonebook and everyone the account has chatted with (``group`` filters, ``count`` limits)."""
    group = _bool_param(call, "group")
    count = call.int_param("count", 0, 0, 100_000) or None
    rows = await chats.list_contacts(call.core, call.instance, group, count)
    out = [
        {
            "id": c.chat_id,
            "name": c.push_name or c.name,
            "contactName": c.contact_name,
            "type": "group" if c.is_group else "user",
        }
        for c in rows
    ]
    profiles = call.channel.profiles
    if profiles is not None:  # and the account's address book at the network
        known = {c["id"]: c for c in out}
        for chat_id, name in (await profiles.contacts(call.core, call.instance)).items():
            is_group = chat_id.endswith("@g.us")
            if chat_id in known:
                known[chat_id]["name"] = known[chat_id]["name"] or name
            elif group is None or group == is_group:
                out.append(
                    {"id": chat_id, "name": name, "contactName": "", "type": "group" if is_group else "user"}
                )
        if count is not None:
            out = out[:count]
    return out


@wire_method("getChats", "GET", "service", needs_link=True, query=("count",))
async def get_chats(call: Call) -> list[dict[str, Any]]:
    """Chats with messages, most recently active first."""
    count = call.int_param("count", 0, 0, 100_000) or None
    rows = await chats.list_chats(call.core, call.instance, count)
    return [
        {
            "id": c.chat_id,
            "name": c.name,
            "type": "group" if c.is_group else "user",
            "archive": c.state.archived,
            "ephemeralExpiration": c.state.ephemeral_expiration,
            "ephemeralSettingTimestamp": c.state.ephemeral_set_ms // 1000,
        }
        for c in rows
    ]


class ContactBody(Body):
    chatId: ChatId
    firstName: str = Field(min_length=1, max_length=200)
    lastName: str | None = Field(default=None, max_length=200)
    saveInAddressbook: bool = True

    @field_validator("chatId")
    @classmethod
    def _person(cls, value: str) -> str:
        if not value.endswith("@c.us"):
            raise ValueError("'chatId' must be a personal chat id such as 79001234567@c.us")
        return value


async def _require_account(call: Call, chat_id: str) -> None:
    phone = _personal(chat_id)
    if phone is None or not await _on_network(call, phone):
        raise WireError(404, f"{chat_id} is not on WhatsApp")


@wire_method("addContact", "POST", "service", body=ContactBody, needs_link=True)
async def add_contact(call: Call) -> dict[str, Any]:
    """Save a person in the phonebook (replaces an entry with the same chatId)."""
    body: ContactBody = call.body
    await _require_account(call, body.chatId)
    await chats.save_contact(
        call.core, call.instance, body.chatId, body.firstName, body.lastName or "", body.saveInAddressbook
    )
    return {"addContact": True}


@wire_method("editContact", "POST", "service", body=ContactBody, needs_link=True)
async def edit_contact(call: Call) -> dict[str, Any]:
    """Change a phonebook entry."""
    body: ContactBody = call.body
    try:
        await chats.edit_contact(
            call.core, call.instance, body.chatId, body.firstName, body.lastName or "", body.saveInAddressbook
        )
    except chats.ChatError as exc:
        raise WireError(400, str(exc)) from None
    return {"editContact": True}


@wire_method("deleteContact", "POST", "service", body=ChatBody, needs_link=True)
async def delete_contact(call: Call) -> dict[str, Any]:
    """Remove a phonebook entry."""
    try:
        await chats.delete_contact(call.core, call.instance, call.body.chatId)
    except chats.ChatError as exc:
        raise WireError(400, str(exc)) from None
    return {"deleteContact": True}


@wire_method("archiveChat", "POST", "service", body=ChatBody, needs_link=True)
async def archive_chat(call: Call) -> Empty:
    """Archive a chat (it needs at least one incoming message)."""
    try:
        await chats.set_archived(call.core, call.instance, call.body.chatId, True)
    except chats.ChatError as exc:
        raise WireError(400, str(exc)) from None
    return EMPTY


@wire_method("unarchiveChat", "POST", "service", body=ChatBody, needs_link=True)
async def unarchive_chat(call: Call) -> Empty:
    """Move a chat out of the archive."""
    await chats.set_archived(call.core, call.instance, call.body.chatId, False)
    return EMPTY


class DisappearingBody(Body):
    chatId: ChatId
    ephemeralExpiration: int = 0

    @field_validator("ephemeralExpiration")
    @classmethod
    def _timer(cls, value: int) -> int:
        if value not in chats.DISAPPEARING_TIMERS:
            raise ValueError(
                f"'ephemeralExpiration' must be one of [{', '.join(map(str, chats.DISAPPEARING_TIMERS))}]"
            )
        return value


@wire_method("setDisappearingChat", "POST", "service", body=DisappearingBody, needs_link=True)
async def set_disappearing_chat(call: Call) -> dict[str, Any]:
    """Set the disappearing-messages timer of a chat (0 switches it off)."""
    body: DisappearingBody = call.body
    state = await chats.set_disappearing(call.core, call.instance, body.chatId, body.ephemeralExpiration)
    return {
        "chatId": body.chatId,
        "disappearingMessagesInChat": state.ephemeral_expiration > 0,
        "ephemeralExpiration": state.ephemeral_expiration,
    }


class EditMessageBody(Body):
    chatId: ChatId
    idMessage: MessageId
    message: MessageText


async def _own_message(call: Call, chat_id: str, id_message: str) -> messaging.StoredMessage:
    original = await messaging.find_message(call.core, call.instance.id, chat_id, id_message)
    if original is None or original.content.get("deleted"):
        raise WireError(400, "Message by id not found")
    return original


@wire_method("editMessage", "POST", "service", body=EditMessageBody)
async def edit_message(call: Call) -> dict[str, Any]:
    """Edit an own text message (or a media caption) within 15 minutes; the other side is told."""
    body: EditMessageBody = call.body
    original = await _own_message(call, body.chatId, body.idMessage)
    if original.direction != "out":
        raise WireError(400, "only messages sent by this account can be edited")
    if not rich.editable(original.type_message) or original.type_message in rich.PROTOCOL_TYPES:
        raise WireError(400, f"a {original.type_message} cannot be edited (text messages and captions can)")
    if now_ms() - original.created_ms > rich.EDIT_WINDOW_MS:
        raise WireError(400, "messages can be edited within 15 minutes of sending")
    content = rich.edit(original.id_message, original.type_message, body.message)
    message = messaging.OutgoingMessage(
        chat_id=body.chatId,
        kind="editMessage",
        type_message="editedMessage",
        content=content,
        request=body.model_dump(mode="json"),
    )
    return {"idMessage": await messaging.send(call.core, call.instance, message)}


class DeleteMessageBody(Body):
    chatId: ChatId
    idMessage: MessageId
    onlySenderDelete: StrictBool | None = None


@wire_method("deleteMessage", "POST", "service", body=DeleteMessageBody)
async def delete_message(call: Call) -> Empty:
    """Delete a message: for everyone (own messages; the other side is told) or only here."""
    body: DeleteMessageBody = call.body
    original = await _own_message(call, body.chatId, body.idMessage)
    if body.onlySenderDelete or original.direction != "out":
        # "Delete for me": only this account's copy changes; nobody else is told.
        await messaging.update_content(call.core, original, {**original.content, "deleted": True})
        return EMPTY
    message = messaging.OutgoingMessage(
        chat_id=body.chatId,
        kind="deleteMessage",
        type_message="deletedMessage",
        content=rich.deletion(original.id_message),
        request=body.model_dump(mode="json", exclude_none=True),
    )
    await messaging.send(call.core, call.instance, message)
    return EMPTY
