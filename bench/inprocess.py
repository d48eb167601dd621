"""CPU per wire call through the whole ASGI app, in-process (no uvicorn, no wrk).

    python bench/inprocess.py                  # 2,000 sends and 8,000 receive + delete pairs, twice
    VERDIGRIS_BENCH_SRC=/tmp/old/src python bench/inprocess.py   # the same against other code

The app is the real one (``create_app``, its lifespan, a seeded SQLite data dir); requests are
handed to it as ASGI messages by concurrent tasks, so group commit batches as it does under wrk:
32 tasks send ``sendMessage`` (B1a's shape, instances not linked) and 16 tasks alternate
``receiveNotification`` and ``deleteNotification`` on their own instance (B2's shape). The
figure is ``time.process_time`` per request or pair: steadier than a server under wrk on a shared
machine, and without uvicorn's share (which B0 measures). Run it under ``py-spy record`` for a
profile without the sampling noise of a live server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson  # noqa: E402
import run  # noqa: E402
import seed  # noqa: E402
import uvloop  # noqa: E402
from common import server_env  # noqa: E402

from verdigris.app import create_app  # noqa: E402  (seed puts the source under test on the path)

SENDERS = 32
POLLERS = 16


async def call(app: Any, verb: str, path: str, body: bytes = b"", query: bytes = b"") -> tuple[int, bytes]:
    """One request handed to the app as ASGI messages; its status and body."""
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    if body:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": verb,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"]), bytes(sent[1]["body"])


async def measure(n: int) -> None:
    app = create_app()
    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    lifespan = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get, answers.put)
    )
    assert (await answers.get())["type"] == "lifespan.startup.complete"
    await sends(app, n)
    await pairs(app, n)
    await startup.put({"type": "lifespan.shutdown"})
    await lifespan


async def sends(app: Any, n: int) -> None:
    items = ITEMS
    sink = f"{seed.SINK_PHONE}@c.us"
    for _ in range(2):
        start = time.process_time()

        async def sender(first: int) -> None:
            for k in range(first, n, SENDERS):
                inst = items[k % len(items)]
                body = orjson.dumps({"chatId": sink, "message": f"bench message {k}"})
                status, answer = await call(
                    app, "POST", f"/waInstance{inst.id}/sendMessage/{inst.token}", body
                )
                assert status == 200, answer

        await asyncio.gather(*(sender(w) for w in range(SENDERS)))
        print(f"sendMessage: {1e3 * (time.process_time() - start) / n:.3f} ms CPU per request", flush=True)


async def pairs(app: Any, n: int) -> None:
    for _ in range(2):
        start = time.process_time()

        async def poller(inst: seed.Inst) -> None:
            for _ in range(n // 4):
                path = f"/waInstance{inst.id}/receiveNotification/{inst.token}"
                status, answer = await call(app, "GET", path, query=b"receiveTimeout=5")
                assert status == 200 and answer.startswith(b'{"receiptId"'), answer[:100]
                receipt = orjson.loads(answer)["receiptId"]
                path = f"/waInstance{inst.id}/deleteNotification/{inst.token}/{receipt}"
                status, answer = await call(app, "DELETE", path)
                assert status == 200 and answer == b'{"result":true}', answer

        await asyncio.gather(*(poller(inst) for inst in ITEMS[:POLLERS]))
        done = POLLERS * (n // 4)
        print(
            f"receive + delete: {1e3 * (time.process_time() - start) / done:.3f} ms CPU per pair", flush=True
        )


ITEMS: list[seed.Inst] = []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=2000, help="sends per round; pairs per round are 4 × n")
    n = parser.parse_args().n
    ITEMS.extend(seed.make_instances(100))
    for item in ITEMS:
        item.state = "notAuthorized"  # accepted messages stay queued (B1a)
    queues = {item.id: n for item in ITEMS[:POLLERS]}
    data_dir, _url, env = run.prepare(
        run.Store("sqlite"), "inprocess", ITEMS, phones=[seed.SINK_PHONE], notifications=queues
    )
    os.environ.update({k: v for k, v in server_env(env).items() if k.startswith("VERDIGRIS")})
    os.environ["VERDIGRIS_DATA_DIR"] = str(data_dir)
    uvloop.run(measure(n))


if __name__ == "__main__":
    main()
