"""Sandbox phones send files: ``POST /sandbox/phones/{number}/files`` (multipart).

The file is stored like any other (owner ``phone-{number}``), and the message goes through the
network as an image/video/audio/document message, so linked instances receive
``incomingMessageReceived`` with ``fileMessageData``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, Request

from verdigris.channels.sandbox.network import SandboxError
from verdigris.media import bodies
from verdigris.media.scan import ScannerUnavailable
from verdigris.media.service import EmptyFile, FileInfected, FileTooLarge, media_of
from verdigris.messaging.content import file_content, file_type, guess_mime

if TYPE_CHECKING:
    from verdigris.channels.sandbox.network import SandboxNetwork
    from verdigris.core import Core

FILE_FORM_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["chatId", "file"],
                    "properties": {
                        "chatId": {
                            "type": "string",
                            "description": "Recipient chat id, e.g. 79990000001@c.us",
                        },
                        "file": {"type": "string", "format": "binary"},
                        "fileName": {"type": "string", "description": "Defaults to the file part's name"},
                        "caption": {"type": "string"},
                        "quotedMessageId": {"type": "string"},
                    },
                }
            }
        },
    }
}


async def send_phone_file(
    core: Core, channel: SandboxNetwork, number: str, request: Request
) -> dict[str, Any]:
    media = media_of(core)
    try:
        form = await bodies.read_form(request, media.limit)
    except bodies.BodyTooLarge as exc:
        raise HTTPException(413, f"file too large: the limit is {exc.limit} bytes") from None
    except bodies.BadBody as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        chat_id = form.fields.get("chatId", "")
        if not chat_id:
            raise HTTPException(400, "chatId is required")
        if form.file is None:
            raise HTTPException(400, "a file part named 'file' is required")
        name = bodies.clean_file_name(form.fields.get("fileName", "")) or form.file_name
        if not name:
            raise HTTPException(400, "fileName is required when the file part has no filename")
        caption = form.fields.get("caption", "")
        if len(caption) > 20000:
            raise HTTPException(400, "caption must be at most 20000 characters")
        mime = guess_mime(name) or form.file_type
        try:
            record = await media.save(
                f"phone-{number}", bodies.upload_chunks(form.file), file_name=name, mime_type=mime
            )
        except FileTooLarge as exc:
            raise HTTPException(413, f"file too large: the limit is {exc.limit} bytes") from None
        except EmptyFile:
            raise HTTPException(400, "the file is empty") from None
        except FileInfected as exc:
            raise HTTPException(400, f"file refused: {exc}") from None
        except ScannerUnavailable:
            raise HTTPException(400, "the file could not be checked for malware; try again later") from None
    finally:
        await form.close()
    url = media.url(record)
    type_message = file_type(name, record.mime_type)
    content = file_content(
        file_name=name,
        mime_type=record.mime_type,
        caption=caption,
        download_url=url,
        file_id=record.id,
        jpeg_thumbnail=record.jpeg_thumbnail,
    )
    try:
        id_message = await channel.phone_send_content(
            number, chat_id, type_message, content, form.fields.get("quotedMessageId") or None
        )
    except SandboxError as exc:
        await media.discard(record)
        raise HTTPException(400, str(exc)) from None
    return {"idMessage": id_message, "typeMessage": type_message, "urlFile": url}
