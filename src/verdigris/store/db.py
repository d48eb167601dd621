"""The database engine and the metadata every domain's tables hang off.

SQLite (WAL) is the embedded default; PostgreSQL (asyncpg) is the scale-out store. Domains declare
their tables with SQLAlchemy Core on :data:`metadata` and talk to the database through
:class:`Database`, which hands out connections in transactions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL keeps readers and the writer apart; synchronous=NORMAL keeps every commit safe from a
    # process crash (kill -9), which is the durability promise of a 200.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-32000")
    cursor.close()


def _sqlite_writer(engine: AsyncEngine) -> None:
    """Write transactions start with BEGIN IMMEDIATE: they take SQLite's write lock up front, so a
    transaction that reads before it writes never fails to upgrade its lock (it waits instead)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None  # the driver must not open transactions itself

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engines and the rules for using them.

    SQLite: one writer connection (SQLite has one writer anyway; in-process writers queue for it)
    and a small pool of reader connections, so reads never wait behind writes and code inside a
    write transaction may still read through ``read()``. PostgreSQL: one pooled engine for both.
    """

    def __init__(self, url: str, readers: int = 4) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split(":///", 1)[1]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=120)
            _sqlite_writer(self.engine)
            self.reader: AsyncEngine = create_async_engine(
                url, pool_size=readers, max_overflow=0, pool_timeout=120
            )
            event.listen(self.reader.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
            self.reader = self.engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction that commits when the block ends without error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; it sees everything committed."""
        async with self.reader.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.reader is not self.engine:
            await self.reader.dispose()
