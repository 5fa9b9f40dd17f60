"""Instances started together on an empty PostgreSQL database: one migrates, all come up."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import text

from bot.db.engine import create_engine
from bot.db.migrate import upgrade_to_head
from tests.conftest import BotProcess
from tests.test_postgres import (  # noqa: F401 - the fixtures pg, redis_place
    PgDatabase,
    RedisPlace,
    alembic_rows,
    pg_fixture,
    redis_place_fixture,
)
from tests.test_webhook import free_port

INSTANCES = 3
# s, from the start to a listening port: a few seconds, far more on a loaded machine
COME_UP = 60


async def listens(port: int, within: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return True
        await asyncio.sleep(0.05)
    return False


async def test_three_upgrades_at_once_on_one_empty_database(pg: PgDatabase) -> None:
    engines = [create_engine(pg.url) for _ in range(INSTANCES)]
    try:
        # without the lock they fail (alembic_version created twice) or never finish
        await asyncio.wait_for(asyncio.gather(*(upgrade_to_head(e) for e in engines)), 30)
    finally:
        for engine in engines:
            await engine.dispose()
    assert len(await alembic_rows(pg.url)) == 1


async def test_three_processes_started_together_all_come_up(
    pg: PgDatabase, redis_place: RedisPlace, bot_env: dict[str, str]
) -> None:
    """Webhook mode, three `python -m bot` at the same moment on an empty database: one
    migrates while the others wait for it, then every one listens; none printed a traceback."""
    ports = [free_port() for _ in range(INSTANCES)]
    bots = [
        BotProcess(
            bot_env
            | {
                "DATABASE_URL": pg.url,
                "REDIS_URL": redis_place.url,
                "REDIS_NAMESPACE": redis_place.prefix,
                "SECRET_KEY": "pg-start-secret-key-0123456789",
                "WEBHOOK_URL": "https://bot.example.test/telegram/hook",
                "WEB_HOST": "127.0.0.1",
                "WEB_PORT": str(port),
                "LOG_LEVEL": "INFO",
            },
            pg.workdir,
        )
        for port in ports
    ]
    try:
        await asyncio.gather(*(bot.start() for bot in bots))
        up = all(await asyncio.gather(*(listens(port, COME_UP) for port in ports)))
    finally:
        codes = await asyncio.gather(*(bot.stop() for bot in bots))
    assert up, "not every instance came up:\n" + "\n---\n".join(bot.log for bot in bots)
    for bot, code in zip(bots, codes, strict=True):
        assert "Traceback" not in bot.log, bot.log
        assert code == 0, bot.log
    assert len(await alembic_rows(pg.url)) == 1
    engine = create_engine(pg.url)
    try:
        async with engine.connect() as conn:
            users = await conn.execute(text("SELECT count(*) FROM users"))
            assert users.scalar_one() == 0, "the schema is there"
    finally:
        await engine.dispose()
