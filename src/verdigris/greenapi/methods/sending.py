"""Sending methods. Every send is queued (durably) and answered with its idMessage at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from verdigris.greenapi.errors import WireError
from verdigris.greenapi.fields import (
    MAX_TEXT,
    TYPING_MAX_MS,
    TYPING_MIN_MS,
    Body,
    ChatId,
    MessageId,
    MessageText,
    TypingTime,
    is_chat_id,
)
from verdigris.greenapi.registry import EMPTY, Call, Empty, wire_method
from verdigris.messaging import rich
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

    @classmethod
    def lean(cls, data: dict[str, Any]) -> SendMessageBody | None:
        """chatId and message, with any of quotedMessageId, linkPreview, archiveChat and
        typingTime (or null), all of the types and in the ranges the fields take; keys that are
        no field are ignored, as the model ignores them. A preview goes to the model."""
        chat_id, message = data.get("chatId"), data.get("message")
        if type(chat_id) is not str or type(message) is not str:
            return None
        if not 0 < len(message) <= MAX_TEXT or not is_chat_id(chat_id):
            return None
        values: dict[str, Any] = {"chatId": chat_id, "message": message}
        for key, value in data.items():
            if key in values:
                continue
            fits = _LEAN_OPTIONAL.get(key)
            if fits is None:
                if key in cls.__pydantic_fields__:
                    return None  # typePreview, customPreview
                continue
            if value is not None and not fits(value):
                return None
            values[key] = value
        return cls.checked(values)


# The optional sendMessage fields the lean check takes, and what each takes (strict JSON types).
_LEAN_OPTIONAL: dict[str, Callable[[Any], bool]] = {
    "quotedMessageId": lambda v: type(v) is str,
    "linkPreview": lambda v: type(v) is bool,
    "archiveChat": lambda v: type(v) is bool,
    "typingTime": lambda v: type(v) is int and TYPING_MIN_MS <= v <= TYPING_MAX_MS,
}


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


# --- rich messages -------------------------------------------------------------------------------


def _request(body: Body) -> dict[str, Any]:
    return body.model_dump(exclude_none=True, mode="json")


async def _queue(
    call: Call,
    body: Body,
    chat_id: str,
    kind: str,
    type_message: str,
    content: dict[str, Any],
    typing: int | None = None,
) -> dict[str, Any]:
    message = messaging.OutgoingMessage(
        chat_id=chat_id,
        kind=kind,
        type_message=type_message,
        content=content,
        request=_request(body),
        typing_ms=typing or 0,
    )
    return {"idMessage": await messaging.send(call.core, call.instance, message)}


class SendLocationBody(Body):
    chatId: ChatId
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    nameLocation: str = Field(default="", max_length=1000)
    address: str = Field(default="", max_length=1000)
    quotedMessageId: str | None = None
    typingTime: TypingTime | None = None


@wire_method("sendLocation", "POST", "sending", body=SendLocationBody)
async def send_location(call: Call) -> dict[str, Any]:
    """Send a location (queued)."""
    body: SendLocationBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    content = rich.location(body.latitude, body.longitude, body.nameLocation, body.address, quoted=quoted)
    return await _queue(call, body, body.chatId, "sendLocation", "locationMessage", content, body.typingTime)


class ContactCard(BaseModel):
    phoneContact: int
    firstName: str = Field(default="", max_length=200)
    middleName: str = Field(default="", max_length=200)
    lastName: str = Field(default="", max_length=200)
    company: str = Field(default="", max_length=200)

    @field_validator("phoneContact")
    @classmethod
    def _digits(cls, value: int) -> int:
        if not 7 <= len(str(value)) <= 15 or value <= 0:
            raise ValueError(
                "'contact.phoneContact' must be a phone number in international format, 7 to 15 digits"
            )
        return value

    @model_validator(mode="after")
    def _named(self) -> ContactCard:
        if not (self.firstName or self.middleName or self.lastName or self.company):
            raise ValueError(
                "'contact' must have at least one of 'firstName', 'middleName', 'lastName', 'company'"
            )
        return self


class SendContactBody(Body):
    chatId: ChatId
    contact: ContactCard
    quotedMessageId: str | None = None
    typingTime: TypingTime | None = None


@wire_method("sendContact", "POST", "sending", body=SendContactBody)
async def send_contact(call: Call) -> dict[str, Any]:
    """Send a contact card; the server builds its vCard (queued)."""
    body: SendContactBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    c = body.contact
    card = rich.contact_card(str(c.phoneContact), c.firstName, c.middleName, c.lastName, c.company)
    type_message, content = rich.contacts([card], quoted=quoted)
    return await _queue(call, body, body.chatId, "sendContact", type_message, content, body.typingTime)


class PollOption(BaseModel):
    optionName: str = Field(min_length=1, max_length=100)


class SendPollBody(Body):
    chatId: ChatId
    message: str = Field(min_length=1, max_length=255)
    options: list[PollOption] = Field(min_length=2, max_length=12)
    multipleAnswers: bool = False
    quotedMessageId: str | None = None
    typingTime: TypingTime | None = None

    @field_validator("options")
    @classmethod
    def _unique(cls, value: list[PollOption]) -> list[PollOption]:
        names = [o.optionName for o in value]
        if len(set(names)) != len(names):
            raise ValueError("'options' must contain unique option names")
        return value


@wire_method("sendPoll", "POST", "sending", body=SendPollBody)
async def send_poll(call: Call) -> dict[str, Any]:
    """Send a poll; votes come back as pollUpdateMessage notifications (queued)."""
    body: SendPollBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    content = rich.poll(
        body.message, [o.optionName for o in body.options], body.multipleAnswers, quoted=quoted
    )
    return await _queue(call, body, body.chatId, "sendPoll", "pollMessage", content, body.typingTime)


class ForwardBody(Body):
    chatId: ChatId
    chatIdFrom: ChatId
    messages: list[MessageId] = Field(min_length=1, max_length=100)
    typingTime: TypingTime | None = None


@wire_method("forwardMessages", "POST", "sending", body=ForwardBody)
async def forward_messages(call: Call) -> dict[str, Any]:
    """Forward known messages of chatIdFrom to chatId as copies; unknown ids are echoed, not sent."""
    body: ForwardBody = call.body
    batch: list[messaging.OutgoingMessage] = []
    slots: list[int | str] = []  # index into batch, or the unknown id to echo
    for id_message in body.messages:
        original = await messaging.find_message(call.core, call.instance.id, body.chatIdFrom, id_message)
        if (
            original is None
            or original.type_message in rich.PROTOCOL_TYPES
            or original.content.get("deleted")
        ):
            slots.append(id_message)
            continue
        type_message, content = rich.forward_copy(original.type_message, original.content)
        request = {"chatId": body.chatId, "chatIdFrom": body.chatIdFrom, "messages": [id_message]}
        batch.append(
            messaging.OutgoingMessage(
                chat_id=body.chatId,
                kind="ForwardMessages",
                type_message=type_message,
                content=content,
                request=request,
                typing_ms=body.typingTime or 0,
            )
        )
        slots.append(len(batch) - 1)
    ids = await messaging.send_many(call.core, call.instance, batch) if batch else []
    return {"messages": [ids[s] if isinstance(s, int) else s for s in slots]}


ButtonText = Annotated[str, Field(min_length=1, max_length=25)]


class InteractiveButton(BaseModel):
    type: Literal["copy", "call", "url"]
    buttonId: str | None = Field(default=None, max_length=256)
    buttonText: ButtonText
    copyCode: str | None = Field(default=None, min_length=1, max_length=256)
    phoneNumber: str | None = Field(default=None, min_length=1, max_length=20)
    url: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _payload(self) -> InteractiveButton:
        needed = {"copy": "copyCode", "call": "phoneNumber", "url": "url"}[self.type]
        if getattr(self, needed) is None:
            raise ValueError(f"a '{self.type}' button needs '{needed}'")
        return self


class ReplyButton(BaseModel):
    buttonId: str = Field(min_length=1, max_length=256)
    buttonText: ButtonText


class _ButtonsBody(Body):
    chatId: ChatId
    body: str = Field(min_length=1, max_length=4096)
    header: str | None = Field(default=None, max_length=60)
    footer: str | None = Field(default=None, max_length=60)
    typingTime: TypingTime | None = None

    @field_validator("chatId")
    @classmethod
    def _personal(cls, value: str) -> str:
        if not value.endswith("@c.us"):
            raise ValueError("interactive buttons can be sent to personal chats (…@c.us) only")
        return value


class InteractiveButtonsBody(_ButtonsBody):
    buttons: list[InteractiveButton] = Field(min_length=1, max_length=3)


class InteractiveButtonsReplyBody(_ButtonsBody):
    buttons: list[ReplyButton] = Field(min_length=1, max_length=3)

    @field_validator("buttons")
    @classmethod
    def _unique(cls, value: list[ReplyButton]) -> list[ReplyButton]:
        if len({b.buttonId for b in value}) != len(value):
            raise ValueError("'buttons' must have unique 'buttonId' values")
        return value


def _buttons_content(body: _ButtonsBody, buttons: list[dict[str, Any]]) -> dict[str, Any]:
    return {"header": body.header or "", "body": body.body, "footer": body.footer or "", "buttons": buttons}


@wire_method("sendInteractiveButtons", "POST", "sending", body=InteractiveButtonsBody)
async def send_interactive_buttons(call: Call) -> dict[str, Any]:
    """Send a message with copy / call / url buttons (queued)."""
    body: InteractiveButtonsBody = call.body
    buttons = []
    for n, b in enumerate(body.buttons, 1):
        item = b.model_dump(exclude_none=True)
        item.setdefault("buttonId", str(n))
        buttons.append(item)
    content = _buttons_content(body, buttons)
    return await _queue(
        call, body, body.chatId, "sendInteractiveButtons", "interactiveButtons", content, body.typingTime
    )


@wire_method("sendInteractiveButtonsReply", "POST", "sending", body=InteractiveButtonsReplyBody)
async def send_interactive_buttons_reply(call: Call) -> dict[str, Any]:
    """Send a message with up to three reply buttons; a press arrives as interactiveButtonsResponse."""
    body: InteractiveButtonsReplyBody = call.body
    buttons = [{"type": "reply", **b.model_dump()} for b in body.buttons]
    content = _buttons_content(body, buttons)
    return await _queue(
        call,
        body,
        body.chatId,
        "sendInteractiveButtonsReply",
        "interactiveButtonsReply",
        content,
        body.typingTime,
    )


class SendTypingBody(Body):
    chatId: ChatId
    typingTime: TypingTime = 1000
    typingType: Literal["typing", "recording"] | None = None


@wire_method("sendTyping", "POST", "sending", body=SendTypingBody)
async def send_typing(call: Call) -> Empty:
    """Show "typing…" (or "recording audio…") in a chat; goes through the send queue."""
    body: SendTypingBody = call.body
    content = {"typingTime": body.typingTime, "typingType": body.typingType or "typing"}
    message = messaging.OutgoingMessage(
        chat_id=body.chatId,
        kind="sendTyping",
        type_message=rich.TYPING,
        content=content,
        request=_request(body),
    )
    await messaging.send(call.core, call.instance, message)
    return EMPTY


class SendReactionBody(Body):
    chatId: ChatId
    idMessage: MessageId
    reaction: str = Field(max_length=32)


@wire_method("sendReaction", "POST", "sending", body=SendReactionBody)
async def send_reaction(call: Call) -> dict[str, Any]:
    """React to a message with an emoji ("" removes the reaction); unknown targets are accepted."""
    body: SendReactionBody = call.body
    original = await messaging.find_message(call.core, call.instance.id, body.chatId, body.idMessage)
    target_sender = (original.sender or call.instance.wid) if original is not None else ""
    content = rich.reaction(body.reaction, body.idMessage, target_sender)
    return await _queue(call, body, body.chatId, "sendReaction", "reactionMessage", content)


# --- deprecated send methods: accepted and delivered as their legacy message types ---------------


class LegacyButton(BaseModel):
    buttonId: int | str
    buttonText: ButtonText


class SendButtonsBody(Body):
    chatId: ChatId
    message: str = Field(min_length=1, max_length=4096)
    footer: str | None = Field(default=None, max_length=60)
    buttons: list[LegacyButton] = Field(min_length=1, max_length=3)
    quotedMessageId: str | None = None
    archiveChat: bool | None = None


@wire_method("sendButtons", "POST", "sending", body=SendButtonsBody)
async def send_buttons(call: Call) -> dict[str, Any]:
    """Deprecated: a buttons message (buttonsMessage); a press arrives as buttonsResponseMessage."""
    body: SendButtonsBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    buttons = [{"buttonId": str(b.buttonId), "buttonText": b.buttonText} for b in body.buttons]
    content: dict[str, Any] = {"text": body.message, "footer": body.footer or "", "buttons": buttons}
    if quoted is not None:
        content["quoted"] = quoted
    return await _queue(call, body, body.chatId, "sendButtons", "buttonsMessage", content)


class UrlButton(BaseModel):
    displayText: ButtonText
    url: str = Field(min_length=1, max_length=2000)


class CallButton(BaseModel):
    displayText: ButtonText
    phoneNumber: str = Field(min_length=1, max_length=20)


class QuickReplyButton(BaseModel):
    displayText: ButtonText
    id: str = Field(min_length=1, max_length=256)


class TemplateButton(BaseModel):
    index: int = Field(ge=0)
    urlButton: UrlButton | None = None
    callButton: CallButton | None = None
    quickReplyButton: QuickReplyButton | None = None

    @model_validator(mode="after")
    def _one(self) -> TemplateButton:
        kinds = [k for k in ("urlButton", "callButton", "quickReplyButton") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "each template button needs exactly one of 'urlButton', 'callButton', 'quickReplyButton'"
            )
        return self


class SendTemplateButtonsBody(Body):
    chatId: ChatId
    message: str = Field(min_length=1, max_length=4096)
    footer: str | None = Field(default=None, max_length=60)
    templateButtons: list[TemplateButton] = Field(min_length=1, max_length=3)
    quotedMessageId: str | None = None
    archiveChat: bool | None = None


@wire_method("sendTemplateButtons", "POST", "sending", body=SendTemplateButtonsBody)
async def send_template_buttons(call: Call) -> dict[str, Any]:
    """Deprecated: a template buttons message (templateMessage); a press arrives as templateButtonsReplyMessage."""
    body: SendTemplateButtonsBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    buttons = [b.model_dump(exclude_none=True) for b in body.templateButtons]
    content: dict[str, Any] = {"text": body.message, "footer": body.footer or "", "templateButtons": buttons}
    if quoted is not None:
        content["quoted"] = quoted
    return await _queue(call, body, body.chatId, "sendTemplateButtons", "templateMessage", content)


class ListRow(BaseModel):
    title: str = Field(min_length=1, max_length=24)
    rowId: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=72)


class ListSection(BaseModel):
    title: str = Field(default="", max_length=24)
    rows: list[ListRow] = Field(min_length=1, max_length=10)


class SendListMessageBody(Body):
    chatId: ChatId
    message: str = Field(min_length=1, max_length=4096)
    buttonText: str = Field(min_length=1, max_length=20)
    title: str | None = Field(default=None, max_length=60)
    footer: str | None = Field(default=None, max_length=60)
    sections: list[ListSection] = Field(min_length=1, max_length=10)
    quotedMessageId: str | None = None
    archiveChat: bool | None = None

    @field_validator("sections")
    @classmethod
    def _rows(cls, value: list[ListSection]) -> list[ListSection]:
        rows = [row.rowId for section in value for row in section.rows]
        if len(rows) > 10:
            raise ValueError("'sections' may hold at most 10 rows in total")
        if len(set(rows)) != len(rows):
            raise ValueError("'sections' rows must have unique 'rowId' values")
        return value


@wire_method("sendListMessage", "POST", "sending", body=SendListMessageBody)
async def send_list_message(call: Call) -> dict[str, Any]:
    """Deprecated: a list message (listMessage); a choice arrives as listResponseMessage."""
    body: SendListMessageBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    content: dict[str, Any] = {
        "text": body.message,
        "title": body.title or "",
        "footer": body.footer or "",
        "buttonText": body.buttonText,
        "sections": [s.model_dump(exclude_none=True) for s in body.sections],
    }
    if quoted is not None:
        content["quoted"] = quoted
    return await _queue(call, body, body.chatId, "sendListMessage", "listMessage", content)


class SendLinkBody(Body):
    chatId: ChatId
    urlLink: str = Field(min_length=1, max_length=2000)
    quotedMessageId: str | None = None

    @field_validator("urlLink")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("'urlLink' must be an http:// or https:// URL")
        return value


@wire_method("sendLink", "POST", "sending", body=SendLinkBody)
async def send_link(call: Call) -> dict[str, Any]:
    """Deprecated: the link as a text message with a link preview (what sendMessage does today)."""
    body: SendLinkBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    content = text_content(body.urlLink, link_preview=True, quoted=quoted)
    return await _queue(call, body, body.chatId, "sendLink", text_type(content), content)


class TemplateParam(BaseModel):
    default: str = Field(max_length=1000)


class SendTemplateBody(Body):
    chatId: ChatId
    namespace: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    languageCode: str = Field(min_length=2, max_length=20)
    params: list[TemplateParam] | None = Field(default=None, max_length=20)
    quotedMessageId: str | None = None


@wire_method("sendTemplate", "POST", "sending", body=SendTemplateBody)
async def send_template(call: Call) -> dict[str, Any]:
    """Deprecated: a named template; delivered as a templateMessage whose text is its parameters."""
    body: SendTemplateBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    params = [p.default for p in body.params or []]
    content: dict[str, Any] = {
        "text": "\n".join(params) if params else body.name,
        "footer": "",
        "templateButtons": [],
        "template": {"namespace": body.namespace, "name": body.name, "languageCode": body.languageCode},
    }
    if quoted is not None:
        content["quoted"] = quoted
    return await _queue(call, body, body.chatId, "sendTemplate", "templateMessage", content)
