"""The database engine and the metadata every domain's tables hang off.

SQLite (WAL) is the embedded default; PostgreSQL (asyncpg) is the scale-out store. Domains declare
their tables with SQLAlchemy Core on :data:`metadata` and talk to the database through
:class:`Database`, which hands out connections in transactions.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, MetaData, event, pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# An id that grows with traffic (a message, a receiptId, a webhook attempt): 64 bits, since a 32-bit
# id runs out in weeks at 1,000 messages a second. BIGINT (BIGSERIAL) on PostgreSQL. On SQLite it
# stays INTEGER: an INTEGER PRIMARY KEY is the table's rowid, already 64-bit, and only that exact
# type name makes it one (a BIGINT primary key would not autoincrement); any INTEGER column holds
# 64-bit values there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL keeps readers and the writer apart; synchronous=NORMAL keeps every commit safe from a
    # process crash (kill -9), which is the durability promise of a 200.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-32000")
    # Deleted rows are overwritten with zeros whatever SQLite's build option (erasure, T-18).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
    # SQLite's own lower() folds only ASCII; e-mail addresses are compared with lower() (accounts),
    # so "Ärger@…" and "ärger@…" must meet as on PostgreSQL (a UTF-8 database): Python's lower().
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


# --- SQLite on the event loop's own thread ------------------------------------------------------
#
# aiosqlite runs every call (cursor, execute, fetch, close: about four per statement) on a worker
# thread and hands the result back through the event loop. On a busy server each hand-over waits
# for the GIL, so a 16-statement delivery took ~9 ms and capped sends at ~130/s. SQLite answers
# these indexed statements in microseconds, so the "inline" driver below calls the sqlite3 module
# directly on the loop thread (the same library, SQL and transactions; only the thread changes).


async def _ready() -> None:
    return None


class _InlineCursor:
    """A sqlite3 cursor whose rows are fetched at execute time (as SQLAlchemy's async adapters do)."""

    __slots__ = ("_cursor", "_rows", "description", "rowcount", "lastrowid", "arraysize")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    def _done(self) -> None:
        cursor = self._cursor
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self._rows = deque(cursor.fetchall()) if cursor.description else deque()

    def execute(self, statement: str, parameters: Any = ()) -> _InlineCursor:
        self._cursor.execute(statement, parameters)
        self._done()
        return self

    def executemany(self, statement: str, parameters: Any) -> _InlineCursor:
        self._cursor.executemany(statement, parameters)
        self._done()
        return self

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        size = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def close(self) -> None:
        self._rows.clear()
        self._cursor.close()

    async def _async_soft_close(self) -> None:
        return None


class _InlineConnection:
    """A sqlite3 connection handing out :class:`_InlineCursor` (everything else passes through)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        object.__setattr__(self, "_conn", conn)

    def cursor(self) -> _InlineCursor:
        return _InlineCursor(self._conn.cursor())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)


class _InlineExecutionContext(SQLiteExecutionContext):
    def create_server_side_cursor(self) -> Any:
        # ``stream()`` works, but rows are read at execute time like any other statement.
        return self._dbapi_connection.cursor()


class SQLiteDialect_inline(SQLiteDialect_pysqlite):
    """``sqlite+inline://``: the pysqlite dialect, usable by SQLAlchemy's asyncio engine."""

    driver = "inline"
    is_async = True
    supports_statement_cache = True
    supports_server_side_cursors = True
    execution_ctx_cls = _InlineExecutionContext

    @classmethod
    def get_pool_class(cls, url: Any) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        return _InlineConnection(sqlite3.connect(*cargs, **cparams))

    def get_driver_connection(self, connection: Any) -> Any:
        return connection._conn

    # The asyncio engine insists that a statement awaited something; an already-finished
    # coroutine satisfies it without a trip through the event loop.
    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        await_(_ready())
        cursor.execute(statement, parameters)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        await_(_ready())
        cursor.execute(statement)

    def do_executemany(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        await_(_ready())
        cursor.executemany(statement, parameters)


registry.register("sqlite.inline", __name__, "SQLiteDialect_inline")


def inline_sqlite_url(url: str) -> str:
    """The server's engine URL for a SQLite URL (``sqlite+aiosqlite`` → ``sqlite+inline``)."""
    scheme, rest = url.split(":", 1)
    return f"sqlite+inline:{rest}" if scheme in ("sqlite", "sqlite+aiosqlite", "sqlite+pysqlite") else url


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
            # Both engines run SQLite on the event loop's thread (the inline driver above).
            inline = inline_sqlite_url(url)
            self.engine: AsyncEngine = create_async_engine(
                inline, pool_size=1, max_overflow=0, pool_timeout=120
            )
            _sqlite_writer(self.engine)
            self.reader: AsyncEngine = create_async_engine(
                inline, pool_size=readers, max_overflow=0, pool_timeout=120
            )
            event.listen(self.reader.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
            self.reader = self.engine
        self._direct: sqlite3.Connection | None = None

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

    def direct_reader(self) -> sqlite3.Connection | None:
        """SQLite: one more reader connection, for single statements outside transactions run
        straight on the driver (store/direct.py) on the event loop's thread. A statement runs and
        returns its rows in one synchronous call, so one connection serves every caller without
        a pool checkout or SQLAlchemy's greenlet hand-over (a pooled read costs both, twice).
        Autocommit: each statement sees everything committed before it. None on PostgreSQL."""
        if not self.is_sqlite:
            return None
        if self._direct is None:
            engine = self.reader.sync_engine
            cargs, cparams = engine.dialect.create_connect_args(engine.url)
            options: dict[str, Any] = {**cparams, "isolation_level": None, "check_same_thread": False}
            connect: Any = sqlite3.connect
            conn: sqlite3.Connection = connect(*cargs, **options)
            _sqlite_pragmas(conn, None)
            self._direct = conn
        return self._direct

    async def dispose(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        await self.engine.dispose()
        if self.reader is not self.engine:
            await self.reader.dispose()
