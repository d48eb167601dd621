"""Sending methods. Every send is queued (durably) and answered with its idMessage at once."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from verdigris.greenapi.errors import WireError
from verdigris.greenapi.fields import Body, ChatId, MessageText, TypingTime
from verdigris.greenapi.registry import Call, wire_method
from verdigris.messaging import service as messaging
from verdigris.messaging.content import quote_of, text_content, text_type


class CustomPreview(BaseModel):
    title: str = Field(max_length=300)
    description: str = Field(default="", max_length=300)
    link: str = Field(default="", max_length=300)
    urlFile: str = ""
    jpegThumbnail: str = ""


class SendMessageBody(Body):
    chatId: ChatId
    message: MessageText
    quotedMessageId: str | None = None
    linkPreview: bool | None = None
    typePreview: Literal["large", "small"] | None = None
    customPreview: CustomPreview | None = None
    typingTime: TypingTime | None = None
    archiveChat: bool | None = None


async def resolve_quote(call: Call, chat_id: str, quoted_id: str | None) -> dict[str, Any] | None:
    """The quoted message of a reply: it must be a message this instance knows, in the same chat."""
    if not quoted_id:
        return None
    original = await messaging.find_message(call.core, call.instance.id, chat_id, quoted_id)
    if original is None:
        raise WireError(400, f"quotedMessageId {quoted_id} is not a known message of chat {chat_id}")
    return quote_of(
        original.id_message, original.sender or call.instance.wid, original.type_message, original.content
    )


@wire_method("sendMessage", "POST", "sending", body=SendMessageBody)
async def send_message(call: Call) -> dict[str, Any]:
    """Send a text message (queued)."""
    body: SendMessageBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    preview = None
    if body.customPreview is not None:
        preview = {
            "title": body.customPreview.title,
            "description": body.customPreview.description,
            "type": body.typePreview or "large",
            "thumbnail": body.customPreview.jpegThumbnail,
        }
    link_preview = (
        body.linkPreview
        if body.linkPreview is not None
        else bool(call.instance.settings.get("linkPreview", True))
    )
    content = text_content(body.message, link_preview=link_preview, preview=preview, quoted=quoted)
    request = body.model_dump(exclude_none=True, mode="json")
    message = messaging.OutgoingMessage(
        chat_id=body.chatId,
        kind="sendMessage",
        type_message=text_type(content),
        content=content,
        request=request,
        typing_ms=body.typingTime or 0,
    )
    return {"idMessage": await messaging.send(call.core, call.instance, message)}
