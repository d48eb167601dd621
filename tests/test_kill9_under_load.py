"""``kill -9`` during a B1-shaped load (many concurrent sendMessage calls): nothing answered 200 is lost.

The accepts are group-committed (store/group.py), so this checks the promise a 200 makes: the row is
committed before the answer. Several rounds: load, kill -9 mid-load, restart on the same store. Then
every message answered 200 must be in the sender's journal and must reach the recipient as an
``incomingMessageReceived`` notification (none lost). Runs on SQLite, and on PostgreSQL with
``VERDIGRIS_TEST_DB=postgres``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness import Server

ROUNDS = 4
WORKERS = 24  # concurrent callers, as wrk's connections in B1
KILL_AFTER = 150  # 200s per round before the kill (the load keeps going while it lands)


async def load_until_killed(srv: Server, sender: dict[str, Any], chat_id: str, round_: int) -> list[str]:
    """Send from ``WORKERS`` connections until the server dies; kill it after ``KILL_AFTER`` 200s.
    Returns the idMessage of every 200 answer."""
    url = f"{srv.url}/waInstance{sender['idInstance']}/sendMessage/{sender['apiTokenInstance']}"
    accepted: list[str] = []
    killed = asyncio.Event()
    counter = 0

    async def worker(client: httpx.AsyncClient, w: int) -> None:
        nonlocal counter
        while not killed.is_set():
            counter += 1
            body = {"chatId": chat_id, "message": f"round {round_} worker {w} n {counter}"}
            try:
                r = await client.post(url, json=body)
            except httpx.TransportError:
                return  # the server is gone: this call was not answered, so nothing was promised
            assert r.status_code == 200, r.text
            accepted.append(r.json()["idMessage"])
            if len(accepted) >= KILL_AFTER and not killed.is_set():
                killed.set()
                # kill -9 while the other workers' calls are in flight
                await asyncio.get_running_loop().run_in_executor(None, srv.kill)

    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client, w) for w in range(WORKERS)))
    assert killed.is_set()
    return accepted


@pytest.mark.subprocess
def test_every_200_survives_kill_9_under_load_and_is_delivered(make_server: Callable[..., Server]) -> None:
    env = {"VERDIGRIS_RATE_LIMIT_MULTIPLIER": "100000"}
    srv = make_server(env=env, subprocess=True)
    a, b = srv.instance(0), srv.instance(1)
    accepted: list[str] = []
    for round_ in range(ROUNDS):
        got = asyncio.run(load_until_killed(srv, a, b["wid"], round_))
        print(f"round {round_ + 1}: {len(got)} accepted (200) before and during kill -9")
        accepted += got
        srv = make_server(env=srv.env, data_dir=srv.data_dir, port=srv.port, subprocess=True)

    # Every 200 is in the sender's journal.
    journal = srv.wire(a, "lastOutgoingMessages", params={"minutes": 60})
    assert journal.status_code == 200, journal.text
    stored = {m["idMessage"] for m in journal.json()}
    missing = [i for i in accepted if i not in stored]
    # ... and reaches the recipient: one incomingMessageReceived each (none lost).
    delivered: set[str] = set()
    deadline = time.monotonic() + 180
    with httpx.Client(timeout=30) as client:
        base = f"{srv.url}/waInstance{b['idInstance']}"
        token = b["apiTokenInstance"]
        while not set(accepted) <= delivered and time.monotonic() < deadline:
            r = client.get(f"{base}/receiveNotification/{token}", params={"receiveTimeout": 5})
            assert r.status_code == 200, r.text
            if r.json() is None:
                continue
            note = r.json()
            body = note["body"]
            if body["typeWebhook"] == "incomingMessageReceived":
                delivered.add(body["idMessage"])
            d = client.delete(f"{base}/deleteNotification/{token}/{note['receiptId']}")
            assert d.status_code == 200 and d.json() == {"result": True}, d.text
    lost = [i for i in accepted if i not in delivered]
    print(
        f"{ROUNDS} kill -9 rounds: {len(accepted)} accepted, {len(accepted) - len(missing)} stored, "
        f"{len(missing)} missing; {len(accepted) - len(lost)} delivered to the recipient, "
        f"{len(lost)} notifications lost"
    )
    assert len(set(accepted)) == len(accepted)
    assert missing == []
    assert lost == []
