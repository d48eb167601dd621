"""The gateway protocol on its own (channels/whatsapp_web/protocol.py): the handshake, requests and
answers, and events that stay with the gateway until the server acknowledged them."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from verdigris.channels.whatsapp_web import protocol
from verdigris.channels.whatsapp_web.channel import METHODS
from verdigris.channels.whatsapp_web.protocol import Event, GatewayError, GatewayLink, GatewayListener
from verdigris.greenapi import methods as _wire_methods  # noqa: F401  (fills the registry)
from verdigris.greenapi.registry import REGISTRY


async def echo(method: str, params: dict[str, Any]) -> dict[str, Any]:
    if method == "boom":
        raise GatewayError(protocol.REFUSED, "refused for the test")
    if method == "crash":
        raise RuntimeError("a bug")
    if method == "slow":
        await asyncio.sleep(60)
    return {"method": method, "params": params}


def test_the_secret_file_is_made_private_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    first = protocol.load_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 64
    assert protocol.load_secret(path) == first  # kept, not made again
    os.chmod(path, 0o644)
    with pytest.raises(protocol.ProtocolError, match="0600"):
        protocol.load_secret(path)


def test_requests_answers_and_events_acknowledged_after_they_are_applied(tmp_path: Path) -> None:
    async def scenario() -> None:
        secret = protocol.load_secret(tmp_path / "s")
        listener = GatewayListener(tmp_path / "g.sock", secret, echo)
        await listener.start()
        assert stat.S_IMODE((tmp_path / "g.sock").stat().st_mode) == 0o600
        applied: list[Event] = []
        gate = asyncio.Event()

        async def on_event(event: Event) -> None:
            await gate.wait()
            applied.append(event)

        link = GatewayLink(tmp_path / "g.sock", lambda: secret, on_event)
        link.start()
        await asyncio.wait_for(link.connected.wait(), 10)
        assert await link.request("open", {"session": "1"}, 5) == {
            "method": "open",
            "params": {"session": "1"},
        }
        with pytest.raises(GatewayError) as refused:
            await link.request("boom", {}, 5)
        assert (refused.value.code, refused.value.retryable) == (protocol.REFUSED, False)
        with pytest.raises(GatewayError) as crashed:
            await link.request("crash", {}, 5)
        assert crashed.value.code == protocol.INTERNAL and crashed.value.retryable
        with pytest.raises(GatewayError) as slow:
            await link.request("slow", {}, 0.2)
        assert slow.value.code == "timeout"

        seq = listener.emit("1", "message", {"id": "X"})
        await asyncio.sleep(0.2)
        assert seq in listener.unacked  # the server has it but has not applied it yet
        gate.set()
        await listener.wait_acked(seq, 10)
        assert [(e.seq, e.kind, e.data) for e in applied] == [(seq, "message", {"id": "X"})]
        await link.close()
        await listener.close()

    asyncio.run(scenario())


def test_unacknowledged_events_are_sent_again_in_order_after_a_reconnect(tmp_path: Path) -> None:
    async def scenario() -> None:
        secret = protocol.load_secret(tmp_path / "s")
        listener = GatewayListener(tmp_path / "g.sock", secret, echo)
        await listener.start()
        seen: list[int] = []
        fail_once = {2}

        async def on_event(event: Event) -> None:
            if event.seq in fail_once:
                fail_once.clear()
                raise RuntimeError("the database is busy")  # not applied: not acknowledged
            seen.append(event.seq)

        for n in range(3):
            listener.emit("1", "message", {"n": n})  # before any server is connected
        link = GatewayLink(tmp_path / "g.sock", lambda: secret, on_event)
        link.start()
        await listener.wait_acked(3, 20)
        assert seen == [1, 2, 3] and listener.unacked == {}
        assert listener.connections == 2  # the failed event closed the first connection
        await link.close()
        await listener.close()

    asyncio.run(scenario())


def test_a_wrong_secret_is_refused_both_ways(tmp_path: Path) -> None:
    async def scenario() -> None:
        secret = protocol.load_secret(tmp_path / "s")
        listener = GatewayListener(tmp_path / "g.sock", secret, echo)
        await listener.start()
        listener.emit("1", "message", {"private": True})

        async def never(event: Event) -> None:
            raise AssertionError("an unauthenticated peer got an event")

        intruder = GatewayLink(tmp_path / "g.sock", lambda: b"x" * 64, never)
        intruder.start()
        await asyncio.sleep(0.5)
        assert not intruder.connected.is_set() and listener.connections == 0
        assert "refused" in intruder.last_error
        with pytest.raises(GatewayError) as refused:
            await intruder.request("open", {}, 1)
        assert refused.value.code == "unreachable"
        await intruder.close()
        await listener.close()

    asyncio.run(scenario())


def test_frames_are_bounded_and_typed(tmp_path: Path) -> None:
    async def read(data: bytes) -> dict[str, Any]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await protocol.read_frame(reader)

    assert asyncio.run(read(protocol.encode({"type": "ack", "seq": 1}))) == {"type": "ack", "seq": 1}
    with pytest.raises(protocol.ProtocolError, match="over the limit"):
        asyncio.run(read((protocol.MAX_FRAME + 1).to_bytes(4, "big")))
    with pytest.raises(protocol.ProtocolError, match="not an object"):
        asyncio.run(read(b"\x00\x00\x00\x02[]"))
    with pytest.raises(protocol.ProtocolError, match="not JSON"):
        asyncio.run(read(b"\x00\x00\x00\x02{x"))
    with pytest.raises(EOFError):
        asyncio.run(read(b""))
    with pytest.raises(protocol.ProtocolError, match="longer than"):
        protocol.check_socket_path(tmp_path / ("x" * 120))


def test_the_channel_offers_only_wire_methods() -> None:
    names = {spec.name for spec in REGISTRY.values() if spec.done}
    assert METHODS <= names, f"not wire methods: {sorted(METHODS - names)}"
