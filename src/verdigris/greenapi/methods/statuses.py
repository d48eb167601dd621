"""Status (story) methods: post, delete, and the status journals (the channel's ``statuses`` capability).

Posting is queued and paced like sending a message (the answer is the idMessage at once); the
sandbox network then delivers the status to its audience, and viewers on sandbox phones drive
getStatusStatistic. Unlike the hosted service (beta, access on request), statuses are enabled for
every instance.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from verdigris.channels.base import statuses_of
from verdigris.channels.capabilities import StatusNotFound, StatusPost
from verdigris.greenapi.errors import WireError, validation
from verdigris.greenapi.fields import Body, MessageId
from verdigris.greenapi.registry import EMPTY, Call, Empty, wire_method
from verdigris.greenapi.render import wire_status
from verdigris.messaging import service as messaging
from verdigris.messaging.vocabulary import STATUS_BROADCAST

_PERSON_ID = re.compile(r"^\d{5,20}@c\.us$")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")

Font = Literal["SERIF", "SANS_SERIF", "NORICAN_REGULAR", "BRYNDAN_WRITE", "OSWALD_HEAVY"]


def _participants(values: list[str]) -> list[str]:
    for value in values:
        if not _PERSON_ID.match(value):
            raise ValueError(
                f"'participants' must hold personal chat ids such as 79001234567@c.us, got {value!r}"
            )
    return values


def _color(value: str) -> str:
    if not _COLOR.match(value):
        raise ValueError(f"'backgroundColor' must be a colour such as #228B22, got {value!r}")
    return value


def _url(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("'urlFile' must be an http:// or https:// URL")
    return value


Participants = Annotated[list[str], Field(max_length=1024), AfterValidator(_participants)]
Color = Annotated[str, AfterValidator(_color)]
UrlFile = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_url)]
FileName = Annotated[str, Field(min_length=1, max_length=255)]


class TextStatusBody(Body):
    message: Annotated[str, Field(min_length=1, max_length=500)]
    backgroundColor: Color = "#000000"
    font: Font = "SERIF"
    participants: Participants | None = None


class VoiceStatusBody(Body):
    urlFile: UrlFile
    fileName: FileName
    backgroundColor: Color = "#000000"
    participants: Participants | None = None


class MediaStatusBody(Body):
    urlFile: UrlFile
    fileName: FileName
    caption: Annotated[str, Field(max_length=1024)] = ""
    participants: Participants | None = None

    @field_validator("fileName")
    @classmethod
    def _media(cls, value: str) -> str:
        if _file_type(value) is None:
            raise ValueError("'fileName' must name an image, video or audio file (e.g. photo.jpg, clip.mp4)")
        return value


class DeleteStatusBody(Body):
    idMessage: MessageId


def _file_type(file_name: str) -> tuple[str, str] | None:
    """(typeMessage, mimeType) of a status file, from its name."""
    mime = mimetypes.guess_type(file_name)[0] or ""
    for prefix, kind in (("image/", "imageMessage"), ("video/", "videoMessage"), ("audio/", "audioMessage")):
        if mime.startswith(prefix):
            return kind, mime
    return None


async def _post(call: Call, kind: str, type_message: str, content: dict[str, Any]) -> dict[str, Any]:
    message = messaging.OutgoingMessage(
        chat_id=STATUS_BROADCAST,
        kind=kind,
        type_message=type_message,
        content=content,
        request=call.body.model_dump(exclude_none=True, mode="json"),
    )
    return {"idMessage": await messaging.send(call.core, call.instance, message)}


@wire_method("sendTextStatus", "POST", "statuses", body=TextStatusBody)
async def send_text_status(call: Call) -> dict[str, Any]:
    """Post a text status (queued)."""
    body: TextStatusBody = call.body
    content = {
        "text": body.message,
        "backgroundColor": body.backgroundColor,
        "font": body.font,
        "participants": body.participants or [],
    }
    return await _post(call, "sendTextStatus", "extendedTextMessage", content)


@wire_method("sendVoiceStatus", "POST", "statuses", body=VoiceStatusBody)
async def send_voice_status(call: Call) -> dict[str, Any]:
    """Post a voice status from a file URL (queued)."""
    body: VoiceStatusBody = call.body
    kind = _file_type(body.fileName)
    if kind is None or kind[0] != "audioMessage":
        raise validation("'fileName' must name an audio file (e.g. voice.ogg, voice.mp3)")
    content = {
        "downloadUrl": body.urlFile,
        "fileName": body.fileName,
        "mimeType": kind[1],
        "caption": "",
        "jpegThumbnail": "",
        "backgroundColor": body.backgroundColor,
        "participants": body.participants or [],
    }
    return await _post(call, "sendVoiceStatus", "audioMessage", content)


@wire_method("sendMediaStatus", "POST", "statuses", body=MediaStatusBody)
async def send_media_status(call: Call) -> dict[str, Any]:
    """Post an image, video or audio status from a file URL (queued)."""
    body: MediaStatusBody = call.body
    kind = _file_type(body.fileName)
    assert kind is not None  # checked by the body model
    content = {
        "downloadUrl": body.urlFile,
        "fileName": body.fileName,
        "mimeType": kind[1],
        "caption": body.caption,
        "jpegThumbnail": "",
        "participants": body.participants or [],
    }
    return await _post(call, "sendMediaStatus", kind[0], content)


@wire_method("deleteStatus", "POST", "statuses", body=DeleteStatusBody)
async def delete_status(call: Call) -> Empty:
    """Delete a status this account posted."""
    try:
        await statuses_of(call.channel).delete(call.core, call.instance, call.body.idMessage)
    except StatusNotFound:
        raise WireError(400, "ID message notfound") from None
    return EMPTY


@wire_method("getStatusStatistic", "GET", "statuses", query=("idMessage",))
async def get_status_statistic(call: Call) -> list[dict[str, Any]]:
    """Who got a status and who viewed it."""
    id_message = call.param("idMessage")
    if not id_message or not isinstance(id_message, str):
        raise validation("'idMessage' is required")
    try:
        rows = await statuses_of(call.channel).statistic(call.core, call.instance.wid, id_message)
    except StatusNotFound:
        # Still in the outgoing queue (or being handed over): known, and nobody has seen it yet.
        if await messaging.find_message(call.core, call.instance.id, STATUS_BROADCAST, id_message) is None:
            raise WireError(400, "ID message notfound") from None
        return []
    return [
        {"participant": r["participant"], "timestamp": r["at_ms"] // 1000, "status": r["status"]}
        for r in rows
    ]


def _file_fields(content: dict[str, Any]) -> dict[str, Any]:
    return {
        k: content.get(k, "") for k in ("downloadUrl", "caption", "fileName", "jpegThumbnail", "mimeType")
    }


@wire_method("getIncomingStatuses", "GET", "statuses", query=("minutes",))
async def get_incoming_statuses(call: Call) -> list[dict[str, Any]]:
    """Statuses of others that reached this account in the last ``minutes`` (default 1440)."""
    minutes = call.int_param("minutes", 1440, 1, 525600)
    out = []
    for s in await statuses_of(call.channel).incoming(call.core, call.instance.wid, minutes):
        entry: dict[str, Any] = {
            "type": "incoming",
            "idMessage": s.id_message,
            "timestamp": s.created_ms // 1000,
            "typeMessage": s.type_message,
            "chatId": s.author,
            "senderId": s.author,
            "senderName": s.author_name,
            "senderContactName": "",
        }
        if s.type_message == "extendedTextMessage":
            entry["textMessage"] = s.content.get("text", "")
            entry["extendedTextMessage"] = {
                "text": s.content.get("text", ""),
                "backgroundColor": s.content.get("backgroundColor", ""),
                "font": s.content.get("font", ""),
            }
        else:
            entry.update(_file_fields(s.content))
        out.append(entry)
    return out


@wire_method("getOutgoingStatuses", "GET", "statuses", query=("minutes",))
async def get_outgoing_statuses(call: Call) -> list[dict[str, Any]]:
    """Statuses this account posted in the last ``minutes`` (default 1440), with their state,
    including those still waiting in its outgoing queue (statusMessage ``pending``)."""
    minutes = call.int_param("minutes", 1440, 1, 525600)
    posted = await statuses_of(call.channel).outgoing(call.core, call.instance.wid, minutes)
    out = []
    for s in _with_unsent(
        call, posted, await messaging.unsent_statuses(call.core, call.instance.id, minutes)
    ):
        entry: dict[str, Any] = {
            "type": "outgoing",
            "idMessage": s.id_message,
            "timestamp": s.created_ms // 1000,
            "typeMessage": s.type_message,
            "chatId": s.author,
        }
        if s.type_message == "extendedTextMessage":
            entry["textMessage"] = s.content.get("text", "")
            entry["extendedTextMessage"] = {
                "text": s.content.get("text", ""),
                "backgroundColor": s.content.get("backgroundColor", ""),
                "font": s.content.get("font", ""),
                "participants": s.participants,
            }
        else:
            entry["participants"] = s.participants
            entry.update(_file_fields(s.content))
        entry["statusMessage"] = wire_status(s.status)
        entry["sendByApi"] = s.sent_by_api
        out.append(entry)
    return out


def _with_unsent(
    call: Call, posted: list[StatusPost], unsent: list[messaging.StoredMessage]
) -> list[StatusPost]:
    """The network's statuses and those still in this instance's queue, newest first (a status
    that has just left may be in both: the network's copy wins)."""
    known = {s.id_message for s in posted}
    waiting = [
        StatusPost(
            id_message=m.id_message,
            author=call.instance.wid,
            author_name=m.sender_name,
            type_message=m.type_message,
            content=m.content,
            participants=[str(p) for p in m.content.get("participants") or []],
            sent_by_api=m.sent_by_api,
            created_ms=m.created_ms,
            status=m.status,
        )
        for m in unsent
        if m.id_message not in known
    ]
    return sorted(posted + waiting, key=lambda s: s.created_ms, reverse=True)
