"""The Alembic migrations: one head, and databases from earlier releases upgrade with their data."""

from __future__ import annotations

import asyncio
import os
import subprocess as sp
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

import verdigris.models  # noqa: F401  (every table on the metadata)
from harness import Server, create_postgres_database, pg_host, psql, server_env
from verdigris.store.db import metadata
from verdigris.store.migrate import alembic_config


def test_the_migrations_have_exactly_one_head() -> None:
    # Two heads mean two migrations revise the same parent: a new migration must revise the head.
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"several Alembic heads: {sorted(heads)}; add a merge revision"


# --- 64-bit ids (0017_bigint_ids) -----------------------------------------------------------------

# The schema of the last release with 32-bit ids (0016 only joined the branches).
BEFORE_BIGINT = "0016_one_head"
BIG = 2**31 + 7
INSTANCE = 1_100_000_001
# The columns made 64-bit, with the rows each table gets before the upgrade.
WIDENED = {
    "messages": ("id",),
    "notifications": ("receipt_id",),
    "webhook_retries": ("receipt_id",),
    "webhook_attempts": ("id", "receipt_id"),
    "webhook_delivered": ("receipt_id",),
    "webhook_replays": ("id", "receipt_id"),
    "notification_dead_letters": ("receipt_id",),
    "sandbox_phone_messages": ("id",),
    "cloud_inbox": ("id",),
    "cloud_early_statuses": ("id",),
    "screening_cases": ("id",),
}
CHAT = "79996670018@c.us"
SERIAL = {"messages": "id", "notifications": "receipt_id"}  # what the server mints


def _row(table: Any, n: int, **given: Any) -> dict[str, Any]:
    """A row with a value for every required column (ids left to the database unless given)."""
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.name in given or column.nullable or column.server_default is not None:
            continue
        if column.primary_key and column.autoincrement is True:
            continue
        python_type = column.type.python_type
        if column.name == "instance_id":
            row[column.name] = INSTANCE + n  # webhook_retries keeps one row per instance
        elif python_type is int:
            row[column.name] = n
        elif python_type is bool:
            row[column.name] = False
        else:
            value = "{}" if column.name in ("body", "content") else f"{n}-{column.name}"
            row[column.name] = value[: getattr(column.type, "length", None)]
    return {**row, **given}


