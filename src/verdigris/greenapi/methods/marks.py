"""Read marks."""

from __future__ import annotations

from typing import Any

from verdigris.greenapi.errors import WireError
from verdigris.greenapi.fields import Body, ChatId, MessageId
from verdigris.greenapi.registry import Call, wire_method
from verdigris.messaging import service as messaging


class ReadChatBody(Body):
    chatId: ChatId
    idMessage: MessageId | None = None


@wire_method("readChat", "POST", "marks", body=ReadChatBody)
async def read_chat(call: Call) -> dict[str, Any]:
    """Mark a chat's incoming messages read (all, or up to idMessage); senders see 'read'."""
    body: ReadChatBody = call.body
    up_to = None
    if body.idMessage:
        up_to = await messaging.find_message(call.core, call.instance.id, body.chatId, body.idMessage)
        if up_to is None:
            raise WireError(400, "Message by id not found")
    channel = call.core.channel(call.instance.channel)
    async with call.core.tx() as tx:
        await channel.mark_read(tx, call.instance, body.chatId, up_to)
    return {"setRead": True}
