"""Where a test keeps the bot's state: SQLite (the default set-up), SQLite with dialogs in
Redis, or PostgreSQL + Redis (what several instances share).

A PostgreSQL test gets the database of its test process (an xdist worker), migrated once and
empty at the start of every test, and a Redis key prefix and namespace of its own, deleted
afterwards; so tests run side by side (pytest-xdist) and beside other users of the servers.
A server that does not answer skips the test, or fails it with CI=true; the reason is found
once per process and the run's summary counts the skips."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.db.engine import create_engine
from bot.db.migrate import upgrade_to_head

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONNECT_TIMEOUT = 5.0  # s: a server that has not answered by then is taken as missing
# the dialogs' key prefix of `python -m bot` (bot.app.REDIS_PREFIX); its tests use a bot id of
# their own under it
BOT_DIALOG_PREFIX = "fsm"
T = TypeVar("T")


class Backend(StrEnum):
    SQLITE = "sqlite"
    SQLITE_REDIS = "sqlite-redis"  # dialogs and event isolation in Redis
    POSTGRES = "postgres"  # PostgreSQL for all state, Redis for dialogs and the shared keys

    @property
    def label(self) -> str:
        return {
            Backend.SQLITE: "SQLite",
            Backend.SQLITE_REDIS: "SQLite with dialogs in Redis",
            Backend.POSTGRES: "PostgreSQL + Redis",
        }[self]


@dataclass
class RedisPlace:
    """A Redis for one test: its own key prefix, deleted afterwards (tests run side by side)."""

    url: str
    prefix: str


@dataclass
class Place:
    """The state of one test. `postgres_url` is a database of the test's own; SQLite's file is
    wherever the test puts it (`database_url`)."""

    backend: Backend
    redis: RedisPlace | None = None
    postgres_url: str | None = None
    # a Telegram bot of the test's own on a shared Redis: `python -m bot` keeps dialogs under
    # fsm:<bot id>:..., so two tests' subprocesses never meet
    bot_token: str | None = None

    def database_url(self, sqlite_file: Path) -> str:
        return self.postgres_url or f"sqlite+aiosqlite:///{sqlite_file}"

    def env(self, sqlite_file: Path, secret_key: str) -> dict[str, str]:
        """The variables of a `python -m bot` on this place."""
        env = {"DATABASE_URL": self.database_url(sqlite_file)}
        if self.redis is not None:
            env |= {"REDIS_URL": self.redis.url, "REDIS_NAMESPACE": self.redis.prefix}
        if self.postgres_url is not None:
            env["SECRET_KEY"] = secret_key
        return env


class Unavailable(Exception):
    """A server a test needs does not answer; the message says which and why."""


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(backend: Backend, why: str) -> NoReturn:
    """Skips the test (fails it with CI=true) in the words the run's summary counts."""
    message = f"on {backend.label}: {why}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _in_thread(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a coroutine on a loop of its own (a session's end has none running)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coroutine()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _where(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


