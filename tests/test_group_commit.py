"""Group commit (store/group.py): work arriving together shares one transaction; a bad piece fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from verdigris.store.group import GroupCommit


class Store:
    """A SQLite file with one table whose ``n`` is unique, and a transaction factory over it."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        self.path = path

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def committed(self) -> list[int]:
        """What another connection sees (committed rows only)."""
        other = sqlite3.connect(self.path)
        try:
            return [row[0] for row in other.execute("SELECT n FROM t ORDER BY n")]
        finally:
            other.close()


def insert(n: int) -> Callable[[sqlite3.Connection], Awaitable[int]]:
    async def work(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return n

    return work


def test_concurrent_work_shares_one_commit_and_each_caller_sees_it_committed(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.sqlite3")
    group: GroupCommit[sqlite3.Connection] = GroupCommit(store.tx)
    seen: dict[int, list[int]] = {}

    async def one(n: int) -> None:
        await group.run(insert(n))
        seen[n] = store.committed()  # the caller resumes only after its row is committed

    async def main() -> None:
        await asyncio.gather(*(one(n) for n in range(20)))

    asyncio.run(main())
    print(f"20 writes in {group.batches} transaction(s)")
    assert group.batches == 1
    assert store.committed() == list(range(20))
    assert all(n in rows for n, rows in seen.items()) and len(seen) == 20


def test_a_failing_piece_gets_its_own_error_and_its_batch_mates_are_committed(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.sqlite3")
    store.conn.execute("INSERT INTO t (n) VALUES (7)")  # 7 is taken: inserting it again fails
    group: GroupCommit[sqlite3.Connection] = GroupCommit(store.tx)

    async def main() -> list[object]:
        return await asyncio.gather(*(group.run(insert(n)) for n in range(10)), return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[7], sqlite3.IntegrityError)
    assert [r for i, r in enumerate(results) if i != 7] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert store.committed() == list(range(10))
    # one failed batch, then each of the ten alone
    assert group.batches == 11


def test_work_waiting_while_a_batch_commits_goes_in_the_next_one(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.sqlite3")
    group: GroupCommit[sqlite3.Connection] = GroupCommit(store.tx)

    async def main() -> None:
        opened = asyncio.Event()
        release = asyncio.Event()

        async def slow(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO t (n) VALUES (100)")
            opened.set()
            await release.wait()
            return 100

        first = asyncio.ensure_future(group.run(slow))
        await opened.wait()
        later = [asyncio.ensure_future(group.run(insert(n))) for n in range(5)]
        await asyncio.sleep(0)
        assert not any(f.done() for f in later)
        release.set()
        assert await first == 100
        assert await asyncio.gather(*later) == [0, 1, 2, 3, 4]

    asyncio.run(main())
    assert group.batches == 2
    assert store.committed() == [0, 1, 2, 3, 4, 100]


@pytest.mark.parametrize("lanes", [1, 3])
def test_nothing_is_left_waiting(tmp_path: Path, lanes: int) -> None:
    store = Store(tmp_path / "g.sqlite3")
    group: GroupCommit[sqlite3.Connection] = GroupCommit(store.tx, lanes=lanes)

    async def main() -> None:
        for round_ in range(5):
            await asyncio.gather(*(group.run(insert(round_ * 100 + n)) for n in range(30)))

    asyncio.run(main())
    assert len(store.committed()) == 150


def test_without_lanes_each_piece_runs_alone_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.sqlite3")
    store.conn.execute("INSERT INTO t (n) VALUES (3)")
    group: GroupCommit[sqlite3.Connection] = GroupCommit(store.tx, lanes=0)

    async def main() -> list[object]:
        return await asyncio.gather(*(group.run(insert(n)) for n in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert group.batches == 5 and store.committed() == [0, 1, 2, 3, 4]
