"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL, and
values a user or an API can produce fit into it (PostgreSQL enforces VARCHAR lengths)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import bot.db.fsm  # registers the dialog state table
import bot.db.outbox  # noqa: F401 - registers the poller's tables
from bot.db.engine import create_engine, create_session_factory
from bot.db.migrate import alembic_config, upgrade_to_head
from bot.db.models import Base, Confirmation, Device, SentSms
from bot.db.repo import ConfirmationRepo, DeviceRepo, SentSmsRepo, UserRepo
from tests.backends import new_database


@pytest.fixture
async def postgres() -> AsyncIterator[AsyncEngine]:
    """A new, empty PostgreSQL database of its own (others may share the server)."""
    async with new_database("migrations") as url:
        engine = create_engine(url)
        try:
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/bot.db")
    yield engine
    await engine.dispose()


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "target_metadata": Base.metadata}
    )
    return list(compare_metadata(context, Base.metadata))


async def _upgraded_differences(engine: AsyncEngine) -> list[Any]:
    await upgrade_to_head(engine)
    async with engine.connect() as conn:
        return await conn.run_sync(_differences)


async def test_migrations_match_the_models_on_sqlite(sqlite: AsyncEngine) -> None:
    assert await _upgraded_differences(sqlite) == []


async def test_migrations_match_the_models_on_postgresql(postgres: AsyncEngine) -> None:
    assert await _upgraded_differences(postgres) == []


def _downgrade_to_0005(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "0005")


async def test_the_last_migration_goes_down_and_up_again(postgres: AsyncEngine) -> None:
    await upgrade_to_head(postgres)
    async with postgres.begin() as conn:
        await conn.run_sync(_downgrade_to_0005)
    assert await _upgraded_differences(postgres) == []


async def test_a_long_name_is_clipped_to_its_column(sqlite: AsyncEngine) -> None:
    await upgrade_to_head(sqlite)
    async with create_session_factory(sqlite)() as session:
        await UserRepo(session).upsert_seen(1, 1, "x-" * 20)
        await DeviceRepo(session).add(1, "dev-1", "D" * 300)
        await session.commit()
    async with sqlite.connect() as conn:
        name = (await conn.execute(text("SELECT name FROM devices"))).scalar_one()
        code = (await conn.execute(text("SELECT language_code FROM users"))).scalar_one()
    assert name == "D" * 128
    assert code == ("x-" * 20)[:16]


async def test_long_texts_and_names_fit_on_postgresql(postgres: AsyncEngine) -> None:
    """A /send confirmation of a 300-emoji SMS (json.dumps makes it ~3,700 characters) from a
    device with a 300-character name, as GoSMS may call it, is stored without a DataError."""
    await upgrade_to_head(postgres)
    long_name = "Телефон " + "ж" * 292
    sms = "😀" * 300
    payload = {"phone": "+79990001122", "text": sms, "device_id": "dev-1"}
    async with create_session_factory(postgres)() as session:
        await UserRepo(session).upsert_seen(1, 1, "ru-RU-x-some-very-long-private-tag")
        await session.commit()
        device = await DeviceRepo(session).add(1, "dev-1", long_name)
        await session.commit()
        device.name = long_name + " (renamed)"  # as the device card does on GoSMS's answer
        await session.commit()
        confirmation_id = await ConfirmationRepo(session).create(
            1, "send", payload | {"device_name": long_name, "to_sim": None}
        )
        await SentSmsRepo(session).add(
            user_id=1,
            sms_id="sms-1",
            chat_id=1,
            message_id=5,
            phone=payload["phone"],
            text=sms,
            device_id="dev-1",
            device_name=long_name,
        )
        await session.commit()
    async with create_session_factory(postgres)() as session:
        confirmation = await session.get(Confirmation, confirmation_id)
        saved = await session.get(Device, device.id)
        sent = (await session.execute(text("SELECT id FROM sent_sms"))).scalar_one()
        row = await session.get(SentSms, sent)
    assert confirmation is not None
    assert saved is not None
    assert row is not None
    assert len(confirmation.payload) > 3000
    assert saved.name == long_name[:128]
    assert row.text == sms
    assert row.device_name == long_name[:128]
    taken = await _consume(postgres, confirmation_id)
    assert taken["text"] == sms
    assert taken["device_name"] == long_name


async def _consume(engine: AsyncEngine, confirmation_id: str) -> dict[str, Any]:
    async with create_session_factory(engine)() as session:
        taken = await ConfirmationRepo(session).consume(confirmation_id, 1, timedelta(minutes=5))
    assert taken is not None
    return taken[1]


async def test_new_users_at_once_are_each_stored_once_on_postgresql(
    postgres: AsyncEngine,
) -> None:
    await upgrade_to_head(postgres)
    factory = create_session_factory(postgres)

    async def first_update(user_id: int) -> tuple[int, str | None]:
        async with factory() as session:
            user = await UserRepo(session).upsert_seen(user_id, user_id, "ru")
            user.language = "en"
            await session.commit()
            return user.id, user.language_code

    ids = [7001, 7002, 7003] * 4
    seen = await asyncio.gather(*(first_update(user_id) for user_id in ids))
    assert sorted(set(seen)) == [(7001, "ru"), (7002, "ru"), (7003, "ru")]
    async with postgres.connect() as conn:
        rows = (await conn.execute(text("SELECT id, language FROM users ORDER BY id"))).all()
    assert [tuple(row) for row in rows] == [(7001, "en"), (7002, "en"), (7003, "en")]
