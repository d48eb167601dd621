"""The WhatsApp Web gateway protocol: how the server and a gateway process talk (docs/whatsapp-web.md).

The gateway holds the WhatsApp sessions (decision 0010) and listens on a Unix socket; the server
connects to it. Everything on the socket is a *frame*: a 4-byte big-endian length, then that many
bytes of one JSON object with a ``type``. Nothing of the library the gateway uses crosses it.

1. Handshake. The gateway says ``hello`` with a random ``nonce``; the server answers ``auth`` with
   ``proof`` = HMAC-SHA256(secret, "server:" + nonce) and a nonce of its own; the gateway answers
   ``welcome`` with its own proof over that nonce ("gateway:" + nonce), or ``refused`` and closes.
   The secret is a file both read (mode 0600), so neither side ever sends it.
2. Requests (server → gateway): ``{"type": "request", "id": n, "method": ..., "params": {...}}``,
   answered by ``{"type": "response", "id": n, "result": {...}}`` or ``..., "error": {"code",
   "message"}}``. Answers may come in any order.
3. Events (gateway → server): ``{"type": "event", "seq": n, "session": ..., "kind": ..., "data":
   {...}}``. The server answers ``{"type": "ack", "seq": n}`` only after it has committed what the
   event means; the gateway keeps every event until then and sends the unacknowledged ones again,
   in order, to the next server that connects. So an event may arrive twice, never not at all.

This module is both ends' transport: :class:`GatewayListener` (the gateway's side: the fake one in
the tests and ``verdigris wa-gateway``) and :class:`GatewayLink` (the server's side, used by the
channel). Sessions, methods and event kinds are listed in docs/whatsapp-web.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import os
import secrets
import stat
import struct
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

log = structlog.get_logger("verdigris.waweb")

VERSION = 1
MAX_FRAME = 16 * 1024 * 1024
# Files cross the socket in parts of at most PART bytes (base64 inside one frame each:
# ``upload_part`` then ``upload``; ``download`` by ``offset``), and the gateway holds a whole
# file in memory while it hands it to the library (neonize takes bytes): at most MAX_FILE.
PART = 4 * 1024 * 1024
MAX_FILE = 100 * 1024 * 1024
# How many unfinished uploads a gateway keeps (a server that died mid-upload leaves one).
MAX_PENDING_UPLOADS = 16
_HEADER = struct.Struct(">I")
# A Unix socket path must fit in sockaddr_un (108 bytes on Linux, with the final NUL).
MAX_SOCKET_PATH = 107

# Error codes of a response (the channel maps them; docs/whatsapp-web.md lists them).
NO_SESSION = "no_session"  # the session is not known to the gateway (not started)
NOT_LINKED = "not_linked"  # the session has no linked account (yet)
ALREADY_LINKED = "already_linked"
NOT_CONNECTED = "not_connected"  # linked, but the connection to WhatsApp is down right now
REFUSED = "refused"  # WhatsApp refused this (a message, a number): final
BAD_REQUEST = "bad_request"  # the request itself is wrong (a missing parameter, an unknown method)
INTERNAL = "internal"  # the gateway failed; may work when tried again
FULL = "full"  # the gateway runs as many sessions as it may (--max-sessions): try again later
# Raised by the server's side itself: no gateway connection, or no answer in time.
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"


class ProtocolError(Exception):
    """The peer broke the protocol (a bad frame, a failed handshake): the connection is closed."""


class GatewayError(Exception):
    """A request answered with an error, or not answered (``code`` says which)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in (NOT_CONNECTED, INTERNAL, UNREACHABLE, TIMEOUT, FULL)


# --- frames --------------------------------------------------------------------------------------


