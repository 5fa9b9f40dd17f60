"""aiogram FSM storage in the bot's database: a dialog survives a restart of the bot.

One row per FSM key (bot, chat, thread, user, business connection, destiny) with the state name
and the data as JSON; a row whose state and data are both empty is deleted. Each call is its own
short transaction on a session of its own. Nothing secret belongs in FSM data: the /token dialog
keeps only the name of the service, never the token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy import String, Text, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, UTCDateTime, utcnow


class FsmRecord(Base):
    __tablename__ = "fsm_state"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def storage_key(key: StorageKey) -> str:
    parts = (
        key.bot_id,
        key.chat_id,
        key.thread_id or "",
        key.user_id,
        key.business_connection_id or "",
        key.destiny,
    )
    return ":".join(str(part) for part in parts)[:255]


class SqlStorage(BaseStorage):
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = state.state if isinstance(state, State) else state
        await self._write(storage_key(key), state=name)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self.session_factory() as session:
            return await session.scalar(
                select(FsmRecord.state).where(FsmRecord.key == storage_key(key))
            )

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        await self._write(storage_key(key), data=json.dumps(data, ensure_ascii=False))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self.session_factory() as session:
            raw = await session.scalar(
                select(FsmRecord.data).where(FsmRecord.key == storage_key(key))
            )
        loaded = json.loads(raw) if raw else {}
        return loaded if isinstance(loaded, dict) else {}

    async def close(self) -> None:
        """The engine belongs to the bot and is disposed with it."""

    async def _write(self, key: str, **values: Any) -> None:
        """Update the row, or insert it; a row left with no state and no data is removed."""
        values["updated_at"] = utcnow()
        async with self.session_factory() as session:
            result = await session.execute(
                update(FsmRecord).where(FsmRecord.key == key).values(**values)
            )
            if getattr(result, "rowcount", 0) == 0:
                try:
                    async with session.begin_nested():
                        session.add(FsmRecord(key=key, **values))
                except IntegrityError:  # written by a concurrent call a moment ago
                    await session.execute(
                        update(FsmRecord).where(FsmRecord.key == key).values(**values)
                    )
            await session.execute(
                delete(FsmRecord).where(
                    FsmRecord.key == key, FsmRecord.state.is_(None), FsmRecord.data == "{}"
                )
            )
            await session.commit()
