"""Reading upload bodies: multipart forms and raw bytes, streamed and bounded.

Clients send files in several encodings (see the wire spec, "uploads arrive in three encodings"):

* ``multipart/form-data`` with a ``file`` part; the part's filename raw UTF-8 (requests),
  percent-encoded (aiohttp) or RFC 5987 ``filename*``; the part's Content-Type may be missing;
* raw bytes with ``GA-Filename`` and an optional Content-Type (uploadFile);
* a multipart body whose Content-Type header was overwritten with the file's type (boundary lost):
  recognised by its first line.

Bodies are read as a stream with a byte budget. Past the budget the rest is read and discarded (up
to a bound), so the client gets to read the 413 answer instead of a reset connection.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

# Room for the form's text fields and part headers on top of the file itself.
MULTIPART_OVERHEAD = 1024 * 1024
# How much of an oversized body is read (and thrown away) so the client sees the answer.
DRAIN_EXTRA = 64 * 1024 * 1024
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_BOUNDARY_LINE = re.compile(rb"^--([0-9A-Za-z'()+_,./:=?-]{1,70})\r?\n")
_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([^']*)'[^']*'([^;\s]+)", re.IGNORECASE)


class BodyTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes exceed {limit}")
        self.size = size
        self.limit = limit


class BadBody(Exception):
    """The body cannot be read as the form it claims to be."""


@dataclass
class Form:
    """A parsed multipart form: its text fields and its (first) file part named ``file``."""

    fields: dict[str, str] = field(default_factory=dict)
    file: UploadFile | None = None
    _uploads: list[UploadFile] = field(default_factory=list)

    @property
    def file_name(self) -> str:
        """The file part's name, decoded (raw UTF-8, percent-encoded or RFC 5987)."""
        if self.file is None:
            return ""
        disposition = self.file.headers.get("content-disposition", "")
        star = _FILENAME_STAR.search(_latin1_to_utf8(disposition))
        if star:
            return clean_file_name(unquote(star.group(2), encoding=_charset(star.group(1)), errors="replace"))
        return clean_file_name(self.file.filename or "")

    @property
    def file_type(self) -> str:
        if self.file is None:
            return ""
        return (self.file.headers.get("content-type") or "").split(";")[0].strip().lower()

    async def close(self) -> None:
        for upload in self._uploads:
            await upload.close()


class _Parser(MultiPartParser):
    """Starlette's parser, also taking parts that name their file only by RFC 5987 ``filename*``.

    The underlying header parser drops ``filename*``; such a part would pass for a text field. A
    placeholder ``filename`` keeps it a file part; Form.file_name reads the real name.
    """

    def on_header_end(self) -> None:
        if self._current_partial_header_name.lower() == b"content-disposition":
            value = self._current_partial_header_value
            if _HAS_STAR.search(value) and not _HAS_PLAIN.search(value):
                self._current_partial_header_value = value + b'; filename="file"'
        super().on_header_end()


_HAS_STAR = re.compile(rb";\s*filename\*\s*=", re.IGNORECASE)
_HAS_PLAIN = re.compile(rb";\s*filename\s*=", re.IGNORECASE)


def _charset(name: str) -> str:
    """The charset a ``filename*`` names, if Python knows it (else UTF-8: a bogus one is no crash)."""
    if not name:
        return "utf-8"
    try:
        b"0".decode(name)  # LookupError for unknown names and for bytes-to-bytes codecs
    except LookupError:
        return "utf-8"
    except UnicodeDecodeError:
        pass  # a real text encoding (utf-16, say) that cannot read one byte alone
    return name


def clean_file_name(raw: str) -> str:
    """A safe file name: decoded, no directories or control characters, at most 200 characters."""
    name = raw.strip().strip('"')
    if _PERCENT.search(name):
        try:
            name = unquote(name, errors="strict")
        except UnicodeDecodeError:
            pass
    name = _latin1_to_utf8(name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in (".", ".."):
        name = ""
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 199 - len(ext)] + dot + ext) if dot and len(ext) <= 16 else name[:200]
    return unicodedata.normalize("NFC", name)


