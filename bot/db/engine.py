"""Engine and session factory. SQLite gets WAL, a busy timeout and foreign keys."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from bot.db.sqlite import connector

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A file SQLite connection is cheap to keep (a file handle and aiosqlite's idle thread) but not
# to open (a thread, the file, the pragmas), and readers never block each other in WAL mode. So
# the pool keeps as many as aiogram's 100 updates in flight hold at once, rather than
# SQLAlchemy's 5 + 10: connections past the pool's size are closed as they come back, and
# opened again a moment later. An update may use two at once (its session, and the dialog
# storage or a service's own session), and one waiting for a connection waits for someone's
# API call.
SQLITE_POOL_SIZE = 100
SQLITE_POOL_OVERFLOW = 50
# The pages each connection keeps in memory (SQLite's default is 2 MB): with the pool's 100
# kept, 50 MB at most; the operating system caches the file once for all of them.
SQLITE_CACHE_KIB = 512
# A server database is shared by every instance and counts its connections (PostgreSQL's
# max_connections is 100 by default): Settings.db_pool_size / db_pool_overflow per instance.
SERVER_POOL_SIZE = 30
SERVER_POOL_OVERFLOW = 0
# A server connection idle in the pool this long is pinged before it is used again.
PING_IDLE_S = 5.0
RETURNED = "returned_at"  # ConnectionPoolEntry.info: when the connection came back to the pool
# A write that waited out the busy timeout tries again after a pause. The pauses are random
# (up to a cap that doubles each time): a burst of writers that all timed out at once must
# not all come back at once.
LOCKED_ATTEMPTS = 6
LOCKED_FIRST_PAUSE_S = 0.05
LOCKED_MAX_PAUSE_S = 2.0

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def ensure_sqlite_folder(database_url: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(
    database_url: str,
    *,
    pool_size: int = SERVER_POOL_SIZE,
    max_overflow: int = SERVER_POOL_OVERFLOW,
) -> AsyncEngine:
    """The sizes are of a server database's pool (DB_POOL_SIZE, DB_POOL_OVERFLOW); SQLite's
    pool is fixed."""
    ensure_sqlite_folder(database_url)
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        ping_idle_connections(engine)
        return engine
    pool: dict[str, Any] = {}
    if url.database not in (None, "", ":memory:"):  # a memory database has a single connection
        pool = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_OVERFLOW}
    engine = create_async_engine(
        url, async_creator=connector(url, SQLITE_BUSY_TIMEOUT_MS / 1000), **pool
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def ping_idle_connections(engine: AsyncEngine) -> None:
    """A connection that sat in the pool for PING_IDLE_S or more is pinged as it is taken out,
    and replaced by a new one if the server does not answer (a restart, an idle timeout).

    SQLAlchemy's `pool_pre_ping` pings at every checkout: with asyncpg three round trips
    (BEGIN, the ping, ROLLBACK) before each transaction, more than most transactions here
    make. A connection given back a moment ago was alive then; one that dies in between
    fails its statement, as it would between a ping and the statement, and SQLAlchemy then
    replaces every connection of the pool opened before.
    """
    dialect = engine.sync_engine.dialect

    def returned(_dbapi_connection: Any, record: ConnectionPoolEntry, *_: Any) -> None:
        record.info[RETURNED] = time.monotonic()

    def taken(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(RETURNED, 0.0) < PING_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError from exc  # the pool tries another connection

    event.listen(engine.sync_engine, "connect", returned)
    event.listen(engine.sync_engine, "checkin", returned)
    event.listen(engine.sync_engine, "checkout", taken)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def lock_for_writing(session: AsyncSession | AsyncConnection) -> None:
    """Before a transaction that reads and then writes: on SQLite, take the write lock first.

    Python's sqlite3 begins a transaction only at the first write, or at a SAVEPOINT
    (`begin_nested`). A transaction opened by a savepoint that reads and then writes cannot
    write if another connection committed in between: SQLite fails it at once with "database
    is locked", without waiting out the busy timeout. Begun with BEGIN IMMEDIATE it waits its
    turn instead. Call it first; when a transaction is already open (a write took the lock, or
    the caller locked already) it does nothing. PostgreSQL needs none of this: a no-op there.
    """
    connection = await session.connection() if isinstance(session, AsyncSession) else session
    if connection.dialect.name != "sqlite":
        return
    raw = await connection.get_raw_connection()
    if not getattr(raw.driver_connection, "in_transaction", False):
        await connection.execute(text("BEGIN IMMEDIATE"))


def database_locked(exc: OperationalError) -> bool:
    """SQLite's "database is locked" (or "busy"): another connection held the write lock for
    the whole busy timeout."""
    message = str(exc.orig).lower()
    return "database is locked" in message or "database is busy" in message


async def retry_locked(write: Callable[[], Awaitable[T]], undo: Callable[[], Awaitable[None]]) -> T:
    """Runs `write` (a short transaction, committed) until SQLite lets it through; `undo` rolls
    a failed attempt back. Other errors, and the last attempt's lock error, are raised."""
    for attempt in range(LOCKED_ATTEMPTS):
        try:
            return await write()
        except OperationalError as exc:
            await undo()
            if not database_locked(exc) or attempt == LOCKED_ATTEMPTS - 1:
                raise
        cap = min(LOCKED_MAX_PAUSE_S, LOCKED_FIRST_PAUSE_S * 2**attempt)
        await asyncio.sleep(random.uniform(cap / 2, cap))  # noqa: S311 - not a secret
    raise AssertionError("unreachable")