async def _seed(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Two rows in every widened table, written with the old schema; returns them (sorted)."""
    engine = create_async_engine(url)
    kept: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.begin() as conn:
        for name, columns in WIDENED.items():
            table = metadata.tables[name]
            for n in (1, 2):
                given = {c: 1000 + n for c in columns if table.c[c].autoincrement is not True}
                await conn.execute(table.insert().values(_row(table, n, **given)))
            rows = await conn.execute(select(*[table.c[c] for c in columns]).order_by(*columns))
            kept[name] = [tuple(r) for r in rows]
    await engine.dispose()
    return kept


async def _check_upgraded(url: str, kept: dict[str, list[tuple[Any, ...]]]) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for name, columns in WIDENED.items():
            table = metadata.tables[name]
            rows = await conn.execute(select(*[table.c[c] for c in columns]).order_by(*columns))
            assert [tuple(r) for r in rows] == kept[name], name
            if conn.dialect.name == "postgresql":
                for column in columns:
                    data_type = await conn.scalar(
                        text(
                            "SELECT data_type FROM information_schema.columns"
                            " WHERE table_name = :t AND column_name = :c"
                        ),
                        {"t": name, "c": column},
                    )
                    assert data_type == "bigint", f"{name}.{column} is {data_type}"
            # A 64-bit id goes in and comes back.
            await conn.execute(table.insert().values(_row(table, 3, **dict.fromkeys(columns, BIG))))
            got = await conn.scalar(select(table.c[columns[0]]).where(table.c[columns[0]] == BIG))
            assert got == BIG, name
            await conn.execute(table.delete().where(table.c[columns[0]] == BIG))
        # The ids the server mints next are past 2^31 (the sequences, too, must be 64-bit for that).
        for name, column in SERIAL.items():
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT setval(pg_get_serial_sequence(:t, :c), :v)"),
                    {"t": name, "c": column, "v": BIG},
                )
            else:
                await conn.execute(
                    text("UPDATE sqlite_sequence SET seq = :v WHERE name = :t"), {"t": name, "v": BIG}
                )
    await engine.dispose()


async def _newest_message_id(url: str) -> int:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        newest = await conn.scalar(text("SELECT max(id) FROM messages"))
    await engine.dispose()
    return int(newest)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_database_with_data_upgrades_to_64_bit_ids(
    dialect: str, tmp_path: Path, make_server: Callable[..., Server]
) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    env: dict[str, str] = {}
    if dialect == "postgresql":
        url = env["VERDIGRIS_DATABASE_URL"] = create_postgres_database()
    else:  # named explicitly, so that a PostgreSQL test run does not swap in a database of its own
        url = env["VERDIGRIS_DATABASE_URL"] = f"sqlite+aiosqlite:///{data_dir / 'verdigris.sqlite3'}"
    cfg = alembic_config(url)
    srv: Server | None = None
    try:
        command.upgrade(cfg, BEFORE_BIGINT)
        kept = asyncio.run(_seed(url))
        command.upgrade(cfg, "head")
        asyncio.run(_check_upgraded(url, kept))

        # The wire hands out and takes back a receiptId past 32 bits, as a JSON integer.
        srv = make_server(env=env, data_dir=data_dir)
        inst = srv.new_instance("--link", "79996670017")
        api = srv.api(inst)
        sent = api.sending.sendMessage(CHAT, "after the upgrade")
        assert sent.code == 200, sent.error
        r = srv.wire(inst, "receiveNotification", params={"receiveTimeout": 5})
        assert r.status_code == 200 and b'"receiptId":' in r.content, r.text
        receipt = r.json()["receiptId"]
        assert type(receipt) is int and receipt > 2**31, receipt
        assert api.receiving.deleteNotification(receipt).data == {"result": True}
        message = srv.wire(
            inst, "getMessage", verb="POST", json={"chatId": CHAT, "idMessage": sent.data["idMessage"]}
        )
        assert message.status_code == 200 and message.json()["textMessage"] == "after the upgrade", (
            message.text
        )
        assert asyncio.run(_newest_message_id(url)) > 2**31
    finally:
        if srv is not None:
            srv.stop()
        if dialect == "postgresql":
            Server(data_dir, env={"VERDIGRIS_DATABASE_URL": url}).drop_database()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_models_match_the_migrated_schema(dialect: str, tmp_path: Path) -> None:
    """A table or type changed in a model needs a migration (and the other way round)."""
    if dialect == "postgresql":
        url = create_postgres_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'verdigris.sqlite3'}"
    try:
        command.upgrade(alembic_config(url), "head")
        assert asyncio.run(_differences(url)) == []
    finally:
        if dialect == "postgresql":
            Server(tmp_path, env={"VERDIGRIS_DATABASE_URL": url}).drop_database()


async def _differences(url: str) -> list[Any]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    await engine.dispose()
    return list(diff)


@pytest.mark.subprocess
def test_processes_starting_together_migrate_one_at_a_time() -> None:
    """Three server processes starting at once on a new PostgreSQL database: one migrates, the others
    wait for it and find the schema current (without the lock two of three failed on duplicate
    tables)."""
    name = f"vt_together_{os.getpid()}_{time.time_ns()}"
    psql(f"CREATE DATABASE {name}")
    try:
        url = f"postgresql+asyncpg://postgres@{pg_host()}:5432/{name}"
        code = f"from verdigris.store.migrate import upgrade; upgrade({url!r})"
        starts = [
            sp.Popen([sys.executable, "-c", code], env=server_env(), stderr=sp.PIPE, text=True)
            for _ in range(3)
        ]
        errors = [p.communicate(timeout=120)[1] for p in starts]
        assert [p.returncode for p in starts] == [0, 0, 0], errors
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)
