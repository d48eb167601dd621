"""The front door of wire calls: one step from the server to the wire endpoint.

Every request passes FastAPI's and Starlette's layers (telemetry check, server errors, exception
telemetry, body limit) and ours (HSTS, body limit, change log, path normaliser) before it reaches
a route: eight layers, about a sixth of a wire call's CPU under load (docs/performance.md). A wire
call (a path and verb the wire routes match fully) takes this one step instead, which does what
those layers do to it, in their order and through the same functions:

1. a 500 ``Internal Server Error`` (plain text, no HSTS header) for an unexpected error, as
   Starlette's ``ServerErrorMiddleware`` answers it, and the error raised on to the server's log;
2. ``Strict-Transport-Security`` on the answer over HTTPS (hsts.py);
3. the body limit (bodylimit.py: 413 in the wire format);
4. the changes other processes committed, applied before the call is routed (store/changes.py);
5. the path normalised and the call handed to the wire endpoint (greenapi/routes.py).

FastAPI's own layers have nothing to do for a wire call: its body limit is not set and its
telemetry is off unless an OpenTelemetry provider is configured, in which case (checked at the
first request) every call keeps the whole chain. Any other request, and every request of a
worker process, goes through the whole chain as before.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from verdigris import bodylimit, hsts
from verdigris.core import Core
from verdigris.greenapi.routes import WireEndpoint, wire_call
from verdigris.store.changes import before_request

INTERNAL_ERROR = PlainTextResponse("Internal Server Error", status_code=500)


class WireFront:
    def __init__(self, core: Core, endpoint: WireEndpoint) -> None:
        self.core = core
        self.endpoint = endpoint  # the wire routes' own (one rate limiter)
        self.limit = bodylimit.limit_for("/waInstance", core.settings)  # every wire path's

    async def serve(self, scope: Scope, call: Scope, receive: Receive, send: Send) -> None:
        """Answer the request ``scope``, whose wire call (:func:`wire_call`) is ``call``."""
        started = False
        https = scope.get("scheme") == "https"

        async def answer(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if https:
                    message = hsts.stamped(message)
            await send(message)

        async def route(_scope: Scope, receive: Receive, send: Send) -> None:
            await before_request(self.core, scope["path"])
            call["endpoint"] = self.endpoint
            await self.endpoint(call, receive, send)

        try:
            await bodylimit.limited(route, scope, receive, answer, self.limit)
        except Exception:
            if not started:
                await INTERNAL_ERROR(scope, receive, send)
            raise


class Application(FastAPI):
    """FastAPI, with wire calls taken through :class:`WireFront` when ``front`` is set."""

    front: WireFront | None = None
    _front_on: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is not None and scope["type"] == "http":
            call = wire_call(scope)
            if call is not None and self._front_open():
                await front.serve(scope, call, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _front_open(self) -> bool:
        """Off when FastAPI's telemetry is on (an OpenTelemetry provider is set): its spans and
        metrics then see every call, as they would without the front door."""
        if self._front_on is None:
            telemetry: Any = getattr(self, "_native_telemetry", None)
            self._front_on = telemetry is None or not telemetry.enabled()
        return self._front_on
