"""Work leases (store/leases.py, issue 15 item 1), on PostgreSQL: worker processes share the
partitions fairly, never hold one partition at once, take over those of a process that stopped
beating after the lease time, get back at once those of a process that stopped cleanly, and a
process that cannot renew stops acting on its leases by its own clock. Each "process" here is a
Core of its own (its own engine and connections) on one database; the beats are driven by hand."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from harness import Server, create_postgres_database, server_env, settings_for
from verdigris.core import Core
from verdigris.messaging import lifecycle
from verdigris.messaging.models import messages
from verdigris.messaging.vocabulary import Status
from verdigris.store.leases import work_leases

PARTS = 16
LEASE_S = 1.0


@pytest.fixture
def cores(tmp_path: Path) -> Iterator[Callable[[], Core]]:
    """Cores of their own ("processes") on one new PostgreSQL database; the test disposes them."""
    url = create_postgres_database()
    made: list[Core] = []

    def make() -> Core:
        env = server_env(
            {
                "VERDIGRIS_DATABASE_URL": url,
                "VERDIGRIS_WORK_PARTITIONS": str(PARTS),
                "VERDIGRIS_WORK_LEASE_SECONDS": str(LEASE_S),
            }
        )
        core = Core(settings_for(env, data_dir=tmp_path / f"p{len(made)}"))
        made.append(core)
        return core

    yield make
    Server(tmp_path, env={"VERDIGRIS_DATABASE_URL": url}).drop_database()


def assert_exclusive(*cores: Core) -> None:
    """No partition is held by two processes that both believe their lease is valid."""
    seen: dict[int, str] = {}
    for core in cores:
        for part in core.leases.mine:
            if core.leases.owns(part):
                assert part not in seen, f"partition {part} held by {seen[part]} and {core.leases.holder}"
                seen[part] = core.leases.holder


async def beat_until(cores: list[Core], done: Callable[[], bool], timeout: float = 20) -> int:
    """Beat every process (a third of a lease apart, as their timers would) until ``done``; returns
    the number of rounds, checking exclusivity after every beat."""
    deadline = time.monotonic() + timeout
    rounds = 0
    while not done():
        assert time.monotonic() < deadline, [sorted(c.leases.mine) for c in cores]
        for core in cores:
            await core.leases.beat()
            assert_exclusive(*cores)
        rounds += 1
        await asyncio.sleep(LEASE_S / 3)
    return rounds


def held(*cores: Core) -> list[int]:
    return sorted(part for core in cores for part in core.leases.mine)


async def test_partitions_are_shared_moved_and_never_held_twice(cores: Callable[[], Core]) -> None:
    a, b, c = cores(), cores(), cores()
    try:
        await _share_move_and_release(a, b, c)
    finally:
        for core in (a, b, c):
            await core.db.dispose()


async def _share_move_and_release(a: Core, b: Core, c: Core) -> None:
    await a.leases.start()  # creates the partition rows and takes them all (the only member)
    a.timers.cancel(("work-leases", "send"))  # beats are driven by hand below
    assert len(a.leases.mine) == PARTS and all(a.leases.owns(i) for i in range(100))

    # Two more processes join: the first gives back above its fair share, they take it over.
    everyone = [a, b, c]
    fair = -(-PARTS // 3)
    await beat_until(
        everyone,
        lambda: held(*everyone) == list(range(PARTS)) and max(len(x.leases.mine) for x in everyone) <= fair,
    )
    assert min(len(x.leases.mine) for x in everyone) >= 1
    assert a.leases.given_total >= PARTS - fair

    # c dies (stops beating, keeps nothing clean): after the lease time a and b take its share.
    lost = set(c.leases.mine)
    started = time.monotonic()
    await beat_until([a, b], lambda: held(a, b) == list(range(PARTS)))
    moved_after = time.monotonic() - started
    assert lost <= set(a.leases.mine) | set(b.leases.mine)
    assert moved_after >= LEASE_S * 0.8  # not before its leases expired
    assert not any(c.leases.owns(part) for part in lost)  # c, had it lived on, would stop by its own clock
    assert_exclusive(a, b, c)

    # b stops cleanly: its partitions are free at once; a takes everything on its next beats.
    await b.leases.stop()
    assert b.leases.mine == frozenset() and not b.leases.owns(0)
    await beat_until([a], lambda: len(a.leases.mine) == PARTS, timeout=LEASE_S * 6)
    print(
        f"\nleases: {PARTS} partitions; a gave back {a.leases.given_total}, took {a.leases.taken_total};"
        f" c's {len(lost)} moved {moved_after:.1f} s after it stopped (lease {LEASE_S} s)"
    )


async def test_a_single_process_store_owns_everything(tmp_path: Path) -> None:
    """SQLite: one process, nothing is leased, everything is owned; an API process owns nothing."""
    core = Core(settings_for(server_env(), data_dir=tmp_path))
    await core.leases.start()
    assert core.leases.owns(12345) and not core.leases.shared
    api = Core(settings_for(server_env({"VERDIGRIS_ROLE": "api"}), data_dir=tmp_path / "api"))
    assert not api.leases.owns(12345)
    await core.db.dispose()
    await api.db.dispose()


async def test_a_send_is_claimed_only_under_a_lease_held_by_the_database_clock(
    cores: Callable[[], Core],
) -> None:
    """The fence: a process that still believes it holds a partition (its own clock says so) but
    whose lease lapsed in the database cannot claim that partition's messages; the process that
    took the partition over can."""
    a, b = cores(), cores()
    try:
        await a.leases.start()
        a.timers.cancel(("work-leases", "send"))
        instance_id = PARTS * 3 + 5  # partition 5

        async def queued() -> int:
            async with a.tx() as tx:
                row = await tx.conn.execute(
                    insert(messages).values(
                        instance_id=instance_id,
                        chat_id="79990000001@c.us",
                        id_message=secrets.token_hex(8),
                        direction="out",
                        type_message="textMessage",
                        content="{}",
                        status=Status.QUEUED,
                        created_ms=1,
                    )
                )
                key = row.inserted_primary_key
                assert key is not None
                return int(key[0])

        async def claim(core: Core, row_id: int) -> bool:
            async with core.tx() as tx:
                return await lifecycle.claim(tx, row_id, 2, core.leases.fence(instance_id))

        first = await queued()
        assert await claim(a, first)
        second = await queued()
        async with a.tx() as tx:  # a's lease lapses in the database while a is busy
            await tx.conn.execute(update(work_leases).where(work_leases.c.part == 5).values(expires_ms=0))
        assert a.leases.owns(instance_id)  # by its own clock it would go on
        assert not await claim(a, second)
        await b.leases.start()
        b.timers.cancel(("work-leases", "send"))
        assert b.leases.owns(instance_id) and not await claim(a, second)
        assert await claim(b, second)
    finally:
        for core in (a, b):
            await core.db.dispose()
