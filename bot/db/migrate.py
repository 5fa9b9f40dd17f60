"""Apply Alembic migrations at start, on the bot's own engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

# The PostgreSQL advisory lock the migrating transaction holds: of several instances starting
# together one migrates, the others wait for its commit and then find the schema at head.
MIGRATION_LOCK = 0x534D_5344_6573_6B01  # "SMSDesk" 1, any fixed 64-bit number of this bot


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


LOCK_QUERY = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=MIGRATION_LOCK)


def lock_for_migrating(connection: Connection) -> None:
    """Waits until no other connection migrates this database: for `alembic upgrade` run by
    hand (migrations/env.py). The lock is the transaction's own: PostgreSQL frees it at the
    commit or rollback, and a transaction that holds it already gets it again at once. SQLite
    has one writer anyway: a no-op there."""
    if connection.dialect.name == "postgresql":
        connection.execute(LOCK_QUERY)


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade_to_head(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        # Before Alembic runs: its context is global to the process, so a second upgrade of
        # this process must wait outside it (an instance's tests run several at once).
        if connection.dialect.name == "postgresql":
            await connection.execute(LOCK_QUERY)
        await connection.run_sync(_upgrade)