def _latin1_to_utf8(text: str) -> str:
    """Undo UTF-8 bytes that were decoded as Latin-1 (HTTP headers are read that way)."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


async def bounded(chunks: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    """Pass chunks through until ``limit`` bytes; past it, drain (bounded) and raise BodyTooLarge."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            async for rest in chunks:
                total += len(rest)
                if total > limit + DRAIN_EXTRA:
                    break
            raise BodyTooLarge(total, limit)
        yield chunk


async def _peek(request: Request, want: int) -> tuple[bytes, AsyncIterator[bytes]]:
    """Read at least ``want`` bytes (or the whole body if shorter); return them and the rest."""
    stream = request.stream().__aiter__()
    head = b""
    while len(head) < want:
        try:
            head += await stream.__anext__()
        except StopAsyncIteration:
            break
    return head, stream


async def _replay(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if head:
        yield head
    async for chunk in rest:
        yield chunk


def _is_multipart(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "multipart/form-data"


def sniff_boundary(head: bytes) -> str | None:
    """The boundary of a body that is multipart whatever its Content-Type says, else None."""
    match = _BOUNDARY_LINE.match(head)
    if match and b"content-disposition" in head[:4096].lower():
        return match.group(1).decode("ascii")
    return None


async def read_form(
    request: Request,
    file_limit: int,
    *,
    headers: Headers | None = None,
    stream: AsyncIterator[bytes] | None = None,
) -> Form:
    """Parse a multipart body whose file part may be up to ``file_limit`` bytes."""
    budget = file_limit + MULTIPART_OVERHEAD
    if not (headers or request.headers).get("content-type", "").lower().startswith("multipart/form-data"):
        raise BadBody("the body must be multipart/form-data")
    declared = content_length(request)
    if declared is not None and declared > budget + DRAIN_EXTRA:
        raise BodyTooLarge(declared, file_limit)
    parser = _Parser(
        headers or request.headers,
        bounded(stream or request.stream(), budget),
        max_files=4,
        max_fields=64,
        max_part_size=256 * 1024,
    )
    try:
        data = await parser.parse()
    except MultiPartException as exc:
        raise BadBody(f"multipart body could not be read: {exc.message}") from None
    form = Form()
    for name, value in data.multi_items():
        if isinstance(value, str):
            form.fields.setdefault(name, value)
        else:
            form._uploads.append(value)
            if name == "file" and form.file is None:
                form.file = value
    if form.file is not None and (form.file.size or 0) > file_limit:
        size = form.file.size or 0
        await form.close()
        raise BodyTooLarge(size, file_limit)
    return form


@dataclass
class RawBody:
    """A raw upload: the bytes still to be read, and what the headers say about them."""

    chunks: AsyncIterator[bytes]
    file_name: str
    mime_type: str


async def read_upload(request: Request, file_limit: int) -> Form | RawBody:
    """uploadFile's body: raw bytes, or a multipart form (declared or recognised by its first line)."""
    content_type = request.headers.get("content-type", "")
    if _is_multipart(content_type):
        return await read_form(request, file_limit)
    declared = content_length(request)
    if declared is not None and declared > file_limit + DRAIN_EXTRA:
        raise BodyTooLarge(declared, file_limit)
    head, rest = await _peek(request, 1024)
    boundary = sniff_boundary(head)
    if boundary is not None:
        raw: list[tuple[bytes, bytes]] = [
            (k, v) for k, v in request.headers.raw if k.lower() != b"content-type"
        ]
        raw.append((b"content-type", f"multipart/form-data; boundary={boundary}".encode()))
        return await read_form(request, file_limit, headers=Headers(raw=raw), stream=_replay(head, rest))
    mime = content_type.split(";")[0].strip().lower()
    return RawBody(
        chunks=bounded(_replay(head, rest), file_limit),
        file_name=clean_file_name(request.headers.get("ga-filename", "")),
        mime_type="" if mime in ("", "application/x-www-form-urlencoded") else mime,
    )


async def upload_chunks(upload: UploadFile, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    await upload.seek(0)
    while True:
        chunk = await upload.read(size)
        if not chunk:
            return
        yield chunk


def form_value(form: Form, name: str) -> Any:
    """A text field, or None when absent (empty strings count as absent, as SDKs send no empty fields)."""
    value = form.fields.get(name)
    return value if value not in (None, "") else None
