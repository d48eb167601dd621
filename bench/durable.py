"""B0d: the baseline app (bench/baseline.py) doing one durable write per request, with the raw driver.

Every request inserts one row and answers only once the row is committed, so the figure is the
floor a durable accept can reach on this machine and disk with this uvicorn stack: SQLite through
the ``sqlite3`` module in WAL with ``synchronous=NORMAL`` (what ``store/db.py`` sets: a commit
survives ``kill -9`` of the process), PostgreSQL through asyncpg with a pool (its defaults:
``synchronous_commit=on``, each commit flushed to the WAL).

``--group``: the requests whose write is waiting when the writer gets to them share one
transaction (one ``executemany`` and one commit); each answers after that commit. This is the
shape of the server's group commit (``store/group.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from typing import Any

import asyncpg
import uvicorn

BODY = b'{"idMessage":"BAE5F4886F3A4C1B"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
ROW = '{"chatId":"79990000000@c.us","message":"hello from the durable floor benchmark"}'
CREATE = (
    "CREATE TABLE IF NOT EXISTS accepted (id INTEGER PRIMARY KEY, body TEXT NOT NULL, at_ns BIGINT NOT NULL)"
)


class Writer:
    """One durable INSERT + COMMIT, or many in one transaction."""

    async def start(self) -> None:
        raise NotImplementedError

    async def one(self, at_ns: int) -> None:
        raise NotImplementedError

    async def many(self, rows: list[tuple[str, int]]) -> None:
        raise NotImplementedError


class SQLiteWriter(Writer):
    def __init__(self, path: str) -> None:
        self.path = path

    async def start(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(CREATE)

    async def one(self, at_ns: int) -> None:
        # On the loop's thread, as the server runs SQLite (store/db.py's inline driver).
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO accepted (body, at_ns) VALUES (?, ?)", (ROW, at_ns))
        self.conn.execute("COMMIT")

    async def many(self, rows: list[tuple[str, int]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("INSERT INTO accepted (body, at_ns) VALUES (?, ?)", rows)
        self.conn.execute("COMMIT")


class PostgresWriter(Writer):
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.url, min_size=4, max_size=10)
        async with self.pool.acquire() as conn:
            await conn.execute(CREATE.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY"))

    async def one(self, at_ns: int) -> None:
        async with self.pool.acquire() as conn:  # one statement outside a transaction: its own commit
            await conn.execute("INSERT INTO accepted (body, at_ns) VALUES ($1, $2)", ROW, at_ns)

    async def many(self, rows: list[tuple[str, int]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany("INSERT INTO accepted (body, at_ns) VALUES ($1, $2)", rows)


class Group:
    """Writes waiting for the writer go in one transaction; each waiter resumes after its commit."""

    def __init__(self, writer: Writer, lanes: int) -> None:
        self.writer = writer
        self.lanes = lanes
        self.busy = 0
        self.waiting: list[tuple[tuple[str, int], asyncio.Future[None]]] = []

    async def write(self, at_ns: int) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(((ROW, at_ns), fut))
        if self.busy < self.lanes:
            self.busy += 1
            asyncio.ensure_future(self.drain())
        await fut

    async def drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let the requests of this loop turn join
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    await self.writer.many([row for row, _ in batch])
                except Exception as exc:  # pragma: no cover - a benchmark that fails says so
                    for _, fut in batch:
                        fut.set_exception(exc)
                    continue
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
        finally:
            self.busy -= 1


def make_app(writer: Writer, group: Group | None) -> Any:
    clock = __import__("time").time_ns

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await writer.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if group is not None:
            await group.write(clock())
        else:
            await writer.one(clock())
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sqlite", help="path of the SQLite file")
    parser.add_argument("--pg", help="postgresql://... (asyncpg)")
    parser.add_argument("--group", action="store_true", help="group commit")
    args = parser.parse_args()
    writer: Writer = SQLiteWriter(args.sqlite) if args.sqlite else PostgresWriter(args.pg)
    # SQLite has one writer; PostgreSQL commits on several connections at once.
    group = Group(writer, lanes=1 if args.sqlite else 4) if args.group else None
    # The same options as verdigris.cli.serve (and bench/baseline.py).
    uvicorn.run(
        make_app(writer, group),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
