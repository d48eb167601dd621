"""Journals: chat history, single messages, recent incoming and outgoing messages."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from verdigris.chats.service import contact_names
from verdigris.greenapi.errors import WireError
from verdigris.greenapi.fields import Body, ChatId, MessageId
from verdigris.greenapi.registry import Call, wire_method
from verdigris.greenapi.render import journal_entry
from verdigris.messaging import service as messaging


class ChatHistoryBody(Body):
    chatId: ChatId
    count: int = Field(default=100, ge=1, le=10000)


class MessageRefBody(Body):
    chatId: ChatId
    idMessage: MessageId


@wire_method("getChatHistory", "POST", "journals", body=ChatHistoryBody)
async def get_chat_history(call: Call) -> list[dict[str, Any]]:
    """Messages of one chat, newest first."""
    rows = await messaging.chat_history(call.core, call.instance.id, call.body.chatId, call.body.count)
    names = await contact_names(call.core, call.instance.id)
    return [journal_entry(m, names) for m in rows]


@wire_method("getMessage", "POST", "journals", body=MessageRefBody)
async def get_message(call: Call) -> dict[str, Any]:
    """One message of a chat by its idMessage."""
    try:
        message = await messaging.get_message(
            call.core, call.instance.id, call.body.chatId, call.body.idMessage
        )
    except messaging.MessageNotFound:
        raise WireError(400, "Message by id not found") from None
    return journal_entry(message, await contact_names(call.core, call.instance.id))


@wire_method("lastIncomingMessages", "GET", "journals", query=("minutes",))
async def last_incoming_messages(call: Call) -> list[dict[str, Any]]:
    """Incoming messages of the last ``minutes`` (default 1440), newest first."""
    minutes = call.int_param("minutes", 1440, 1, 525600)
    names = await contact_names(call.core, call.instance.id)
    return [
        journal_entry(m, names) for m in await messaging.recent(call.core, call.instance.id, "in", minutes)
    ]


@wire_method("lastOutgoingMessages", "GET", "journals", query=("minutes",))
async def last_outgoing_messages(call: Call) -> list[dict[str, Any]]:
    """Outgoing messages of the last ``minutes`` (default 1440), newest first."""
    minutes = call.int_param("minutes", 1440, 1, 525600)
    return [journal_entry(m) for m in await messaging.recent(call.core, call.instance.id, "out", minutes)]
