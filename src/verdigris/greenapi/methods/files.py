"""File methods: sendFileByUpload, sendFileByUrl, uploadFile, downloadFile.

Uploads are accepted on the API and the media base URL alike (one server plays both), as
multipart forms or raw bytes, streamed with a size limit (``media_max_file_bytes``, 100 MB as
documented). A body over the limit is answered **413** with the usual JSON error body and
nothing is stored or queued. (GREEN-API documents no status for oversized uploads; 413 is the
HTTP status for exactly this. Remote files over the limit fail the message with the documented
``File from url exceeded max upload size...`` description.)
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, model_validator

from verdigris.greenapi.errors import WireError, validation
from verdigris.greenapi.fields import Body, ChatId, MessageId, TypingTime
from verdigris.greenapi.methods.sending import resolve_quote
from verdigris.greenapi.quota import check_chat
from verdigris.greenapi.registry import Call, validate_body, wire_method
from verdigris.media import bodies
from verdigris.media.scan import ScannerUnavailable
from verdigris.media.service import EmptyFile, FileInfected, FileTooLarge, MediaFile, media_of
from verdigris.messaging import service as messaging
from verdigris.messaging.content import file_content, file_type, guess_mime
from verdigris.messaging.vocabulary import FILE_TYPES


def _file_name(value: str) -> str:
    cleaned = bodies.clean_file_name(value)
    if not cleaned:
        raise ValueError("'fileName' is not allowed to be empty")
    return cleaned


def _http_url(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError("'urlFile' must be a valid uri (http or https)")
    return value


FileName = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_file_name)]
Caption = Annotated[str, Field(max_length=20000)]


class SendFileByUploadForm(Body):
    chatId: ChatId
    fileName: FileName | None = None
    caption: Caption | None = None
    quotedMessageId: str | None = None
    typingTime: TypingTime | None = None
    typingType: str | None = None


class SendFileByUrlBody(Body):
    chatId: ChatId
    urlFile: Annotated[str, Field(max_length=4096), AfterValidator(_http_url)]
    fileName: FileName
    caption: Caption | None = None
    quotedMessageId: str | None = None
    archiveChat: bool | None = None
    typingTime: TypingTime | None = None
    typingType: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _phone_number(cls, data: Any) -> Any:
        # JS1 sends phoneNumber instead of chatId for this method.
        if isinstance(data, dict) and "chatId" not in data and str(data.get("phoneNumber", "")).isdigit():
            return {**data, "chatId": f"{data['phoneNumber']}@c.us"}
        return data


class DownloadFileBody(Body):
    min_keys: ClassVar[int] = 2
    chatId: ChatId
    idMessage: MessageId


def too_large(size: int, limit: int) -> WireError:
    return WireError(
        413,
        f"File is too large: {size} bytes received, the limit is {limit} bytes "
        f"({limit // (1024 * 1024) or 1} MB). Nothing was stored or sent.",
    )


def _limit(call: Call) -> int:
    return call.core.settings.media_max_file_bytes


async def _read_form(call: Call) -> bodies.Form:
    content_type = call.request.headers.get("content-type", "")
    try:
        if content_type.split(";")[0].strip().lower() == "multipart/form-data":
            return await bodies.read_form(call.request, _limit(call))
        upload = await bodies.read_upload(call.request, _limit(call))
        if isinstance(upload, bodies.Form):
            return upload
        # Not multipart at all: drain what was sent so the client reads the answer.
        async for _ in upload.chunks:
            pass
    except bodies.BodyTooLarge as exc:
        raise too_large(exc.size, exc.limit) from None
    except bodies.BadBody as exc:
        raise WireError(400, str(exc)) from None
    raise WireError(400, "sendFileByUpload expects a multipart/form-data body with a 'file' part")


async def _store(call: Call, owner: str, chunks: Any, file_name: str, mime_type: str) -> MediaFile:
    try:
        return await media_of(call.core).save(owner, chunks, file_name=file_name, mime_type=mime_type)
    except (FileTooLarge, bodies.BodyTooLarge) as exc:
        raise too_large(exc.size, exc.limit) from None
    except EmptyFile:
        raise WireError(400, "File is empty") from None
    except FileInfected as exc:
        raise WireError(400, f"File refused: {exc}") from None
    except ScannerUnavailable:
        raise WireError(503, "The file could not be checked for malware; try again later") from None


@wire_method("sendFileByUpload", "POST", "sending", body_kind="multipart", host="media")
async def send_file_by_upload(call: Call) -> dict[str, Any]:
    """Send a file uploaded as multipart/form-data (queued); answers idMessage and the file's urlFile."""
    form = await _read_form(call)
    try:
        data = {k: v for k, v in form.fields.items() if v != ""}
        body = validate_body(SendFileByUploadForm, data, strict=False) if data else None
        if body is None:
            raise validation("'chatId' is required")
        assert isinstance(body, SendFileByUploadForm)
        if form.file is None:
            raise validation("'file' is required")
        file_name = body.fileName or form.file_name
        if not file_name:
            raise validation("'fileName' is required when the file part has no filename")
        quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
        # The router cannot see the chat inside a form: the free tier's limit is applied here,
        # before the file is stored or anything is queued.
        await check_chat(call, "sendFileByUpload", body.chatId)
        mime = guess_mime(file_name) or form.file_type
        record = await _store(call, str(call.instance.id), bodies.upload_chunks(form.file), file_name, mime)
    finally:
        await form.close()
    url = media_of(call.core).url(record)
    content = file_content(
        file_name=file_name,
        mime_type=record.mime_type,
        caption=body.caption or "",
        download_url=url,
        file_id=record.id,
        jpeg_thumbnail=record.jpeg_thumbnail,
        quoted=quoted,
    )
    request = body.model_dump(exclude_none=True, mode="json")
    request["fileName"] = file_name
    request["urlFile"] = url
    message = messaging.OutgoingMessage(
        chat_id=body.chatId,
        kind="sendFileByUrl",  # showMessagesQueue lists uploaded files under this type, as documented
        type_message=file_type(file_name, record.mime_type),
        content=content,
        request=request,
        typing_ms=body.typingTime or 0,
    )
    id_message = await messaging.send(call.core, call.instance, message)
    return {"idMessage": id_message, "urlFile": url}


