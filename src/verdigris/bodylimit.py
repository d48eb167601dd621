"""Request body limits for every face, enforced while the body streams in, before any other work.

The outermost middleware: it refuses a body whose declared ``Content-Length`` exceeds the face's
limit without reading a byte of it, and stops a body sent without a length (chunked) as soon as it
has passed the limit. Nothing behind it (authentication, argon2, a database read, JSON parsing)
runs for a refused body, and the answer is 413 in the face's own error format.

Limits: requests that carry files (the wire API, whose upload methods stream files to the media
store, and a sandbox phone's file upload) may be as large as a file plus its form
(``media_max_file_bytes`` + 1 MB); console forms 11 MB (a customer CSV import is up to 10 MB);
every other body (the JSON APIs, the payment callback, the sandbox control API) 4 MB. Faces keep
their own, smaller limits on top (a wire JSON body is still at most 4 MB).
"""

from __future__ import annotations

import re

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verdigris.config import Settings
from verdigris.greenapi.errors import error_response

MB = 1024 * 1024
JSON_LIMIT = 4 * MB
CONSOLE_LIMIT = 11 * MB
_WIRE = re.compile(r"^/+(v3/+)?waInstance", re.IGNORECASE)
_SANDBOX_FILES = re.compile(r"^/sandbox/phones/[^/]+/files/?$")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes its limit. An HTTPException, so that a
    FastAPI face (which turns other errors while reading a body into 400) answers it as 413 in its
    ``{"detail": ...}`` format; for the rest, the middleware answers it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _text(limit))


def _text(limit: int) -> str:
    return f"Payload Too Large: the body may have at most {limit} bytes here"


def limit_for(path: str, settings: Settings) -> int:
    if _WIRE.match(path) or _SANDBOX_FILES.match(path):
        return settings.media_max_file_bytes + MB
    if path.startswith("/console"):
        return CONSOLE_LIMIT
    return JSON_LIMIT


def too_large(path: str, limit: int) -> Response:
    """The 413 answer, in the format of the face that owns ``path``."""
    text = _text(limit)
    if _WIRE.match(path) or path.startswith("/partner/"):
        return error_response(413, text, path)
    if path.startswith("/console"):
        return HTMLResponse(f"<!doctype html><title>Too large</title><p>{text}.</p>", status_code=413)
    if path.startswith("/api/v1/") and "/webhooks" not in path:
        body = {"error": text, "message": text}  # the licensing API's error model
    else:
        body = {"detail": text}
    return Response(orjson.dumps(body), status_code=413, media_type="application/json")


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await limited(self.app, scope, receive, send, limit_for(scope["path"], self.settings))


async def limited(app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """Run ``app`` on an HTTP request whose body may have at most ``limit`` bytes (the middleware
    above; the wire front door calls it too, front.py)."""
    path: str = scope["path"]
    headers = dict(scope["headers"])
    declared = headers.get(b"content-length", b"")
    if declared and (not declared.isdigit() or int(declared) > limit):
        # Not a byte of the body is read; the connection closes after the answer.
        await too_large(path, limit)(scope, _nothing, send)
        return
    if b"transfer-encoding" not in headers:
        # A declared length is all the body there is (the HTTP parser stops at it), and a request
        # with neither header has no body: nothing to count.
        await app(scope, receive, send)
        return
    received = 0
    started = False

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    async def watched(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await app(scope, counted, watched)
    except BodyTooLarge:
        if started:
            raise
        await too_large(path, limit)(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