async def admin_execute(*statements: str) -> None:
    """Statements outside a transaction (CREATE / DROP DATABASE) on the server's own database."""
    engine = create_async_engine(
        POSTGRES_URL, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT}
    )
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def database_url(name: str) -> str:
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def new_database(label: str) -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database of one test (migrations, several processes:
    what needs a database from nothing), dropped afterwards. A missing server skips the test,
    or fails it with CI=true."""
    name = f"sms_desk_{label}_{uuid.uuid4().hex[:12]}"
    try:
        await admin_execute(f'CREATE DATABASE "{name}"')
    except (OSError, SQLAlchemyError) as exc:
        unavailable(Backend.POSTGRES, f"PostgreSQL at {_where(POSTGRES_URL)}: {_first_line(exc)}")
    try:
        yield database_url(name)
    finally:
        await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Servers:
    """The PostgreSQL and Redis of one test process (one xdist worker), each checked once.

    PostgreSQL: one database of this process, migrated at its first PostgreSQL test and emptied
    after each test (the rows of every table deleted, sequences restarted, connections left
    over terminated): a few milliseconds, where creating a database (even from a template)
    takes 0.5 to 1.5 s with fsync on. Dropped at the end of the run."""

    worker: str
    down: dict[str, str] = field(default_factory=dict)
    database: str | None = None

    async def postgres_database(self) -> str:
        if "postgres" in self.down:
            raise Unavailable(self.down["postgres"])
        if self.database is None:
            name = f"sms_desk_test_{self.worker}_{uuid.uuid4().hex[:8]}"
            try:
                await admin_execute(f'CREATE DATABASE "{name}"')
            except (OSError, SQLAlchemyError, TimeoutError) as exc:
                why = f"PostgreSQL at {_where(POSTGRES_URL)} does not answer ({_first_line(exc)})"
                self.down["postgres"] = why
                raise Unavailable(why) from None
            engine = create_engine(database_url(name))
            try:
                await upgrade_to_head(engine)
            finally:
                await engine.dispose()
            self.database = name
        return self.database

    async def empty_postgres(self) -> None:
        """Back to the migrated, empty database; dropped (the next test makes a new one) when
        it cannot be emptied."""
        if self.database is None:
            return
        try:
            await _empty(database_url(self.database))
        except (OSError, SQLAlchemyError, TimeoutError):
            await self.drop_postgres()

    async def drop_postgres(self) -> None:
        name, self.database = self.database, None
        if name is not None:
            await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def check_redis(self) -> None:
        if "redis" not in self.down:
            from redis.asyncio import Redis
            from redis.exceptions import RedisError

            redis = Redis.from_url(REDIS_URL, socket_connect_timeout=CONNECT_TIMEOUT)
            try:
                await redis.ping()
                return
            except (RedisError, OSError) as exc:
                where = REDIS_URL.split("://", 1)[-1].split("/", 1)[0]
                self.down["redis"] = f"Redis at {where} does not answer ({_first_line(exc)})"
            finally:
                await redis.aclose()
        raise Unavailable(self.down["redis"])

    def close(self) -> None:
        if self.database is not None:
            _in_thread(self.drop_postgres)


async def _empty(url: str) -> None:
    import bot.db.fsm
    import bot.db.outbox  # noqa: F401 - registers the poller's tables
    from bot.db.models import Base

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            present = set(
                (
                    await conn.scalars(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    )
                ).all()
            )
            known = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in present]
            others = sorted(present - set(known) - {"alembic_version"})
            for table in [*others, *known]:  # children before their parents
                await conn.execute(text(f'DELETE FROM "{table}"'))  # noqa: S608 - of pg_tables
            triggers = await conn.execute(  # a test's own, that made the database fail
                text(
                    "SELECT t.tgname, c.relname FROM pg_trigger t"
                    " JOIN pg_class c ON c.oid = t.tgrelid"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND NOT t.tgisinternal"
                )
            )
            for trigger, table in triggers.all():
                await conn.execute(text(f'DROP TRIGGER "{trigger}" ON "{table}"'))
            functions = await conn.scalars(
                text(
                    "SELECT p.oid::regprocedure::text FROM pg_proc p"
                    " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
                )
            )
            for function in functions.all():
                await conn.execute(text(f"DROP FUNCTION {function}"))
            sequences = await conn.scalars(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            )
            for sequence in sequences.all():
                await conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
    finally:
        await engine.dispose()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


async def open_place(servers: Servers, backend: Backend) -> Place:
    """Raises Unavailable when a server of the backend does not answer."""
    if backend == Backend.SQLITE:
        return Place(backend)
    await servers.check_redis()
    redis = RedisPlace(REDIS_URL, f"test-{uuid.uuid4().hex}")
    if backend == Backend.SQLITE_REDIS:
        return Place(backend, redis)
    name = await servers.postgres_database()
    bot_id = random.randint(10**9, 2 * 10**9)
    return Place(backend, redis, database_url(name), f"{bot_id}:test-{uuid.uuid4().hex[:16]}")


async def close_place(servers: Servers, place: Place) -> None:
    if place.postgres_url is not None:
        await servers.empty_postgres()
    if place.redis is not None:
        patterns = [f"{place.redis.prefix}:*"]
        if place.bot_token is not None:
            patterns.append(f"{BOT_DIALOG_PREFIX}:{place.bot_token.partition(':')[0]}:*")
        await delete_keys(place.redis.url, patterns)


async def delete_keys(url: str, patterns: Iterable[str]) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        for pattern in patterns:
            keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
            if keys:
                await redis.delete(*keys)
    finally:
        await redis.aclose()


async def stored_bytes(place: Place, sqlite_folder: Path) -> bytes:
    """Everything the database holds, as bytes to search for a secret: SQLite's files (the
    WAL too), or every row of every table of the PostgreSQL database as text."""
    if place.postgres_url is None:
        return _files(sqlite_folder)
    engine = create_async_engine(place.postgres_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            tables = await conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            rows: list[str] = []
            for table in tables.all():
                query = f'SELECT t::text FROM "{table}" AS t'  # noqa: S608 - a name of pg_tables
                rows += (await conn.scalars(text(query))).all()
    finally:
        await engine.dispose()
    return "\n".join(rows).encode()


async def place_for(servers: Servers, backend: Backend) -> AsyncIterator[Place]:
    """The body of the `backend` fixture."""
    try:
        place = await open_place(servers, backend)
    except Unavailable as exc:
        unavailable(backend, str(exc))
    try:
        yield place
    finally:
        await close_place(servers, place)


def _files(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.glob("*.db*")))


def skipped_summary(reasons: Iterable[str]) -> list[str]:
    """One line per reason a server was missing: '12 tests on PostgreSQL + Redis skipped: ...'."""
    lines = []
    for reason, count in Counter(reasons).items():
        what, sep, why = reason.partition(": ")
        if not (sep and what.startswith("on ")):
            continue
        tests = "test" if count == 1 else "tests"
        lines.append(f"{count} {tests} {what} skipped: {why}")
    return sorted(lines)
