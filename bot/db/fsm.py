"""aiogram FSM storage in the bot's database: a dialog survives a restart of the bot.

One row per FSM key (bot, chat, thread, user, business connection, destiny) with the state name
and the data as JSON; no row is no dialog (a row whose state and data are both empty is deleted).
Each write is one statement in a short transaction of its own, never inside a handler's
session. Nothing secret belongs in FSM data: the /token dialog keeps only the name of the
service, never the token.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple, cast

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StateType, StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation
from sqlalchemy import String, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, UTCDateTime, utcnow


class FsmRecord(Base):
    __tablename__ = "fsm_state"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


EMPTY = "{}"
_UNREAD = object()


class _Row(NamedTuple):
    state: str | None
    data: str


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
    """Dialog state in the database, read once per update and written only when it changes.

    aiogram reads the state of every update (FSMContextMiddleware) and handlers often read the
    data too or clear a dialog that does not exist: while an update holds its dialog's lock
    (`DialogIsolation`), the row read at its start is remembered, so the update costs one read
    at most, a clear of no dialog writes nothing, and each change is one statement. The memory
    lasts only as long as that update: the next update reads the row again, so the database
    stays the truth.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory
        bind = session_factory.kw.get("bind")
        assert isinstance(bind, AsyncEngine), "the session factory must be bound to an engine"
        self.engine = bind
        # storage key -> the row while an update holds that dialog (None: no row; _UNREAD)
        self._held: dict[str, _Row | object | None] = {}
        # storage key -> a row read with the user before the lock (`preload`), `writes` then,
        # and whose it is (of two updates of one dialog in flight, the later one's)
        self._preloaded: dict[str, tuple[_Row | None, int, object]] = {}
        self.writes = 0  # counts up before and after every write of this process

    def preload(self, key: str, row: tuple[str | None, str | None] | None, writes: int) -> object:
        """A row read (with the user, in one query) before the update took the dialog's lock;
        `writes` is this storage's count when that read began. The row is used only if no
        dialog was written since: otherwise it is read again under the lock."""
        found = None
        if row is not None and (row[0] is not None or row[1] is not None):
            found = _Row(row[0], row[1] or EMPTY)
        owner = object()
        self._preloaded[key] = (found, writes, owner)
        return owner

    def drop_preload(self, key: str, owner: object) -> None:
        """The update is over: its preload, if unused, goes (another update's stays)."""
        if self._preloaded.get(key, (None, 0, None))[2] is owner:
            del self._preloaded[key]

    @contextlib.contextmanager
    def held(self, key: StorageKey) -> Iterator[None]:
        """The dialog is locked for one update: remember its row until the update is done."""
        name = storage_key(key)
        row, writes, _owner = self._preloaded.pop(name, (_UNREAD, -1, None))
        self._held[name] = row if writes == self.writes else _UNREAD
        try:
            yield
        finally:
            self._held.pop(name, None)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = state.state if isinstance(state, State) else state
        await self._write(storage_key(key), state=name)

    async def get_state(self, key: StorageKey) -> str | None:
        row = await self._row(storage_key(key))
        return None if row is None else row.state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        await self._write(storage_key(key), data=json.dumps(data, ensure_ascii=False))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row = await self._row(storage_key(key))
        loaded = json.loads(row.data) if row is not None and row.data else {}
        return loaded if isinstance(loaded, dict) else {}

    async def close(self) -> None:
        """The engine belongs to the bot and is disposed with it."""

    async def _row(self, key: str) -> _Row | None:
        known = self._held.get(key, _UNREAD)
        if known is not _UNREAD:
            return cast(_Row | None, known)
        query = select(FsmRecord.state, FsmRecord.data).where(FsmRecord.key == key)
        async with self.engine.connect() as connection:
            found = (await connection.execute(query)).first()
        row = None if found is None else _Row(found.state, found.data or EMPTY)
        if key in self._held:
            self._held[key] = row
        return row

    async def _write(self, key: str, **values: Any) -> None:
        """One statement: update the row, insert it, or delete it when the dialog is empty.

        Nothing at all when the values are what the row already holds (a clear of no dialog).
        """
        old = await self._row(key)
        new = _Row(
            values.get("state", None if old is None else old.state),
            values.get("data", EMPTY if old is None else old.data),
        )
        if new == (old or _Row(None, EMPTY)):
            return
        stamp = {"updated_at": utcnow()}
        self.writes += 1
        try:
            await self._apply(key, old, new, values | stamp)
        finally:
            self.writes += 1
        if key in self._held:
            self._held[key] = None if new.state is None and new.data == EMPTY else new

    async def _apply(self, key: str, old: _Row | None, new: _Row, values: dict[str, Any]) -> None:
        stamp = {"updated_at": values["updated_at"]}
        async with self.engine.begin() as connection:
            if new.state is None and new.data == EMPTY:
                await connection.execute(delete(FsmRecord).where(FsmRecord.key == key))
            elif old is not None:
                changed = await connection.execute(
                    update(FsmRecord).where(FsmRecord.key == key).values(**values)
                )
                if getattr(changed, "rowcount", 1) == 0:  # gone meanwhile (another instance)
                    await self._insert(connection, key, new, stamp)
            else:
                await self._insert(connection, key, new, stamp)

    @staticmethod
    async def _insert(
        connection: AsyncConnection, key: str, row: _Row, stamp: dict[str, Any]
    ) -> None:
        values = {"state": row.state, "data": row.data, **stamp}
        try:
            async with connection.begin_nested():
                await connection.execute(insert(FsmRecord).values(key=key, **values))
        except IntegrityError:  # written by another instance a moment ago
            await connection.execute(update(FsmRecord).where(FsmRecord.key == key).values(**values))


class DialogIsolation(BaseEventIsolation):
    """aiogram's in-process lock per dialog (one update of a dialog at a time), which also
    tells the storage when an update holds a dialog so that it reads the row only once."""

    def __init__(self, storage: SqlStorage) -> None:
        self.storage = storage
        self.inner = SimpleEventIsolation()

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        async with self.inner.lock(key):
            with self.storage.held(key):
                yield

    async def close(self) -> None:
        await self.inner.close()
