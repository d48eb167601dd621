"""Malware scanning of stored files through a ClamAV daemon (clamd), when one is configured.

Protocol (clamd's documented ``INSTREAM`` command): send ``zINSTREAM\\0``, then the file as chunks
each prefixed by its length (4 bytes, big-endian), then a zero length; clamd answers one line,
``stream: OK`` or ``stream: <signature> FOUND`` (NUL-terminated with the ``z`` prefix).
``VERDIGRIS_CLAMAV_ADDRESS`` is ``host:port`` or ``unix:/path/to/clamd.sock``.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

CHUNK = 64 * 1024
TIMEOUT_S = 60.0


class ScannerUnavailable(Exception):
    """clamd could not be reached or answered something unexpected; the file is refused."""


async def _connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if address.startswith("unix:"):
        return await asyncio.open_unix_connection(address[5:])
    host, _, port = address.rpartition(":")
    return await asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port))


async def scan(
    address: str, chunks: AsyncIterator[bytes], size: int = 0, timeout_s: float = TIMEOUT_S
) -> str | None:
    """The signature clamd found in the file, or None when it is clean. The whole exchange is
    bounded (``timeout_s`` plus a second per megabyte): a daemon that stops reading cannot hold the
    upload, or a fetch slot, forever."""
    try:
        async with asyncio.timeout(timeout_s + size / 1_000_000):
            return await _exchange(address, chunks)
    except TimeoutError:
        raise ScannerUnavailable(f"clamd at {address} did not finish in time") from None


async def _exchange(address: str, chunks: AsyncIterator[bytes]) -> str | None:
    try:
        reader, writer = await _connect(address)
    except (OSError, ValueError) as exc:
        raise ScannerUnavailable(f"cannot reach clamd at {address}: {exc}") from None
    try:
        writer.write(b"zINSTREAM\0")
        async for chunk in chunks:
            for start in range(0, len(chunk), CHUNK):
                part = chunk[start : start + CHUNK]
                writer.write(struct.pack(">I", len(part)) + part)
                await writer.drain()
        writer.write(struct.pack(">I", 0))
        await writer.drain()
        answer = await reader.readuntil(b"\0")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise ScannerUnavailable(f"clamd did not answer: {exc}") from None
    finally:
        writer.close()
    text = answer.rstrip(b"\0").decode("utf-8", "replace").strip()
    if text.endswith("OK"):
        return None
    if text.endswith("FOUND"):
        return text.removeprefix("stream:").removesuffix("FOUND").strip() or "unknown"
    raise ScannerUnavailable(f"clamd answered {text[:200]!r}")
