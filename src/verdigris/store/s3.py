"""Media blobs in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, ...), shared by every
server process on every machine (docs/scaling.md).

Keys are those of the local store (``owner/file id``) under an optional prefix. A blob appears only
once complete: small files go up in one ``PutObject``, larger ones as a multipart upload that is
aborted when the size limit is passed or the upload fails, so a half-written object never exists.
boto3 is synchronous; each call runs in a worker thread and one client (thread-safe, pooled
connections) serves the process.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from verdigris.store.media import READ_CHUNK, Blob, BlobTooLarge, check_key

if TYPE_CHECKING:
    from verdigris.config import Settings

# S3's smallest part (but the last) is 5 MiB; 8 MiB keeps the number of requests low for large files.
PART_SIZE = 8 * 1024 * 1024
_T = TypeVar("_T")


class MediaStoreUnavailable(Exception):
    """The object store could not be reached or refused the credentials."""


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


class S3MediaStore:
    name = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def from_settings(cls, settings: Settings) -> S3MediaStore:
        # Imported here: boto3 is an optional extra (pip install 'verdigris[s3]') and takes
        # a third of a second to import, which a server on the local folder should not pay.
        try:
            import boto3  # noqa: PLC0415
            from botocore.config import Config  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise RuntimeError("VERDIGRIS_MEDIA_STORE=s3 needs boto3: pip install 'verdigris[s3]'") from exc
        if not settings.s3_bucket:
            raise RuntimeError("VERDIGRIS_MEDIA_STORE=s3 needs VERDIGRIS_S3_BUCKET")
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region or None,
            # Empty means boto3's own chain: AWS_* variables, ~/.aws, an instance role.
            aws_access_key_id=settings.s3_access_key_id or None,
            aws_secret_access_key=settings.s3_secret_access_key or None,
            config=Config(
                max_pool_connections=32,
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                # Path-style addressing works with every S3-compatible server; virtual-host style
                # needs DNS for each bucket name.
                s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
            ),
        )
        return cls(client, settings.s3_bucket, settings.s3_prefix)

    def _object(self, key: str) -> str:
        check_key(key)
        return self.prefix + key

    async def _call(self, fn: Callable[..., _T], **kwargs: Any) -> _T:
        return await asyncio.to_thread(fn, **kwargs)

    async def check(self) -> None:
        """Raise MediaStoreUnavailable unless the bucket answers (readiness, start-up)."""
        try:
            await self._call(self.client.head_bucket, Bucket=self.bucket)
        except Exception as exc:
            raise MediaStoreUnavailable(f"bucket {self.bucket!r}: {exc}") from exc

    async def put(self, key: str, chunks: AsyncIterable[bytes], limit: int) -> Blob:
        name = self._object(key)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload: _Multipart | None = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise BlobTooLarge(size, limit)
                digest.update(chunk)
                buffer += chunk
                while len(buffer) >= PART_SIZE:
                    upload = upload or await _Multipart.begin(self, name)
                    await upload.send(bytes(buffer[:PART_SIZE]))
                    del buffer[:PART_SIZE]
            if upload is None:
                await self._call(self.client.put_object, Bucket=self.bucket, Key=name, Body=bytes(buffer))
            else:
                await upload.finish(bytes(buffer))
        except BaseException:
            if upload is not None and not upload.done:
                await asyncio.shield(upload.abort())
            raise
        return Blob(key, size, digest.hexdigest())

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            answer = await self._call(self.client.get_object, Bucket=self.bucket, Key=self._object(key))
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from None
            raise
        body = answer["Body"]
        try:
            while True:
                chunk = await asyncio.to_thread(body.read, READ_CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def local_path(self, key: str) -> Path | None:
        return None  # streamed by the server (links keep their expiry and their checks)

    async def delete(self, key: str) -> None:
        # DeleteObject succeeds for a key that does not exist.
        await self._call(self.client.delete_object, Bucket=self.bucket, Key=self._object(key))

    async def delete_owner(self, owner: str) -> None:
        check_key(f"{owner}/x")
        listing = self.client.get_paginator("list_objects_v2")

        def remove_all() -> None:
            for page in listing.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{owner}/"):
                names = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if names:  # at most 1,000 per page, as DeleteObjects takes
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": names, "Quiet": True})

        await asyncio.to_thread(remove_all)


class _Multipart:
    """One multipart upload: parts in order, then complete (the object appears) or abort."""

    def __init__(self, store: S3MediaStore, name: str, upload_id: str) -> None:
        self.store, self.name, self.upload_id = store, name, upload_id
        self.parts: list[dict[str, Any]] = []
        self.done = False

    @classmethod
    async def begin(cls, store: S3MediaStore, name: str) -> _Multipart:
        started = await store._call(store.client.create_multipart_upload, Bucket=store.bucket, Key=name)
        return cls(store, name, str(started["UploadId"]))

    def _ids(self) -> dict[str, Any]:
        return {"Bucket": self.store.bucket, "Key": self.name, "UploadId": self.upload_id}

    async def send(self, data: bytes) -> None:
        number = len(self.parts) + 1
        answer = await self.store._call(
            self.store.client.upload_part, PartNumber=number, Body=data, **self._ids()
        )
        self.parts.append({"ETag": answer["ETag"], "PartNumber": number})

    async def finish(self, rest: bytes) -> None:
        if rest:
            await self.send(rest)
        await self.store._call(
            self.store.client.complete_multipart_upload, MultipartUpload={"Parts": self.parts}, **self._ids()
        )
        self.done = True

    async def abort(self) -> None:
        try:
            await self.store._call(self.store.client.abort_multipart_upload, **self._ids())
        except Exception:  # noqa: BLE001 - a lifecycle rule for incomplete uploads is the backstop
            pass