@wire_method("sendFileByUrl", "POST", "sending", body=SendFileByUrlBody)
async def send_file_by_url(call: Call) -> dict[str, Any]:
    """Send a file by its URL (queued at once; the file is fetched in the background)."""
    body: SendFileByUrlBody = call.body
    quoted = await resolve_quote(call, body.chatId, body.quotedMessageId)
    media = media_of(call.core)
    mime = guess_mime(body.fileName)
    own = await media.resolve_link(body.urlFile)
    if own is not None:
        content = file_content(
            file_name=body.fileName,
            mime_type=mime or own.mime_type,
            caption=body.caption or "",
            download_url=media.url(own),
            file_id=own.id,
            jpeg_thumbnail=own.jpeg_thumbnail,
            quoted=quoted,
        )
    else:
        content = file_content(
            file_name=body.fileName,
            mime_type=mime,
            caption=body.caption or "",
            fetch_url=body.urlFile,
            quoted=quoted,
        )
    message = messaging.OutgoingMessage(
        chat_id=body.chatId,
        kind="sendFileByUrl",
        type_message=file_type(body.fileName, mime or (own.mime_type if own else "")),
        content=content,
        request=body.model_dump(exclude_none=True, mode="json"),
        typing_ms=body.typingTime or 0,
    )
    id_message = await messaging.send(call.core, call.instance, message)
    if own is None:
        row = await messaging.find_message(call.core, call.instance.id, body.chatId, id_message)
        if row is not None:
            media.schedule_fetch(row.row_id)
    return {"idMessage": id_message}


@wire_method("uploadFile", "POST", "sending", body_kind="raw", host="media")
async def upload_file(call: Call) -> dict[str, Any]:
    """Store a file (raw bytes + GA-Filename, or multipart) and answer its urlFile (valid ~15 days)."""
    owner = str(call.instance.id)
    try:
        upload = await bodies.read_upload(call.request, _limit(call))
    except bodies.BodyTooLarge as exc:
        raise too_large(exc.size, exc.limit) from None
    except bodies.BadBody as exc:
        raise WireError(400, str(exc)) from None
    if isinstance(upload, bodies.Form):
        try:
            if upload.file is None:
                raise validation("'file' is required")
            name = bodies.clean_file_name(upload.fields.get("fileName", "")) or upload.file_name
            header_name = bodies.clean_file_name(call.request.headers.get("ga-filename", ""))
            name = header_name or name
            mime = guess_mime(name) or upload.file_type
            record = await _store(call, owner, bodies.upload_chunks(upload.file), name, mime)
        finally:
            await upload.close()
    else:
        mime = upload.mime_type or guess_mime(upload.file_name)
        record = await _store(call, owner, upload.chunks, upload.file_name, mime)
    return {"urlFile": media_of(call.core).url(record)}


@wire_method("downloadFile", "POST", "receiving", body=DownloadFileBody)
async def download_file(call: Call) -> dict[str, Any]:
    """The link of a file message's file (incoming or outgoing)."""
    body: DownloadFileBody = call.body
    message = await messaging.find_message(call.core, call.instance.id, body.chatId, body.idMessage)
    content = message.content if message is not None else {}
    if message is None or message.type_message not in FILE_TYPES or not content.get("downloadUrl"):
        raise WireError(
            400,
            f"File message encrypted url not found by chatId {body.chatId} and idMessage {body.idMessage}",
        )
    file_id = content.get("fileId")
    if file_id and await media_of(call.core).get(file_id) is None:
        raise WireError(400, f"The file of message {body.idMessage} is no longer stored (its link expired)")
    return {"downloadUrl": content["downloadUrl"]}
