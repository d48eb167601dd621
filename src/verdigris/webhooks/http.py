"""The webhook POSTs: HTTP/1.1 on kept-alive connections, one small pool per receiver.

A webhook is always the same request (POST, a JSON body, a few headers, no redirects followed,
only the status code read back), so the dispatcher does not need a general HTTP client. With
httpx, its connection pool and stream layers took most of the dispatcher's CPU (bench B8 profile,
docs/performance.md); here a request is one write of prepared bytes and the answer goes through
``httptools``' parser (the one uvicorn uses).

* Connections are kept per receiver (scheme, host, port) and reused while the receiver keeps
  them open; at most ``per_host`` are open to one receiver (callers wait for one), idle ones
  are closed after ``keepalive_s`` and at most ``max_idle`` are kept overall.
* Every new connection goes through the outbound rule (``outbound.allowed_addresses``): the
  receiver's name is resolved once, every address checked, and the socket opened to an address
  that was checked. TLS verifies the certificate against the URL's host name.
* A request sent on a reused connection that the receiver closed before answering a byte is sent
  once more on a new connection (the receiver dropped an idle connection at the moment we used
  it; webhooks are at-least-once anyway).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import httptools
import httpx

from verdigris.outbound import allowed_addresses

Key = tuple[str, str, int]


class ProtocolError(Exception):
    """The receiver did not answer in HTTP/1.x, or closed the connection before answering."""


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL taken apart once (cached by the client)."""

    key: Key
    head: bytes  # "POST <path> HTTP/1.1\r\nHost: <host>\r\n"


def _target(url: str) -> Target:
    parsed = httpx.URL(url)  # validates and percent-encodes like the rest of the server
    scheme = parsed.scheme
    if scheme not in ("http", "https"):
        raise ProtocolError(f"unsupported URL scheme {scheme!r}")
    host = parsed.host
    if not host:
        raise ProtocolError("the URL has no host")
    default = 443 if scheme == "https" else 80
    port = parsed.port or default
    authority = f"[{host}]" if ":" in host else host
    if port != default:
        authority += f":{port}"
    path = parsed.raw_path.decode("ascii") or "/"
    return Target((scheme, host, port), f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii"))


def _header_lines(headers: dict[str, str], length: int) -> bytes:
    lines = []
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\0" in value:
            raise ProtocolError(f"the {name} header would contain a line break")
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {length}\r\nConnection: keep-alive\r\n\r\n")
    return "".join(lines).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One connection to a receiver and the parser of its answers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.status: int | None = None
        self.open = True
        self.got_bytes = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"not an HTTP answer: {exc}"))

    def eof_received(self) -> bool | None:
        self._closed()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_message_complete(self) -> None:
        waiter = self.waiter
        if self.status is not None and 100 <= self.status < 200:
            self.status = None  # an interim answer (100 Continue): the real one follows
            return
        if not self.parser.should_keep_alive():
            self.open = False
        if waiter is not None and not waiter.done() and self.status is not None:
            waiter.set_result(self.status)

    # ours
    def _closed(self) -> None:
        self.open = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.status is not None:
                waiter.set_result(self.status)  # an answer whose body ends with the connection
            else:
                waiter.set_exception(ProtocolError("the connection closed before an answer"))

    def _fail(self, exc: Exception) -> None:
        self.open = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.status = None
        self.got_bytes = False
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        try:
            self.transport.write(data)
            return await waiter
        finally:
            self.waiter = None

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.abort()


@dataclass
class _Host:
    slots: asyncio.Semaphore
    idle: deque[_Connection] = field(default_factory=deque)
    busy: int = 0  # requests under way (waiting for a slot included)


class WebhookClient:
    def __init__(
        self,
        *,
        allow_private: bool,
        timeout_s: float,
        per_host: int,
        max_idle: int,
        keepalive_s: float = 5.0,
    ) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self.per_host = per_host
        self.max_idle = max_idle
        self.keepalive_s = keepalive_s
        self._hosts: dict[Key, _Host] = {}
        self._targets: dict[str, Target] = {}
        self._idle_count = 0
        self._ssl: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body`` to ``url``; the answer's status code. Raises on network failures,
        :class:`~verdigris.outbound.ForbiddenTarget` included, and on ``timeout_s``."""
        target = self._targets.get(url)
        if target is None:
            target = _target(url)
            if len(self._targets) > 10_000:
                self._targets.clear()
            self._targets[url] = target
        data = target.head + _header_lines(headers, len(body)) + body
        host = self._hosts.get(target.key)
        if host is None:
            if len(self._hosts) >= 10_000:  # many receivers: forget those with nothing open
                self._hosts = {k: h for k, h in self._hosts.items() if h.idle or h.busy}
            host = self._hosts[target.key] = _Host(asyncio.Semaphore(self.per_host))
        host.busy += 1
        try:
            async with asyncio.timeout(self.timeout_s), host.slots:
                conn = self._take_idle(host)
                if conn is not None:
                    try:
                        return await self._exchange(host, conn, data)
                    except ProtocolError:
                        if conn.got_bytes:
                            raise
                        # Dropped by the receiver while idle: once more, on a new connection.
                return await self._exchange(host, await self._connect(target.key), data)
        finally:
            host.busy -= 1

    async def _exchange(self, host: _Host, conn: _Connection, data: bytes) -> int:
        try:
            status = await conn.request(data)
        except BaseException:
            conn.close()  # failed, timed out or cancelled half-way: the connection is unusable
            raise
        self._give_back(host, conn)
        return status

    def _take_idle(self, host: _Host) -> _Connection | None:
        limit = time.monotonic() - self.keepalive_s
        while host.idle:
            conn = host.idle.pop()  # the most recently used: the likeliest to be still open
            self._idle_count -= 1
            if conn.open and conn.idle_since >= limit:
                return conn
            conn.close()
        return None

    def _give_back(self, host: _Host, conn: _Connection) -> None:
        if not conn.open or self._idle_count >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        host.idle.append(conn)
        self._idle_count += 1
        limit = conn.idle_since - self.keepalive_s
        while host.idle and (not host.idle[0].open or host.idle[0].idle_since < limit):
            host.idle.popleft().close()
            self._idle_count -= 1

    async def _connect(self, key: Key) -> _Connection:
        scheme, hostname, port = key
        addresses = await allowed_addresses(hostname, port, self.allow_private, None)
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            tls = self._ssl
        last: Exception = OSError(f"no address for {hostname}")
        for address in addresses:
            try:
                _, conn = await loop.create_connection(
                    _Connection, address, port, ssl=tls, server_hostname=hostname if tls else None
                )
                return conn
            except OSError as exc:
                last = exc
        raise last

    async def aclose(self) -> None:
        for host in self._hosts.values():
            while host.idle:
                host.idle.pop().close()
        self._hosts.clear()
        self._idle_count = 0
