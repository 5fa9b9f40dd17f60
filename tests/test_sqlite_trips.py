"""SQLite through aiosqlite: one trip to its thread per statement, none for a no-op commit."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.engine import create_engine, create_session_factory


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The calls run in aiosqlite's thread, by name."""
    seen: Counter[str] = Counter()
    execute = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen[getattr(fn, "__name__", "?")] += 1
        return await execute(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_a_read_and_its_commit_are_one_trip(engine: AsyncEngine, trips: Counter[str]) -> None:
    async with create_session_factory(engine)() as session:
        await session.execute(text("SELECT 1"))  # the pool's connection is opened before
        trips.clear()
        rows = (await session.execute(text("SELECT 1, 'a'"))).all()
        await session.commit()
    assert rows == [(1, "a")]
    assert sum(trips.values()) == 1


async def test_writes_count_their_rows_and_commit(engine: AsyncEngine, trips: Counter[str]) -> None:
    factory = create_session_factory(engine)
    async with factory() as session:
        inserted = (
            await session.execute(text("INSERT INTO t (x) VALUES ('a') RETURNING id"))
        ).all()
        await session.execute(text("INSERT INTO t (x) VALUES ('b')"))
        updated = await session.execute(text("UPDATE t SET x = 'c'"))
        await session.commit()
    assert inserted == [(1,)]
    assert updated.rowcount == 2  # type: ignore[attr-defined]
    assert trips["commit"] == 1
    async with factory() as session:
        assert (await session.execute(text("SELECT x FROM t ORDER BY id"))).all() == [
            ("c",),
            ("c",),
        ]


async def test_a_rolled_back_write_is_gone_and_errors_are_sqlalchemys(
    engine: AsyncEngine, trips: Counter[str]
) -> None:
    factory = create_session_factory(engine)
    async with factory() as session:
        await session.execute(text("INSERT INTO t (id, x) VALUES (1, 'a')"))
        await session.rollback()
        await session.execute(text("INSERT INTO t (id, x) VALUES (2, 'b')"))
        await session.commit()
        with pytest.raises(IntegrityError):
            await session.execute(text("INSERT INTO t (id, x) VALUES (2, 'again')"))
        await session.rollback()
    assert trips["rollback"] == 2
    async with factory() as session:
        assert (await session.execute(text("SELECT id FROM t"))).all() == [(2,)]
