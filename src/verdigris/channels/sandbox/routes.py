"""The sandbox control API: play the other side of the network (docs/sandbox.md).

Create phones, link instances by QR payload or pairing code, send as a phone, read a phone's
messages and mark them read. Requests carry ``Authorization: Bearer <sandbox token>``.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from verdigris import safetext
from verdigris.channels.sandbox import network, phone_actions
from verdigris.channels.sandbox.changes import typing_on
from verdigris.channels.sandbox.files import FILE_FORM_SCHEMA, send_phone_file
from verdigris.channels.sandbox.network import SandboxError, wid_of
from verdigris.core import Core
from verdigris.instances import service as instances
from verdigris.messaging import rich
from verdigris.store import clock


class StrictIn(BaseModel):
    """Request bodies of the control API take JSON types as they are (no "1" for 1, no 0 for false)."""

    model_config = ConfigDict(strict=True)


class PhoneIn(StrictIn):
    number: str = Field(
        description="International number, digits only, e.g. 79990000003", examples=["79990000003"]
    )
    name: str = Field(default="", max_length=200, description="The name others see (push name)")


class Phone(BaseModel):
    number: str
    name: str
    wid: str
    linkedInstances: list[int] = []


class LinkIn(StrictIn):
    qr: str = Field(
        description="The text encoded in the instance's current QR code (decode the qr method's PNG)"
    )


class PairIn(StrictIn):
    code: str = Field(description="The pairing code returned by getAuthorizationCode for this phone's number")


class LinkOut(BaseModel):
    idInstance: int
    wid: str
    stateInstance: str


class SendIn(StrictIn):
    chatId: str = Field(description="Recipient chat id, e.g. 79990000001@c.us")
    message: str = Field(min_length=1, max_length=20000)
    quotedMessageId: str | None = Field(default=None, description="Reply to a message this phone has")


class BlockIn(StrictIn):
    chatId: str = Field(description="The account to block or unblock, e.g. 79990000001@c.us")


class BlockOut(BaseModel):
    chatId: str
    blocked: bool = Field(description="Whether the phone blocks the account now")
    changed: bool = Field(description="False when it already did (or did not): nothing was announced")
    blockedChats: list[str] = Field(description="Every account this phone blocks")


class SendOut(BaseModel):
    idMessage: str


class FileOut(BaseModel):
    idMessage: str
    typeMessage: str = Field(description="imageMessage, videoMessage, audioMessage or documentMessage")
    urlFile: str = Field(description="Where the stored file is served (the recipients' downloadUrl)")


class ReadIn(StrictIn):
    chatId: str | None = Field(default=None, description="Mark every unread message of this chat read")
    idMessages: list[str] | None = Field(default=None, description="Or mark just these messages read")


class ClockIn(StrictIn):
    advanceSeconds: int = Field(gt=0, le=10 * 366 * 86400, description="Seconds to move forward")


class ClockOut(BaseModel):
    nowMs: int = Field(description="This server's time now, milliseconds since the epoch")
    offsetSeconds: int = Field(description="How far the sandbox clock is ahead of the real one")


class ReadOut(BaseModel):
    read: int


class LocationIn(StrictIn):
    chatId: str = Field(description="Recipient chat id, e.g. 79990000001@c.us")
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    nameLocation: str = Field(default="", max_length=1000)
    address: str = Field(default="", max_length=1000)
    quotedMessageId: str | None = None


class CardIn(StrictIn):
    phoneContact: int = Field(description="The shared person's number, digits only")
    firstName: str = Field(default="", max_length=200)
    middleName: str = Field(default="", max_length=200)
    lastName: str = Field(default="", max_length=200)
    company: str = Field(default="", max_length=200)


class ContactsIn(StrictIn):
    chatId: str
    contacts: list[CardIn] = Field(
        min_length=1, max_length=50, description="One card: contactMessage; more: contactsArrayMessage"
    )
    quotedMessageId: str | None = None


class VoteIn(StrictIn):
    options: list[str] = Field(description="The complete current choice ([] withdraws the vote)")


class ReactionIn(StrictIn):
    reaction: str = Field(max_length=32, description='An emoji; "" removes the reaction')


class EditIn(StrictIn):
    message: str = Field(min_length=1, max_length=20000)


class PressIn(StrictIn):
    buttonId: str = Field(
        description="buttonId of the button (rowId for list messages, id of a quick-reply button)"
    )


class TypingOut(BaseModel):
    chatId: str
    typingType: str
    untilMs: int


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, in words")


# Documents the scheme in /openapi.json; ``authorize`` does the checking (and answers 401 itself).
BEARER = HTTPBearer(auto_error=False, description="The sandbox token (`verdigris demo --json` prints it)")


async def refuse_unstorable_text(request: Request) -> None:
    """400 for text the store cannot keep (NUL, lone surrogates) in the path, query or JSON body."""
    values: list[Any] = [*request.path_params.values(), *request.query_params.values()]
    raw = await request.body()
    if raw.strip():
        try:
            values.append(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            # FastAPI's parser (Python's json module) also takes lone surrogates and NaN, which the
            # store cannot keep; anything else that is not JSON is left to FastAPI's own 422.
            try:
                json.loads(raw)
            except ValueError:
                pass
            else:
                raise HTTPException(400, f"the body must be strict JSON in UTF-8: {exc}") from None
    found = safetext.problem(values)
    if found:
        raise HTTPException(400, found)


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Bad request data (unknown chat, bad QR code, ...)"},
    401: {"model": ErrorOut, "description": "Missing or wrong sandbox token"},
    404: {
        "model": ErrorOut,
        "description": "No such phone, group or message, or the sandbox API is switched off",
    },
}


def guard(core: Core) -> list[Any]:
    """The dependencies every control-API router uses: the switch, the Bearer token, storable text."""

    async def authorize(request: Request) -> None:
        if not core.settings.sandbox_api_enabled:
            raise HTTPException(404, "the sandbox control API is switched off on this server")
        expected = await sandbox_token(core)
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected.encode()):
            raise HTTPException(
                401, "send 'Authorization: Bearer <sandbox token>' (verdigris demo --json prints it)"
            )
        await refuse_unstorable_text(request)

    return [Depends(authorize), Depends(BEARER)]


def build_router(core: Core) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox"], dependencies=guard(core), responses=RESPONSES)
    channel: network.SandboxNetwork = core.channels["sandbox"]  # type: ignore[assignment]

    async def existing_phone(number: str) -> dict[str, Any]:
        phone = await network.get_phone(core, number)
        if phone is None:
            raise HTTPException(404, f"no sandbox phone {number}; create it with POST /sandbox/phones")
        return phone

    @router.get("/phones", response_model=list[Phone], summary="List sandbox phones")
    async def list_phones() -> Any:
        return await network.list_phones(core)

    @router.post("/phones", response_model=Phone, summary="Create (or rename) a sandbox phone")
    async def create_phone(body: PhoneIn) -> Any:
        try:
            await network.create_phone(core, body.number, body.name)
        except SandboxError as exc:
            raise HTTPException(400, str(exc)) from None
        return await existing_phone(body.number)

    @router.get(
        "/phones/{number}", response_model=Phone, summary="One sandbox phone and its linked instances"
    )
    async def get_phone(number: str) -> Any:
        return await existing_phone(number)

    @router.post(
        "/phones/{number}/link", response_model=LinkOut, summary="Scan an instance's QR code with this phone"
    )
    async def link(number: str, body: LinkIn) -> Any:
        await existing_phone(number)
        try:
            rec = await instances.instance_for_qr(core, body.qr)
            await instances.link(core, rec, wid_of(number))
        except instances.InstanceError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"idInstance": rec.id, "wid": rec.wid, "stateInstance": rec.state}

    @router.post(
        "/phones/{number}/pair", response_model=LinkOut, summary="Enter a pairing code on this phone"
    )
    async def pair(number: str, body: PairIn) -> Any:
        await existing_phone(number)
        try:
            rec = await instances.instance_for_pairing_code(core, body.code, number)
            await instances.link(core, rec, wid_of(number))
        except instances.InstanceError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"idInstance": rec.id, "wid": rec.wid, "stateInstance": rec.state}

    @router.post(
        "/phones/{number}/messages", response_model=SendOut, summary="Send a text message as this phone"
    )
    async def send(number: str, body: SendIn) -> Any:
        await existing_phone(number)
        try:
            id_message = await channel.phone_send_text(
                number, body.chatId, body.message, body.quotedMessageId
            )
        except SandboxError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"idMessage": id_message}

    @router.post(
        "/phones/{number}/files",
        response_model=FileOut,
        summary="Send a file as this phone (multipart: chatId, file, caption?, fileName?, quotedMessageId?)",
        openapi_extra=FILE_FORM_SCHEMA,
    )
    async def send_file(number: str, request: Request) -> Any:
        await existing_phone(number)
        return await send_phone_file(core, channel, number, request)

    @router.get("/phones/{number}/messages", summary="Messages this phone sent and received, oldest first")
    async def messages(
        number: str,
        chatId: str | None = None,
        unread: bool = False,
        direction: str | None = Query(default=None, pattern="^(incoming|outgoing)$"),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        await existing_phone(number)
        short = {"incoming": "in", "outgoing": "out"}.get(direction or "")
        return await network.phone_messages(
            core, number, chat_id=chatId, unread_only=unread, direction=short, limit=limit
        )

    @router.post("/phones/{number}/read", response_model=ReadOut, summary="Read messages on this phone")
    async def read(number: str, body: ReadIn) -> Any:
        await existing_phone(number)
        return {"read": await channel.phone_read(number, body.chatId, body.idMessages)}

    async def set_blocked(number: str, chat_id: str, blocked: bool) -> Any:
        await existing_phone(number)
        try:
            changed = await phone_actions.set_blocked(channel, number, chat_id, blocked)
        except SandboxError as exc:
            raise HTTPException(400, str(exc)) from None
        listed = await phone_actions.blocked_by(channel, number)
        return {"chatId": chat_id, "blocked": blocked, "changed": changed, "blockedChats": listed}

    @router.post(
        "/phones/{number}/block",
        response_model=BlockOut,
        summary="Block an account on this phone (its instances get incomingBlock)",
    )
    async def block(number: str, body: BlockIn) -> Any:
        return await set_blocked(number, body.chatId, True)

    @router.post(
        "/phones/{number}/unblock",
        response_model=BlockOut,
        summary="Unblock an account on this phone (its instances get incomingBlock, chatState unblocked)",
    )
    async def unblock(number: str, body: BlockIn) -> Any:
        return await set_blocked(number, body.chatId, False)

    async def act(number: str, action: Any) -> Any:
        await existing_phone(number)
        try:
            return {"idMessage": await action()}
        except SandboxError as exc:
            raise HTTPException(400, str(exc)) from None

    @router.post("/phones/{number}/locations", response_model=SendOut, summary="Share a location")
    async def share_location(number: str, body: LocationIn) -> Any:
        return await act(
            number,
            lambda: phone_actions.send_location(
                channel,
                number,
                body.chatId,
                body.latitude,
                body.longitude,
                body.nameLocation,
                body.address,
                body.quotedMessageId,
            ),
        )

    @router.post(
        "/phones/{number}/contacts", response_model=SendOut, summary="Share one or more contact cards"
    )
    async def share_contacts(number: str, body: ContactsIn) -> Any:
        cards = [
            rich.contact_card(str(c.phoneContact), c.firstName, c.middleName, c.lastName, c.company)
            for c in body.contacts
        ]
        return await act(
            number,
            lambda: phone_actions.send_contacts(channel, number, body.chatId, cards, body.quotedMessageId),
        )

    @router.post(
        "/phones/{number}/messages/{id_message}/vote", response_model=SendOut, summary="Vote in a poll"
    )
    async def vote(number: str, id_message: str, body: VoteIn) -> Any:
        return await act(number, lambda: phone_actions.vote(channel, number, id_message, body.options))

    @router.post(
        "/phones/{number}/messages/{id_message}/reaction",
        response_model=SendOut,
        summary="React to a message",
    )
    async def react(number: str, id_message: str, body: ReactionIn) -> Any:
        return await act(number, lambda: phone_actions.react(channel, number, id_message, body.reaction))

    @router.post(
        "/phones/{number}/messages/{id_message}/edit", response_model=SendOut, summary="Edit an own message"
    )
    async def edit(number: str, id_message: str, body: EditIn) -> Any:
        return await act(number, lambda: phone_actions.edit(channel, number, id_message, body.message))

    @router.post(
        "/phones/{number}/messages/{id_message}/delete",
        response_model=SendOut,
        summary="Delete an own message for everyone",
    )
    async def delete(number: str, id_message: str) -> Any:
        return await act(number, lambda: phone_actions.delete(channel, number, id_message))

    @router.post(
        "/phones/{number}/messages/{id_message}/press", response_model=SendOut, summary="Press a reply button"
    )
    async def press(number: str, id_message: str, body: PressIn) -> Any:
        return await act(number, lambda: phone_actions.press(channel, number, id_message, body.buttonId))

    @router.get(
        "/phones/{number}/typing", response_model=list[TypingOut], summary="Typing indicators shown now"
    )
    async def typing(number: str) -> Any:
        await existing_phone(number)
        return typing_on(channel, number)

    def clock_on() -> None:
        if not core.settings.sandbox_clock:
            raise HTTPException(404, "the sandbox clock is off on this server (VERDIGRIS_SANDBOX_CLOCK)")

    @router.get("/clock", response_model=ClockOut, summary="This server's time (sandbox clock)")
    async def get_clock() -> Any:
        clock_on()
        return ClockOut(nowMs=clock.now_ms(), offsetSeconds=clock.offset_ms() // 1000)

    @router.post("/clock", response_model=ClockOut, summary="Move this server's clock forward")
    async def move_clock(body: ClockIn) -> Any:
        clock_on()
        try:
            clock.advance(body.advanceSeconds * 1000)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        core.timers.poke()
        return ClockOut(nowMs=clock.now_ms(), offsetSeconds=clock.offset_ms() // 1000)

    return router


async def sandbox_token(core: Core) -> str:
    """The credentials of the sandbox control API: configured, or generated once per data dir."""
    if core.settings.sandbox_token:
        return core.settings.sandbox_token
    import secrets

    return await instances.workspace_value(core, "sandbox_token", lambda: "sbx." + secrets.token_hex(20))