def encode(frame: dict[str, Any]) -> bytes:
    body = orjson.dumps(frame)
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"a frame of {len(body)} bytes is over the limit of {MAX_FRAME}")
    return _HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The next frame; EOFError when the peer closed between frames."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise EOFError from None
        raise ProtocolError("the connection closed inside a frame header") from None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"a frame of {size} bytes is over the limit of {MAX_FRAME}")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ProtocolError("the connection closed inside a frame") from None
    try:
        frame = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProtocolError("a frame is not JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ProtocolError("a frame is not an object with a type")
    return frame


# --- the secret ----------------------------------------------------------------------------------


def load_secret(path: Path) -> bytes:
    """The shared secret in ``path``, made (32 random bytes, hex, mode 0600) if the file is missing.
    A secret file others may read is refused: the socket's protection would be worth nothing."""
    if not path.exists():
        # Written aside and linked into place: a reader never sees a half-written file, and of
        # two processes making it at once, one wins.
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ProtocolError(f"{path} may be read by others (mode {mode:o}); it must be 0600")
    secret = path.read_text().strip().encode()
    if len(secret) < 32:
        raise ProtocolError(f"{path} holds no usable secret")
    return secret


def proof(secret: bytes, role: str, nonce: str) -> str:
    return hmac.new(secret, f"{role}:{nonce}".encode(), hashlib.sha256).hexdigest()


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ProtocolError(
            f"the gateway socket path {path} is longer than {MAX_SOCKET_PATH} bytes: choose a shorter one"
        )


# --- the gateway's side --------------------------------------------------------------------------

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class GatewayListener:
    """Listens on ``path``; serves one server connection at a time (a new one replaces the old).

    ``handler(method, params)`` answers requests (raise :class:`GatewayError` for an error answer).
    :meth:`emit` queues an event; it stays in :attr:`unacked` until the server acknowledges it and
    is sent again to every new connection until then.
    """

    def __init__(
        self, path: Path, secret: bytes, handler: Handler, on_ack: Callable[[int], None] | None = None
    ) -> None:
        check_socket_path(path)
        self.path = path
        self.secret = secret
        self.on_ack = on_ack  # the gateway forgets its stored copy of the event
        self.handler = handler
        self.unacked: dict[int, dict[str, Any]] = {}  # seq -> frame, in order
        self._seq = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connections = 0  # authenticated connections so far
        self.acked = asyncio.Condition()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._writer is not None:
            self._writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def emit(self, session: str, kind: str, data: dict[str, Any], seq: int | None = None) -> int:
        """Queue an event for the server; ``seq``: the number a stored copy was given already."""
        if seq is None:
            seq = next(self._seq)
        frame = {"type": "event", "seq": seq, "session": session, "kind": kind, "data": data}
        self.unacked[seq] = frame
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode(frame))
        return seq

    async def wait_acked(self, seq: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout), self.acked:
            await self.acked.wait_for(lambda: seq not in self.unacked)

    def disconnect(self) -> None:
        """Drop the current connection (the server connects again)."""
        if self._writer is not None:
            self._writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handshake(reader, writer)
        except (ProtocolError, EOFError, OSError, TimeoutError) as exc:
            log.warning("gateway connection refused", reason=str(exc) or type(exc).__name__)
            writer.close()
            return
        if self._writer is not None:
            self._writer.close()  # one server at a time: the newest wins
        self._writer = writer
        self.connections += 1
        for frame in list(self.unacked.values()):
            writer.write(encode(frame))
        try:
            while True:
                frame = await read_frame(reader)
                if frame["type"] == "ack":
                    await self._acknowledged(int(frame.get("seq", 0)))
                elif frame["type"] == "request":
                    task = asyncio.get_running_loop().create_task(self._answer(writer, frame))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                else:
                    raise ProtocolError(f"unexpected frame {frame['type']!r}")
        except (EOFError, ConnectionError):
            pass
        except ProtocolError as exc:
            log.warning("gateway connection closed", reason=str(exc))
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()

    async def _acknowledged(self, seq: int) -> None:
        async with self.acked:
            if self.unacked.pop(seq, None) is not None and self.on_ack is not None:
                self.on_ack(seq)
            self.acked.notify_all()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonce = secrets.token_hex(16)
        writer.write(encode({"type": "hello", "version": VERSION, "nonce": nonce}))
        async with asyncio.timeout(10):
            auth = await read_frame(reader)
        given = str(auth.get("proof", ""))
        if auth["type"] != "auth" or not hmac.compare_digest(given, proof(self.secret, "server", nonce)):
            writer.write(encode({"type": "refused", "message": "wrong secret"}))
            raise ProtocolError("a peer failed the handshake")
        theirs = str(auth.get("nonce", ""))
        if len(theirs) < 16:
            raise ProtocolError("the server's nonce is too short")
        writer.write(
            encode({"type": "welcome", "version": VERSION, "proof": proof(self.secret, "gateway", theirs)})
        )

    async def _answer(self, writer: asyncio.StreamWriter, frame: dict[str, Any]) -> None:
        answer: dict[str, Any] = {"type": "response", "id": frame.get("id")}
        params = frame.get("params")
        try:
            if not isinstance(params, dict):
                raise GatewayError(BAD_REQUEST, "params must be an object")
            answer["result"] = await self.handler(str(frame.get("method", "")), params)
        except GatewayError as exc:
            answer["error"] = {"code": exc.code, "message": exc.message}
        except Exception as exc:
            log.exception("gateway request failed", method=frame.get("method"))
            answer["error"] = {"code": INTERNAL, "message": f"{type(exc).__name__}: {exc}"[:300]}
        if not writer.is_closing():
            writer.write(encode(answer))


# --- the server's side ---------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    seq: int
    session: str
    kind: str
    data: dict[str, Any]


