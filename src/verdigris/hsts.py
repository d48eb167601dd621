"""``Strict-Transport-Security`` on every answer given over HTTPS.

Over TLS (the server's own, or a trusted proxy's ``X-Forwarded-Proto: https``, which uvicorn turns
into the request's scheme), browsers are told to use HTTPS only for a year, so a later plain-HTTP
link cannot strip the console's Secure cookies. Plain HTTP answers never carry it (RFC 6797).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = (b"strict-transport-security", b"max-age=31536000")


class StrictTransportSecurity:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            await send(stamped(message))

        await self.app(scope, receive, with_header)


def stamped(message: Message) -> Message:
    """``message`` with the header added when it starts an answer (the wire front door adds it
    this way too, front.py)."""
    if message["type"] == "http.response.start":
        return {**message, "headers": [*message.get("headers", []), HEADER]}
    return message
