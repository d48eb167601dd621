"""The webhook dispatcher's HTTP client (webhooks/http.py): kept-alive connections, the outbound
rule on every connection, answers of every shape."""

from __future__ import annotations

import asyncio
import socket

import pytest

from verdigris.outbound import ForbiddenTarget
from verdigris.webhooks.http import ProtocolError, WebhookClient


def client(allow_private: bool = True, per_host: int = 4, timeout_s: float = 5) -> WebhookClient:
    return WebhookClient(allow_private=allow_private, timeout_s=timeout_s, per_host=per_host, max_idle=8)


class Receiver:
    """A raw HTTP/1.1 server: counts connections and requests, answers as ``answer`` says."""

    def __init__(self, answer: bytes, close_after: int = 0, drop_second: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after  # close each connection after this many answers (0: never)
        # Close a connection, without answering, when a second request arrives on it (a receiver
        # dropping an idle connection just as it is used again).
        self.drop_second = drop_second
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook?x=1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                if self.drop_second and answered == 1:
                    break
                writer.write(self.answer)
                await writer.drain()
                answered += 1
                if self.close_after and answered >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_posts_reuse_one_connection() -> None:
    async def main() -> None:
        receiver = Receiver(OK)
        url = await receiver.start()
        c = client()
        try:
            for n in range(20):
                assert await c.post(url, b'{"n":%d}' % n, {"Content-Type": "application/json"}) == 200
        finally:
            await c.aclose()
            await receiver.stop()
        assert receiver.connections == 1
        assert len(receiver.requests) == 20
        first = receiver.requests[0]
        assert first.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:" in first and first.endswith(b'{"n":0}')

    asyncio.run(main())


def test_a_kept_connection_dropped_by_the_receiver_is_replaced_once() -> None:
    async def main() -> None:
        receiver = Receiver(OK, drop_second=True)
        url = await receiver.start()
        c = client()
        try:
            assert await c.post(url, b"1", {}) == 200
            assert await c.post(url, b"2", {}) == 200  # sent on the kept one, dropped, sent again
        finally:
            await c.aclose()
            await receiver.stop()
        assert receiver.connections == 2
        assert [r[-1:] for r in receiver.requests] == [b"1", b"2", b"2"]

    asyncio.run(main())


def test_parallel_posts_are_bounded_per_receiver() -> None:
    async def main() -> None:
        receiver = Receiver(OK)
        url = await receiver.start()
        c = client(per_host=3)
        try:
            answers = await asyncio.gather(*(c.post(url, b"{}", {}) for _ in range(30)))
        finally:
            await c.aclose()
            await receiver.stop()
        assert answers == [200] * 30
        assert 1 <= receiver.connections <= 3

    asyncio.run(main())


@pytest.mark.parametrize(
    "answer,status",
    [
        (b"HTTP/1.0 200 OK\r\n\r\nbody until the connection closes", 200),  # HTTP/1.0, no length
        (b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 500),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204),
    ],
)
def test_answers_of_every_shape(answer: bytes, status: int) -> None:
    async def main() -> None:
        receiver = Receiver(answer, close_after=1)
        url = await receiver.start()
        c = client()
        try:
            for _ in range(3):  # the connection closed by the receiver is replaced
                assert await c.post(url, b"{}", {}) == status
        finally:
            await c.aclose()
            await receiver.stop()

    asyncio.run(main())


def test_receiver_that_does_not_speak_http_is_an_error() -> None:
    async def main() -> None:
        receiver = Receiver(b"SSH-2.0-OpenSSH_9.2\r\n", close_after=1)
        url = await receiver.start()
        c = client()
        try:
            with pytest.raises(ProtocolError):
                await c.post(url, b"{}", {})
        finally:
            await c.aclose()
            await receiver.stop()

    asyncio.run(main())


def test_silent_receiver_times_out() -> None:
    async def main() -> None:
        listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        c = client(timeout_s=0.3)
        try:
            with pytest.raises(TimeoutError):
                await c.post(f"http://127.0.0.1:{port}/", b"{}", {})
        finally:
            await c.aclose()
            listener.close()

    asyncio.run(main())


def test_header_with_line_break_is_refused_before_sending() -> None:
    async def main() -> None:
        receiver = Receiver(OK)
        url = await receiver.start()
        c = client()
        try:
            with pytest.raises(ProtocolError):
                await c.post(url, b"{}", {"Authorization": "Bearer x\r\nX-Injected: 1"})
        finally:
            await c.aclose()
            await receiver.stop()
        assert receiver.requests == []

    asyncio.run(main())


def test_private_targets_are_refused_at_connection_time() -> None:
    """The outbound rule holds on every webhook connection: a name or literal that is (or
    resolves to) loopback is refused before any connection is made."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    async def attempt(url: str) -> None:
        c = client(allow_private=False)
        try:
            await c.post(url, b"{}", {})
        finally:
            await c.aclose()

    try:
        for url in (f"http://localhost:{port}/", f"http://127.0.0.1:{port}/", f"http://2130706433:{port}/"):
            with pytest.raises(ForbiddenTarget):
                asyncio.run(attempt(url))
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever connected
    finally:
        listener.close()
