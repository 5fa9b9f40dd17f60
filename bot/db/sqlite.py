"""aiosqlite with one trip to its thread per statement.

aiosqlite runs each call of a sqlite3 connection or cursor in the connection's own thread, and
SQLAlchemy's adapter makes four such calls per statement (cursor, execute, fetchall, close),
plus one for every commit and rollback, even when sqlite3 has no transaction open and does
nothing. Each trip wakes the thread and then the event loop, and costs more CPU than a short
query itself. `OneTripConnection` runs a statement, fetches its rows and closes its cursor in
one trip, and commits or rolls back only an open transaction, as sqlite3 itself decides.
The rows of a statement are fetched at once, as SQLAlchemy's adapter does for every
cursor that is not server-side.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.engine import URL

Outcome = tuple[Any, int, int | None, list[Any]]  # description, rowcount, lastrowid, rows


def _run(conn: sqlite3.Connection, sql: str, parameters: Any) -> Outcome:
    cursor = conn.cursor()
    try:
        cursor.execute(sql, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        # after the fetch: an INSERT … RETURNING counts its rows as they are read
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _run_many(conn: sqlite3.Connection, sql: str, parameters: Iterable[Any]) -> Outcome:
    cursor = conn.cursor()
    try:
        cursor.executemany(sql, parameters)
        return cursor.description, cursor.rowcount, cursor.lastrowid, []
    finally:
        cursor.close()


class OneTripCursor:
    """What SQLAlchemy's adapter uses of an aiosqlite cursor; each statement is one trip."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        return self._took(await self._connection.run(_run, sql, parameters))

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneTripCursor:
        return self._took(await self._connection.run(_run_many, sql, parameters))

    def _took(self, outcome: Outcome) -> OneTripCursor:
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


class OneTripConnection(aiosqlite.Connection):
    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        # as SQLAlchemy marks the threads of the connections it opens itself: a connection
        # left open does not keep the process from exiting
        self._thread.daemon = True

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def run(self, job: Callable[..., Outcome], sql: str, parameters: Any) -> Outcome:
        """`job(sqlite3 connection, sql, parameters)` in the connection's thread."""
        outcome: Outcome = await self._execute(job, self._conn, sql, parameters)  # type: ignore[no-untyped-call]
        return outcome

    async def commit(self) -> None:
        if self.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        if self.in_transaction:
            await super().rollback()


def connector(url: URL, timeout_s: float) -> Callable[[], Awaitable[OneTripConnection]]:
    """SQLAlchemy's `async_creator` for the URL's database, opened as its dialect would."""
    args: Sequence[Any]
    args, options = url.get_dialect()().create_connect_args(url)
    connect = partial(sqlite3.connect, *args, **{**options, "timeout": timeout_s})

    async def create() -> OneTripConnection:
        connection = OneTripConnection(connect)
        await connection
        return connection

    return create
