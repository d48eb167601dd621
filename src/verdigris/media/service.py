"""Media actions: keep files, hand out their links, fetch remote files, forget expired ones.

A file is a row in ``media_files`` plus a blob in the media store (``core.media.store``). Its link
``{media_url}/media/{owner}/{id}/{file name}`` ends with the file name and works until
``expires_ms`` (``media_link_seconds``, 15 days as GREEN-API documents). Expired files are purged
on a timer.

sendFileByUrl accepts a message whose file is still to be fetched (content key ``fetchUrl``): the
fetch runs on ``core.timers``; the send worker holds the instance's queue at that message until
the fetch has either filled in ``downloadUrl`` or failed the message (``outgoingMessageStatus``
``failed``), so a dead URL never holds a request open.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import orjson
import structlog
from sqlalchemy import delete, insert, select, update

from verdigris import __version__
from verdigris.media import scan
from verdigris.media.models import media_files
from verdigris.media.thumbnails import jpeg_thumbnail
from verdigris.messaging import lifecycle
from verdigris.messaging.content import PICTURE_MIME
from verdigris.messaging.models import messages
from verdigris.messaging.service import QUEUED
from verdigris.messaging.vocabulary import Status
from verdigris.outbound import ForbiddenTarget, GuardedTransport, fetches_may_go_private, public_error
from verdigris.store.clock import now_ms
from verdigris.store.media import BlobTooLarge, LocalMediaStore, MediaStore
from verdigris.store.s3 import S3MediaStore

if TYPE_CHECKING:
    from verdigris.config import Settings
    from verdigris.core import Core
    from verdigris.instances.service import InstanceRecord

log = structlog.get_logger("verdigris.media")

PURGE_EVERY_MS = 10 * 60 * 1000
FETCH_CONCURRENCY = 16
# Stores without local files: pictures up to this size are read back for their thumbnail.
THUMBNAIL_SOURCE_MAX_BYTES = 25 * 1024 * 1024
_OWN_PATH = re.compile(r"/media/([A-Za-z0-9_-]{1,64})/([0-9a-f]{32})/([^/]+)$")


class FileTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"file of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class EmptyFile(Exception):
    pass


class FileInfected(Exception):
    """The malware scanner found ``signature`` in the file; it was not kept."""

    def __init__(self, signature: str) -> None:
        super().__init__(f"malware detected ({signature})")
        self.signature = signature


class FetchFailed(Exception):
    """A remote file could not be fetched; ``description`` goes into the failed status."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True, slots=True)
class MediaFile:
    id: str
    owner: str
    file_name: str
    mime_type: str
    size: int
    sha256: str
    created_ms: int
    expires_ms: int
    jpeg_thumbnail: str = ""

    @property
    def key(self) -> str:
        return f"{self.owner}/{self.id}"


def _file(row: Any) -> MediaFile:
    return MediaFile(
        id=row.id,
        owner=row.owner,
        file_name=row.file_name,
        mime_type=row.mime_type,
        size=int(row.size),
        sha256=row.sha256,
        created_ms=int(row.created_ms),
        expires_ms=int(row.expires_ms),
        jpeg_thumbnail=row.jpeg_thumbnail or "",
    )


def megabytes(size: int) -> str:
    value = size / (1024 * 1024)
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def default_name(file_id: str, mime_type: str) -> str:
    """A name for a file that came without one: its id and an extension from its type (else .bin)."""
    ext = mimetypes.guess_extension(mime_type, strict=False) if mime_type else None
    if ext in (".jpe", ".jfif"):
        ext = ".jpg"
    return f"{file_id}{ext or '.bin'}"


def open_store(settings: Settings) -> MediaStore:
    """The store VERDIGRIS_MEDIA_STORE names: a local folder or an S3-compatible bucket."""
    if settings.media_store == "s3":
        return S3MediaStore.from_settings(settings)
    return LocalMediaStore(settings.resolved_media_dir())