EventHandler = Callable[[Event], Awaitable[None]]


class GatewayLink:
    """The server's connection to the gateway: connects (again and again, with a growing pause),
    sends requests and hands events to ``on_event`` one at a time, in order, acknowledging each
    after ``on_event`` returned (it commits what the event means). An ``on_event`` that raises
    closes the connection; the gateway sends the event again on the next one."""

    def __init__(
        self,
        path: Path,
        secret: Callable[[], bytes],
        on_event: EventHandler,
        on_connect: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.path = path
        self.secret = secret
        self.on_event = on_event
        self.on_connect = on_connect
        self.connected = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.last_error = ""

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writer is not None:
            self._writer.close()

    async def request(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The gateway's answer; GatewayError if it answered an error, is not connected
        (``unreachable``) or did not answer within ``timeout`` (``timeout``)."""
        writer = self._writer
        if writer is None or writer.is_closing():
            raise GatewayError(
                UNREACHABLE, f"the WhatsApp Web gateway is not connected ({self.last_error or 'starting'})"
            )
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            writer.write(encode({"type": "request", "id": request_id, "method": method, "params": params}))
            async with asyncio.timeout(timeout):
                answer = await future
        except TimeoutError:
            raise GatewayError(
                TIMEOUT, f"the WhatsApp Web gateway did not answer {method} within {timeout:g} s"
            ) from None
        finally:
            self._waiting.pop(request_id, None)
        error = answer.get("error")
        if error is not None:
            raise GatewayError(str(error.get("code", INTERNAL)), str(error.get("message", "")))
        result = answer.get("result")
        return result if isinstance(result, dict) else {}

    async def _run(self) -> None:
        pause = 0.05
        while not self._closing:
            try:
                await self._session()
                pause = 0.05
            except asyncio.CancelledError:
                raise
            except (OSError, EOFError, ProtocolError, TimeoutError) as exc:
                self.last_error = str(exc) or type(exc).__name__
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("WhatsApp Web gateway connection failed")
            self.connected.clear()
            self._writer = None
            for future in self._waiting.values():
                if not future.done():
                    future.set_result(
                        {"error": {"code": UNREACHABLE, "message": "the gateway connection was lost"}}
                    )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    async def _session(self) -> None:
        reader, writer = await asyncio.open_unix_connection(str(self.path), limit=MAX_FRAME + 16)
        events: asyncio.Queue[Event | None] = asyncio.Queue()
        try:
            async with asyncio.timeout(10):
                hello = await read_frame(reader)
                if hello["type"] != "hello" or hello.get("version") != VERSION:
                    raise ProtocolError(f"the gateway speaks another protocol ({hello.get('version')!r})")
                secret = self.secret()
                mine = secrets.token_hex(16)
                writer.write(
                    encode(
                        {
                            "type": "auth",
                            "proof": proof(secret, "server", str(hello.get("nonce", ""))),
                            "nonce": mine,
                        }
                    )
                )
                welcome = await read_frame(reader)
            if welcome["type"] != "welcome" or not hmac.compare_digest(
                str(welcome.get("proof", "")), proof(secret, "gateway", mine)
            ):
                raise ProtocolError("the gateway refused the handshake or could not prove the secret")
            self._writer = writer
            self.last_error = ""
            self.connected.set()
            worker = asyncio.get_running_loop().create_task(self._apply(events, writer))
            if self.on_connect is not None:
                asyncio.get_running_loop().create_task(self.on_connect())
            try:
                while True:
                    if worker.done():
                        worker.result()  # an event that could not be applied: reconnect
                    try:
                        frame = await read_frame(reader)
                    except EOFError:
                        raise EOFError("the gateway closed the connection") from None
                    if frame["type"] == "response":
                        future = self._waiting.get(int(frame.get("id") or 0))
                        if future is not None and not future.done():
                            future.set_result(frame)
                    elif frame["type"] == "event":
                        data = frame.get("data")
                        events.put_nowait(
                            Event(
                                int(frame["seq"]),
                                str(frame.get("session", "")),
                                str(frame.get("kind", "")),
                                data if isinstance(data, dict) else {},
                            )
                        )
                    else:
                        raise ProtocolError(f"unexpected frame {frame['type']!r}")
            finally:
                worker.cancel()
        finally:
            writer.close()

    async def _apply(self, events: asyncio.Queue[Event | None], writer: asyncio.StreamWriter) -> None:
        while True:
            event = await events.get()
            if event is None:
                return
            try:
                await self.on_event(event)
            except Exception:
                log.exception("WhatsApp Web event not applied", kind=event.kind, session=event.session)
                writer.close()  # the gateway sends it again after the reconnect
                raise
            if not writer.is_closing():
                writer.write(encode({"type": "ack", "seq": event.seq}))
