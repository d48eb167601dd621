"""Hot statements run straight on SQLite's driver, without SQLAlchemy's per-statement path.

Under load a message's statements spent about four times as long in SQLAlchemy's execution path
(a greenlet per call, the execution context, parameter and result processing) as in SQLite itself
(docs/performance.md). :class:`Direct` wraps a statement built once at import time; on the server's
SQLite engine (``sqlite+inline``, store/db.py) it compiles the statement once per set of parameter
names and then runs the SQL on the ``sqlite3`` connection of the caller's transaction or read
connection, so the statement stays in that transaction. Anywhere else (PostgreSQL, aiosqlite in
tools) it is the ordinary ``conn.execute``.

Only for statements whose values need no conversion on the way (integers, text, booleans and
str enums, which ``sqlite3`` binds as they are) and without expanding ``IN`` lists: those go the
usual way by themselves. Rows come back as named tuples (attribute and index access, as
SQLAlchemy's rows); booleans come back as 0/1.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable


class Outcome:
    """What a statement run directly returns: the part of SQLAlchemy's result the services use."""

    __slots__ = ("_rows", "rowcount", "lastrowid")

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def __iter__(self) -> Any:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        return self._rows

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    @property
    def inserted_primary_key(self) -> tuple[int | None]:
        return (self.lastrowid,)


class _Plan:
    __slots__ = ("sql", "names", "fixed", "row")

    def __init__(self, sql: str, names: list[str], fixed: dict[str, Any]) -> None:
        self.sql = sql
        self.names = names
        self.fixed = fixed  # values compiled into the statement (``.values(status=...)``)
        self.row: Any = None  # the named tuple type of its rows, made at the first SELECT


class Direct:
    """A statement built once; ``await stmt.run(conn, params)`` runs it on ``conn``."""

    __slots__ = ("stmt", "_plans")

    def __init__(self, stmt: Executable) -> None:
        self.stmt = stmt
        self._plans: dict[tuple[str, ...], _Plan | None] = {}

    async def run(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Any:
        dialect = conn.dialect
        if dialect.driver != "inline":
            return await conn.execute(self.stmt, dict(params))
        plan = self._plan_for(dialect, params)
        if plan is None:  # expanding parameters: the usual way
            return await conn.execute(self.stmt, dict(params))
        raw: Any = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
        return self._execute(raw, plan, params)

    def run_on(self, raw: sqlite3.Connection, dialect: Dialect, params: Mapping[str, Any]) -> Any:
        """Run on a ``sqlite3`` connection of the ``sqlite+inline`` engine's kind
        (``Database.direct_reader``), or answer None when the statement cannot run directly."""
        plan = self._plan_for(dialect, params)
        return None if plan is None else self._execute(raw, plan, params)

    def _plan_for(self, dialect: Dialect, params: Mapping[str, Any]) -> _Plan | None:
        key = tuple(params)  # the names in the caller's order (a literal: one or two orders per statement)
        if key in self._plans:
            return self._plans[key]
        plan = self._plans[key] = self._plan(dialect, params)
        return plan

    @staticmethod
    def _execute(raw: Any, plan: _Plan, params: Mapping[str, Any]) -> Outcome:
        cursor = raw.execute(plan.sql, [params[n] if n in params else plan.fixed[n] for n in plan.names])
        rows: list[Any] = []
        if cursor.description is not None:
            if plan.row is None:
                plan.row = namedtuple("Row", [d[0] for d in cursor.description], rename=True)  # type: ignore[misc]  # noqa: PYI024
            rows = list(map(plan.row._make, cursor.fetchall()))
        outcome = Outcome(rows, cursor.rowcount, cursor.lastrowid)
        cursor.close()
        return outcome

    def _plan(self, dialect: Dialect, params: Mapping[str, Any]) -> _Plan | None:
        compiled = self.stmt.compile(dialect=dialect, column_keys=sorted(params))  # type: ignore[attr-defined]
        sql = str(compiled)
        if "POSTCOMPILE" in sql or compiled.positiontup is None:
            return None
        return _Plan(sql, list(compiled.positiontup), dict(compiled.params))