class MediaService:
    """The media machinery of one process: the store, link building, fetches and the purge."""

    def __init__(self, core: Core, store: MediaStore | None = None) -> None:
        self.core = core
        self.store: MediaStore = store or open_store(core.settings)
        self._fetch_slots = asyncio.Semaphore(FETCH_CONCURRENCY)

    @property
    def limit(self) -> int:
        return self.core.settings.media_max_file_bytes

    # --- files --------------------------------------------------------------------------------

    async def save(
        self, owner: str, chunks: AsyncIterable[bytes], *, file_name: str, mime_type: str
    ) -> MediaFile:
        """Store a file (bounded by the size limit) and record it. Raises FileTooLarge, EmptyFile."""
        file_id = uuid.uuid4().hex
        key = f"{owner}/{file_id}"
        try:
            blob = await self.store.put(key, chunks, self.limit)
        except BlobTooLarge as exc:
            raise FileTooLarge(exc.size, exc.limit) from None
        if blob.size == 0:
            await self.store.delete(key)
            raise EmptyFile()
        clamd = self.core.settings.clamav_address
        if clamd:
            try:
                found = await scan.scan(
                    clamd, self.store.read(key), blob.size, self.core.settings.clamav_timeout_seconds
                )
            except scan.ScannerUnavailable:
                await self.store.delete(key)
                log.error("file refused: the malware scanner is unavailable", address=clamd)
                raise
            if found is not None:
                await self.store.delete(key)
                log.warning("file refused: malware", owner=owner, signature=found, sha256=blob.sha256)
                raise FileInfected(found)
        mime = mime_type or mimetypes.guess_type(file_name, strict=False)[0] or "application/octet-stream"
        thumbnail = await self._thumbnail(key, mime, blob.size)
        now = now_ms()
        record = MediaFile(
            id=file_id,
            owner=owner,
            file_name=file_name or default_name(file_id, mime),
            mime_type=mime,
            size=blob.size,
            sha256=blob.sha256,
            created_ms=now,
            expires_ms=now + self.core.settings.media_link_seconds * 1000,
            jpeg_thumbnail=thumbnail,
        )
        try:
            async with self.core.tx() as tx:
                await tx.conn.execute(
                    insert(media_files).values(
                        id=record.id,
                        owner=record.owner,
                        file_name=record.file_name,
                        mime_type=record.mime_type,
                        size=record.size,
                        sha256=record.sha256,
                        created_ms=record.created_ms,
                        expires_ms=record.expires_ms,
                        jpeg_thumbnail=record.jpeg_thumbnail,
                    )
                )
        except BaseException:
            await self.store.delete(key)
            raise
        return record

    async def _thumbnail(self, key: str, mime: str, size: int) -> str:
        if mime not in PICTURE_MIME:
            return ""
        path = self.store.local_path(key)
        if path is not None:
            return await asyncio.to_thread(jpeg_thumbnail, path)
        if size > THUMBNAIL_SOURCE_MAX_BYTES:
            return ""
        data = b"".join([chunk async for chunk in self.store.read(key)])
        return await asyncio.to_thread(jpeg_thumbnail, data)

    async def discard(self, record: MediaFile) -> None:
        """Forget a file that was stored for a message that did not happen."""
        await self.store.delete(record.key)
        async with self.core.tx() as tx:
            await tx.conn.execute(delete(media_files).where(media_files.c.id == record.id))

    async def get(self, file_id: str, *, include_expired: bool = False) -> MediaFile | None:
        async with self.core.read() as conn:
            row = (await conn.execute(select(media_files).where(media_files.c.id == file_id))).first()
        if row is None:
            return None
        record = _file(row)
        if not include_expired and record.expires_ms <= now_ms():
            return None
        return record

    def url(self, record: MediaFile) -> str:
        return f"{self.core.media_url}/media/{record.owner}/{record.id}/{quote(record.file_name, safe='')}"

    async def resolve_link(self, url: str) -> MediaFile | None:
        """The live file behind ``url`` when it is one of this server's links, else None.

        The host is not compared (clients reach the server under several names, or through a
        proxy with a path prefix): a 128-bit file id with its owner and name is proof enough.
        """
        try:
            path = unquote(urlsplit(url).path)
        except ValueError:
            return None
        match = _OWN_PATH.search(path)
        if match is None:
            return None
        owner, file_id, name = match.groups()
        record = await self.get(file_id)
        if record is None or record.owner != owner or record.file_name != name:
            return None
        return record

    async def delete_owner(self, owner: str) -> int:
        """Forget every file of an owner (an instance being deleted, a sandbox phone)."""
        async with self.core.tx() as tx:
            result = await tx.conn.execute(delete(media_files).where(media_files.c.owner == owner))
        await self.store.delete_owner(owner)
        return int(result.rowcount or 0)

    async def purge_expired(self, batch: int = 500) -> int:
        removed = 0
        while True:
            async with self.core.read() as conn:
                rows = (
                    await conn.execute(
                        select(media_files.c.id, media_files.c.owner)
                        .where(media_files.c.expires_ms <= now_ms())
                        .limit(batch)
                    )
                ).all()
            if not rows:
                return removed
            for row in rows:
                await self.store.delete(f"{row.owner}/{row.id}")
            async with self.core.tx() as tx:
                await tx.conn.execute(delete(media_files).where(media_files.c.id.in_([r.id for r in rows])))
            removed += len(rows)

    # --- background work -------------------------------------------------------------------------

    async def start(self) -> None:
        """Plan the purge and resume the fetches that were under way when the process stopped."""

        async def purge() -> None:
            removed = await self.purge_expired()
            if removed:
                log.info("expired media files removed", count=removed)
            self.core.timers.schedule("media-purge", now_ms() + PURGE_EVERY_MS, purge)

        self.core.timers.schedule("media-purge", now_ms() + 1000, purge)
        async with self.core.read() as conn:
            rows = (
                await conn.execute(
                    select(messages.c.id).where(
                        (messages.c.status == QUEUED) & messages.c.content.like('%"fetchUrl"%')
                    )
                )
            ).all()
        for row in rows:
            self.schedule_fetch(int(row.id))

    def schedule_fetch(self, row_id: int) -> None:
        self.core.timers.schedule(("media-fetch", row_id), now_ms(), partial(self._fetch_for_message, row_id))

    async def _fetch_for_message(self, row_id: int) -> None:
        core = self.core
        async with core.read() as conn:
            row = (await conn.execute(select(messages).where(messages.c.id == row_id))).first()
        if row is None or row.status != QUEUED:
            return
        content = orjson.loads(row.content)
        url = content.get("fetchUrl")
        if not url:
            return
        rec = await core.instances.get(int(row.instance_id))
        async with self._fetch_slots:
            try:
                record = await self.fetch(
                    url, owner=str(row.instance_id), file_name=content.get("fileName", "")
                )
            except FetchFailed as exc:
                log.info("file fetch failed", id_message=row.id_message, reason=exc.description)
                await self._fail(row_id, row, rec, exc.description)
                return
        content.pop("fetchUrl", None)
        content["downloadUrl"] = self.url(record)
        content["fileId"] = record.id
        content["mimeType"] = content.get("mimeType") or record.mime_type
        content["jpegThumbnail"] = record.jpeg_thumbnail
        async with core.tx() as tx:
            result = await tx.conn.execute(
                update(messages)
                .where((messages.c.id == row_id) & (messages.c.status == QUEUED))
                .values(content=orjson.dumps(content).decode())
            )
            if rec is not None:
                lifecycle.wake_after(tx, rec)
        if not result.rowcount:  # withdrawn (clearMessagesQueue) while fetching
            await self.discard(record)

    async def _fail(self, row_id: int, row: Any, rec: InstanceRecord | None, description: str) -> None:
        async with self.core.tx() as tx:
            await lifecycle.set_status(
                tx,
                rec,
                row_id,
                row.chat_id,
                row.id_message,
                Status.FAILED,
                description[:400],
                expect=(Status.QUEUED,),
            )
            if rec is not None:
                lifecycle.wake_after(tx, rec)

    async def fetch(self, url: str, *, owner: str, file_name: str) -> MediaFile:
        """Download ``url`` into the store (bounded in size and time). Raises FetchFailed."""
        settings = self.core.settings
        timeout = settings.media_fetch_timeout_seconds
        limit = self.limit

        def too_large(size: int) -> FetchFailed:
            return FetchFailed(
                f"File from url exceeded max upload size. Size: {megabytes(size)}mb "
                f"Limit: {megabytes(limit)}mb Url: {url}"
            )

        try:
            async with asyncio.timeout(timeout):
                async with httpx.AsyncClient(
                    follow_redirects=True,
                    max_redirects=5,
                    timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
                    headers={"User-Agent": f"Verdigris/{__version__}"},
                    transport=GuardedTransport(allow_private=fetches_may_go_private(settings)),
                ) as client:
                    async with client.stream("GET", url) as response:
                        if response.status_code != 200:
                            raise FetchFailed(
                                f"the file could not be downloaded: {url} answered HTTP {response.status_code}"
                            )
                        declared = response.headers.get("content-length", "")
                        if declared.isdigit() and int(declared) > limit:
                            raise too_large(int(declared))
                        mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
                        if mime in ("application/octet-stream", "binary/octet-stream"):
                            mime = ""
                        return await self.save(
                            owner, response.aiter_bytes(64 * 1024), file_name=file_name, mime_type=mime
                        )
        except FileTooLarge as exc:
            raise too_large(exc.size) from None
        except EmptyFile:
            raise FetchFailed(f"the file could not be downloaded: {url} returned no bytes") from None
        except FileInfected as exc:
            raise FetchFailed(f"the file from {url} was refused: {exc}") from None
        except scan.ScannerUnavailable:
            raise FetchFailed(
                f"the file from {url} could not be checked for malware; send it again later"
            ) from None
        except TimeoutError:
            raise FetchFailed(
                f"the file could not be downloaded: {url} did not answer within {timeout:g} s"
            ) from None
        except ForbiddenTarget as exc:
            raise FetchFailed(
                f"the file could not be downloaded: {url} is on a private network address ({exc.host}); "
                "the operator allows such addresses with VERDIGRIS_OUTBOUND_ALLOW_PRIVATE"
            ) from None
        except (httpx.HTTPError, OSError, ValueError) as exc:
            log.info("file fetch failed", url=url, detail=f"{type(exc).__name__}: {exc}")
            raise FetchFailed(
                f"the file could not be downloaded: {url}: {public_error(exc, timeout)}"
            ) from None


def media_of(core: Core) -> MediaService:
    return core.media
