from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.db.crypto import TokenCipher
from bot.db.engine import create_engine, create_session_factory
from bot.db.migrate import upgrade_to_head
from bot.db.models import Service
from bot.db.repo import ConfirmationRepo, CredentialRepo, DeviceRepo, NotificationRepo, UserRepo
from tests.backends import Place, stored_bytes

TOKEN = "super-secret-gotsms-token-42"


@pytest.fixture
async def engine(tmp_path: Path, backend: Place) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(backend.database_url(tmp_path / "nested" / "folder" / "bot.db"))
    await upgrade_to_head(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher.from_settings("repository-test-secret", Path("/unused"))


@pytest.mark.sqlite_only
async def test_migrations_create_the_schema_and_wal(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        timeout = (await conn.execute(text("PRAGMA busy_timeout"))).scalar()
        cache = (await conn.execute(text("PRAGMA cache_size"))).scalar()
    assert {"users", "credentials", "devices", "notification_settings", "confirmations"} <= tables
    assert mode == "wal"
    assert timeout == 10_000
    assert cache == -512  # KiB a connection keeps, with a pool of 100 kept connections


async def test_user_is_created_once_and_kept_fresh(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    async with factory() as session:
        user = await UserRepo(session).upsert_seen(7, 7, "ru-RU")
        await session.commit()
        assert user.locale == "ru"
    async with factory() as session:
        user = await UserRepo(session).upsert_seen(7, 7, "en")
        assert user.locale == "en"
        await UserRepo(session).set_language(user, "ru")
        await session.commit()
    async with factory() as session:
        user = await UserRepo(session).upsert_seen(7, 7, "en")
        assert user.locale == "ru", "an explicit /lang choice wins over Telegram's language"


async def test_credentials_are_encrypted_at_rest(
    factory: async_sessionmaker[AsyncSession], cipher: TokenCipher, tmp_path: Path, backend: Place
) -> None:
    async with factory() as session:
        await UserRepo(session).upsert_seen(1, 1, "en")
        repo = CredentialRepo(session, cipher)
        await repo.save(1, Service.GOTSMS, TOKEN)
        await session.commit()
        assert await repo.token(1, Service.GOTSMS) == TOKEN
        assert await repo.services(1) == {Service.GOTSMS}
        await repo.save(1, Service.GOTSMS, TOKEN + "-v2")
        await session.commit()
        assert await repo.token(1, Service.GOTSMS) == TOKEN + "-v2"
    raw = await stored_bytes(backend, tmp_path / "nested" / "folder")
    assert TOKEN.encode() not in raw
    async with factory() as session:
        assert await CredentialRepo(session, cipher).delete(1, Service.GOTSMS)
        assert not await CredentialRepo(session, cipher).delete(1, Service.GOTSMS)
        await session.commit()


async def test_devices_and_notification_defaults(factory: async_sessionmaker[AsyncSession]) -> None:
    async with factory() as session:
        await UserRepo(session).upsert_seen(2, 2, None)
        devices = DeviceRepo(session)
        await devices.add(2, "6622a8bbd963898821ebf934", "Poco")
        await devices.add(2, "6622a8bbd963898821ebf934", "Poco M3")
        assert [d.name for d in await devices.list(2)] == ["Poco M3"]
        settings = await NotificationRepo(session).get(2)
        assert (settings.codes, settings.low_balance) == (True, False)
        await devices.delete_all(2)
        assert list(await devices.list(2)) == []


async def test_confirmation_runs_at_most_once_even_when_raced(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    async with factory() as session:
        await UserRepo(session).upsert_seen(3, 3, None)
        await UserRepo(session).upsert_seen(4, 4, None)
        await session.commit()
        confirmation = await ConfirmationRepo(session).create(3, "logout", {"services": ["gosms"]})

    async def press(user_id: int) -> object:
        async with factory() as session:
            return await ConfirmationRepo(session).consume(
                confirmation, user_id, timedelta(minutes=10)
            )

    assert await press(4) is None, "another user's press never consumes it"
    results = await asyncio.gather(*(press(3) for _ in range(5)))
    winners = [r for r in results if r is not None]
    assert winners == [("logout", {"services": ["gosms"]})]


async def test_stale_confirmation_is_refused(factory: async_sessionmaker[AsyncSession]) -> None:
    async with factory() as session:
        await UserRepo(session).upsert_seen(5, 5, None)
        await session.commit()
        confirmation = await ConfirmationRepo(session).create(5, "logout", {})
        assert await ConfirmationRepo(session).consume(confirmation, 5, timedelta(0)) is None
        assert await ConfirmationRepo(session).consume("forged-id", 5, timedelta(hours=1)) is None
