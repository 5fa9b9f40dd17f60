"""PostgreSQL as the bot's database: the pool sizes of the settings, and no connection held
"idle in transaction" while a handler waits for GoSMS or GotSMS (a pool of a few connections
would run dry with 100 updates in flight otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_deps, create_bot, create_dispatcher
from bot.config import Settings
from bot.db import engine as engine_module
from bot.db.engine import create_engine
from tests.backends import POSTGRES_URL, REDIS_URL, Backend, new_database, unavailable
from tests.conftest import GOSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import FakeTelegram
from tests.test_gosms_send import connect as connect_gosms
from tests.test_gosms_send import save_device
from tests.test_gotsms_catalog import connect as connect_gotsms

# A server the tests may create databases on (each test makes its own and drops it afterwards).
API_LATENCY = 1.0  # s, of every GoSMS / GotSMS answer while a path is watched
# A transaction idle longer than this waited for something slow: a normal one idles for the
# microseconds between its statements.
HELD_AFTER = 0.4  # s


@dataclass(frozen=True)
class PgDatabase:
    """A new, empty PostgreSQL database of one test, and a folder for its processes."""

    url: str
    name: str
    workdir: Path


@dataclass(frozen=True)
class RedisPlace:
    """The real Redis, and the key prefix (and namespace) of one test."""

    url: str
    prefix: str


@pytest.fixture(name="pg")
async def pg_fixture(tmp_path: Path) -> AsyncIterator[PgDatabase]:
    async with new_database("pg") as url:
        yield PgDatabase(url, make_url(url).database or "", tmp_path)


@pytest.fixture(name="redis_place")
async def redis_place_fixture() -> AsyncIterator[RedisPlace]:
    """The real Redis with a key prefix of this test; its keys are deleted afterwards."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        unavailable(Backend.POSTGRES, f"Redis at {REDIS_URL} does not answer: {exc}")
    place = RedisPlace(REDIS_URL, f"test-{uuid.uuid4().hex}")
    try:
        yield place
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{place.prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def alembic_rows(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return [str(row[0]) for row in rows]
    finally:
        await engine.dispose()


def pg_settings(settings: Settings, pg: PgDatabase, place: RedisPlace, **more: object) -> Settings:
    return settings.model_copy(
        update={
            "database_url": pg.url,
            "redis_url": place.url,
            "redis_namespace": place.prefix,
            **more,
        }
    )


@pytest.fixture
async def pg_harness(
    settings: Settings, tg: FakeTelegram, pg: PgDatabase, redis_place: RedisPlace
) -> AsyncIterator[Harness]:
    """The real dispatcher on PostgreSQL and Redis, as an instance of several runs it."""
    settings = pg_settings(settings, pg, redis_place)
    deps = await build_deps(settings)
    bot = create_bot(settings)
    dp = create_dispatcher(deps, redis_prefix=redis_place.prefix)
    yield Harness(tg, deps, bot, dp)
    await dp.fsm.storage.close()
    await dp.fsm.events_isolation.close()
    await bot.session.close()
    await deps.close()


@dataclass
class IdleWatch:
    """Samples pg_stat_activity from the admin database (so not counting itself) for
    connections of the bot's database idle in a transaction for longer than HELD_AFTER."""

    database: str
    held: list[str] = field(default_factory=list)
    samples: int = 0

    async def run(self) -> None:
        engine = create_engine(POSTGRES_URL, pool_size=1, max_overflow=0)
        query = text(
            "SELECT pid, now() - state_change, left(query, 120) FROM pg_stat_activity "
            "WHERE datname = :db AND state = 'idle in transaction' "
            "AND now() - state_change > make_interval(secs => :after)"
        )
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                while True:
                    found = await conn.execute(query, {"db": self.database, "after": HELD_AFTER})
                    self.held += [
                        f"pid {pid} idle {idle} after {sql!r}" for pid, idle, sql in found
                    ]
                    self.samples += 1
                    await asyncio.sleep(0.05)
        finally:
            await engine.dispose()

    async def during(self, action: Awaitable[object]) -> None:
        """Runs the action (an update through the dispatcher) while sampling."""
        watcher = asyncio.create_task(self.run())
        try:
            await asyncio.sleep(0.1)  # the watcher is connected
            began = asyncio.get_running_loop().time()
            await action
            took = asyncio.get_running_loop().time() - began
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        assert took >= API_LATENCY, "the path made no API call: nothing was watched"
        assert self.samples > 0


@pytest.fixture
def watch(pg: PgDatabase) -> IdleWatch:
    return IdleWatch(pg.name)


def slow_apis(gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    gotsms.set_latency(API_LATENCY)
    gosms.set_latency(API_LATENCY)


async def test_pool_sizes_of_the_settings_reach_the_engine(
    settings: Settings, pg: PgDatabase, redis_place: RedisPlace
) -> None:
    settings = pg_settings(settings, pg, redis_place, db_pool_size=3, db_pool_overflow=2)
    deps = await build_deps(settings)
    try:
        pool = deps.engine.pool
        assert pool.size() == 3  # type: ignore[attr-defined]
        assert pool._max_overflow == 2  # type: ignore[attr-defined]
        held = [await deps.engine.connect() for _ in range(5)]
        with pytest.raises(TimeoutError):  # the sixth waits: the pool holds 3 + 2
            await asyncio.wait_for(deps.engine.connect(), 0.5)
        for conn in held:
            await conn.close()
    finally:
        await deps.close()


EN = 9301


async def test_balance_holds_no_transaction_over_the_api_call(
    pg_harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, watch: IdleWatch
) -> None:
    await connect_gotsms(pg_harness, EN)
    slow_apis(gotsms, gosms)
    await watch.during(pg_harness.send(EN, "/balance"))
    assert "Your GotSMS balance" in pg_harness.last(EN).text
    assert watch.held == []


async def test_rent_confirmed_holds_no_transaction_over_the_api_call(
    pg_harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, watch: IdleWatch
) -> None:
    await connect_gotsms(pg_harness, EN)
    await pg_harness.send(EN, "/rent telegram")
    await pg_harness.press(EN, "USA · 1 day · 1.00")
    await pg_harness.press(EN, "Any area code")
    slow_apis(gotsms, gosms)
    await watch.during(pg_harness.press(EN, "Rent for 1.00"))
    assert "Your number: " in pg_harness.last(EN).text
    assert watch.held == []


async def test_send_confirmed_holds_no_transaction_over_the_api_call(
    pg_harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, watch: IdleWatch
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    await connect_gosms(pg_harness, EN)
    await pg_harness.send(EN, "/send +79991234567 Hello")
    slow_apis(gotsms, gosms)
    await watch.during(pg_harness.press(EN, "Send"))
    assert pg_harness.last(EN).text.startswith("📤 SMS ")
    assert len(gosms.sms_of(GOSMS_TOKEN)) == 1
    assert watch.held == []


async def test_device_card_and_refresh_hold_no_transaction_over_the_api_call(
    pg_harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, watch: IdleWatch
) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN, name="Poco")
    await connect_gosms(pg_harness, EN)
    await save_device(pg_harness, EN, device_id, "Poco")
    await pg_harness.send(EN, "/devices")
    slow_apis(gotsms, gosms)
    await watch.during(pg_harness.press(EN, "Poco"))
    await watch.during(pg_harness.press(EN, "Refresh"))
    assert "Poco" in pg_harness.last(EN).text
    assert watch.held == []


async def test_device_add_and_delete_hold_no_transaction_over_the_api_call(
    pg_harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, watch: IdleWatch
) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN, name="Poco")
    await connect_gosms(pg_harness, EN)
    slow_apis(gotsms, gosms)
    await watch.during(pg_harness.send(EN, f"/devices add {device_id}"))
    assert "Saved" in pg_harness.last(EN).text
    gotsms.set_latency(0)
    gosms.set_latency(0)
    await pg_harness.press(EN, "Delete from GoSMS")
    slow_apis(gotsms, gosms)
    await watch.during(pg_harness.press(EN, "Yes, delete"))
    assert "is deleted from GoSMS" in pg_harness.last(EN).text
    assert not gosms.has_device(device_id)
    assert watch.held == []


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(pg: PgDatabase, pid: int) -> None:
    other = create_engine(pg.url)
    try:
        async with other.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()


async def test_an_idle_server_connection_that_died_is_replaced_before_use(
    pg: PgDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(pg.url)
    try:
        pid = await _backend_pid(engine)
        await _terminate(pg, pid)
        monkeypatch.setattr(engine_module, "PING_IDLE_S", 0.0)  # it has been idle long enough
        assert await _backend_pid(engine) != pid  # no error: pinged, found dead, replaced
    finally:
        await engine.dispose()


async def test_a_connection_back_a_moment_ago_is_used_without_a_ping(pg: PgDatabase) -> None:
    """What the ping saves costs this: a server gone since the connection was last used
    fails one statement, and the pool is renewed."""
    engine = create_engine(pg.url)
    try:
        pid = await _backend_pid(engine)
        await _terminate(pg, pid)
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(engine)
        assert failed.value.connection_invalidated
        assert await _backend_pid(engine) != pid
    finally:
        await engine.dispose()


async def test_lists_read_from_the_database_hold_no_transaction_over_the_telegram_call(
    pg_harness: Harness, gosms: FakeGoSMS, watch: IdleWatch
) -> None:
    """Telegram may be slow too (or answer 429 and be asked again): the saved devices of
    /devices and of the /send picker are read, then shown."""
    device_id = gosms.add_device(GOSMS_TOKEN, name="Poco")
    await connect_gosms(pg_harness, EN)
    await save_device(pg_harness, EN, device_id, "Poco")
    pg_harness.tg.set_slow_answers({"sendMessage"}, API_LATENCY)
    await watch.during(pg_harness.send(EN, "/devices"))
    await watch.during(pg_harness.send(EN, "/send +79991234567 Hello"))
    assert "Which device should send it?" in pg_harness.last(EN).text
    assert watch.held == []
