"""Where file bytes live: a small interface and its local-folder implementation.

A store keeps opaque blobs under keys such as ``"1101000001/0f3c..."`` (owner / file id). It knows
nothing of file names, types or expiry: those are rows in ``media_files`` (verdigris.media).
Writes are streamed and bounded: a blob larger than the limit is never kept.

The local store writes ``{media_dir}/{owner}/{file id}`` through a ``.part`` file that is fsynced and
renamed, so a blob is either complete or absent. The S3-compatible store (verdigris.store.s3)
implements the same protocol; ``local_path`` is None there and files are streamed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_KEY_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
READ_CHUNK = 256 * 1024


class BlobTooLarge(Exception):
    """The bytes offered exceed the limit; nothing was kept. ``size`` is how many were seen."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes exceed the limit of {limit} bytes")
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Blob:
    key: str
    size: int
    sha256: str


class MediaStore(Protocol):
    """Blob storage for media files."""

    name: str

    async def check(self) -> None:
        """Raise unless blobs can be written and read now (start-up and readiness)."""

    async def put(self, key: str, chunks: AsyncIterable[bytes], limit: int) -> Blob:
        """Store the bytes of ``chunks`` under ``key``; raise BlobTooLarge (keeping nothing) past ``limit``."""

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The bytes of a blob, in chunks (FileNotFoundError if it does not exist)."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path of the blob when the store has one (lets the server send it efficiently)."""

    async def delete(self, key: str) -> None:
        """Remove a blob (no error if it is already gone)."""

    async def delete_owner(self, owner: str) -> None:
        """Remove every blob of one owner (an instance or a sandbox phone)."""


def check_key(key: str) -> tuple[str, str]:
    parts = key.split("/")
    if len(parts) != 2 or not all(_KEY_PART.match(p) for p in parts):
        raise ValueError(f"invalid media key {key!r}")
    return parts[0], parts[1]


class LocalMediaStore:
    """Blobs as files in a folder of the data dir."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        owner, file_id = check_key(key)
        return self.root / owner / file_id

    async def check(self) -> None:
        def writable() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise PermissionError(f"media folder {self.root} is not writable")

        await asyncio.to_thread(writable)

    async def put(self, key: str, chunks: AsyncIterable[bytes], limit: int) -> Blob:
        path = self._path(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        digest = hashlib.sha256()
        size = 0
        handle = await asyncio.to_thread(open, part, "wb")
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > limit:
                    raise BlobTooLarge(size, limit)
                digest.update(chunk)
                handle.write(chunk)  # buffered local write; flushed and fsynced below
            await asyncio.to_thread(_flush_and_sync, handle)
        except BaseException:
            handle.close()
            part.unlink(missing_ok=True)
            raise
        handle.close()
        await asyncio.to_thread(os.replace, part, path)
        return Blob(key, size, digest.hexdigest())

    async def read(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        handle = await asyncio.to_thread(open, path, "rb")
        try:
            while True:
                chunk = await asyncio.to_thread(handle.read, READ_CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            handle.close()

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def delete_owner(self, owner: str) -> None:
        if not _KEY_PART.match(owner):
            raise ValueError(f"invalid media owner {owner!r}")
        folder = self.root / owner

        def remove() -> None:
            if folder.is_dir():
                for child in folder.iterdir():
                    child.unlink(missing_ok=True)
                folder.rmdir()

        await asyncio.to_thread(remove)


def _flush_and_sync(handle: object) -> None:
    handle.flush()  # type: ignore[attr-defined]
    os.fsync(handle.fileno())  # type: ignore[attr-defined]
