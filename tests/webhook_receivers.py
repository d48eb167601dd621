"""Webhook receivers for the delivery tests: the two official ones and a scriptable one.

Each runs in a background thread of the test process and records what it accepted, so tests
can compare the notifications a receiver saw with the messages that were sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness import free_port


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes = b""
    at: float = field(default_factory=time.monotonic)


class Recorder:
    """Thread-safe list of received notifications."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Received] = []

    def add(self, item: Received) -> None:
        with self._lock:
            self.items.append(item)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.items)

    def texts(self) -> list[str]:
        """The text of every incoming message received, in arrival order."""
        out = []
        for item in self.snapshot():
            data = item.body.get("messageData") or item.body.get("message_data") or {}
            text = (data.get("textMessageData") or {}).get("textMessage")
            if text is None:
                text = (data.get("text_message_data") or {}).get("text_message")
            if text is not None:
                out.append(text)
        return out

    def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"receiver condition not met; got {self.texts()}")

    def wait_texts(self, count: int, timeout: float = 90) -> list[str]:
        self.wait_for(lambda r: len(r.texts()) >= count, timeout)
        return self.texts()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (a killed server) is expected here


# --- a scriptable receiver --------------------------------------------------------------------------


class ScriptedReceiver:
    """A plain HTTP receiver whose answers a test controls.

    ``fail_first``: answer this many requests with ``fail_status`` before accepting;
    ``delay``: seconds to wait before answering; ``token``: require ``Bearer <token>``.
    Requests answered 200 are recorded in ``received``; every request in ``requests``.
    """

    def __init__(
        self,
        *,
        fail_first: int = 0,
        fail_status: int = 500,
        delay: float = 0.0,
        delay_first: int | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay = delay
        # Only the first N requests are slow (None: all).
        self.delay_first = delay_first
        self.received = Recorder()
        self.requests = Recorder()
        self._count = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?x=1"

    def start(self) -> ScriptedReceiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = self.headers.get("Content-Length")
                raw = self.rfile.read(int(length)) if length is not None else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                with outer._lock:
                    outer._count += 1
                    n = outer._count
                outer.requests.add(Received(body, headers, raw))
                if outer.delay and (outer.delay_first is None or n <= outer.delay_first):
                    time.sleep(outer.delay)
                status = outer.fail_status if n <= outer.fail_first else 200
                if status == 200:
                    outer.received.add(Received(body, headers, raw))
                payload = b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = _QuietServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


# --- the official receivers ---------------------------------------------------------------------------


class TornadoReceiver:
    """``whatsapp-api-webhook-server-python`` (tornado): path ``/`` only, no authentication."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received = Recorder()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> TornadoReceiver:
        from whatsapp_api_webhook_server_python.webhooksHandler import startServer

        recorder = self.received

        def on_event(handler: Any, type_webhook: str, body: dict[str, Any]) -> None:
            headers = {k.lower(): v for k, v in handler.request.headers.items()}
            recorder.add(Received(body, headers, handler.request.body))

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop

            async def listen() -> None:
                startServer("127.0.0.1", self.port, on_event, startLoop=False)

            loop.run_until_complete(listen())
            self._ready.set()
            loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        assert self._ready.wait(30), "tornado receiver did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)


class FastAPIReceiver:
    """``whatsapp-api-webhook-server-python-v2`` (FastAPI): POST ``/``, checks ``Bearer <token>``."""

    def __init__(self, token: str | None) -> None:
        self.port = free_port()
        self.token = token
        self.received = Recorder()
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FastAPIReceiver:
        import uvicorn
        from whatsapp_api_webhook_server_python_v2 import GreenAPIWebhookServer

        recorder = self.received

        def on_event(type_webhook: str, data: dict[str, Any]) -> None:
            recorder.add(Received(data, {}))

        official = GreenAPIWebhookServer(
            on_event, host="127.0.0.1", port=self.port, webhook_auth_header=self.token
        )
        config = uvicorn.Config(
            official._server_app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, daemon=True).start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert time.monotonic() < deadline, "FastAPI receiver did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
