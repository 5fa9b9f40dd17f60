"""Per-update context: a database session, the user row, and the user's locale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiogram import BaseMiddleware
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.types import Chat, TelegramObject
from aiogram.types import User as TgUser
from aiogram.utils.i18n import I18nMiddleware
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.fsm import SqlStorage, storage_key
from bot.db.models import utcnow
from bot.db.repo import INSTANCE, ConfirmationRepo, UserRepo

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
LOCALE = "locale"  # data key: the user's locale
SEEN_EVERY = timedelta(hours=1)  # users.updated_at is kept this fresh by the user's updates


class DbSessionMiddleware(BaseMiddleware):
    """One session per update (`data["session"]`), committed when the handler is done.

    A session holds a connection of the pool from its first query to its commit. Handlers end
    their transaction (`session.commit()`, a read's too) before an API call, GoSMS, GotSMS or
    Telegram: on PostgreSQL a connection left idle in a transaction through a 12 s call, with
    100 updates in flight, would empty the pool (tests/test_postgres.py watches for it).
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.session_factory() as session:
            data["session"] = session
            # the process handling the update: a confirmed action is marked running on it
            session.info[INSTANCE] = getattr(data.get("deps"), "instance_id", None)
            try:
                result = await handler(event, data)
            except Exception:
                await session.rollback()
                await ConfirmationRepo(session).finish_running()
                await session.commit()
                raise
            await ConfirmationRepo(session).finish_running()
            await session.commit()
            return result


class UserMiddleware(BaseMiddleware):
    """Loads (or creates) the user and their encrypted tokens (`sealed_tokens`, for NeedsToken).

    Commits at once: writes keep their locks short, and the connection goes back to the pool
    instead of being held through the handler's API calls (a handler that queries again takes
    one for that moment).

    With `dialogs` (aiogram's FSM middleware over a SqlStorage, which runs after this one),
    the same query reads the update's dialog row too, and hands it to the storage: aiogram's
    read of the state then costs nothing unless a dialog was written meanwhile.
    """

    def __init__(self, dialogs: FSMContextMiddleware | None = None) -> None:
        self.dialogs = dialogs

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TgUser | None = data.get("event_from_user")
        if tg_user is None or tg_user.is_bot:
            return await handler(event, data)
        session: AsyncSession = data["session"]
        chat: Chat | None = data.get("event_chat")
        chat_id = chat.id if chat is not None and chat.type == "private" else tg_user.id
        storage, key = self._dialog(data)
        writes = storage.writes if storage is not None else 0
        user, sealed, dialog = await UserRepo(session).seen_with_tokens(
            tg_user.id, chat_id, tg_user.language_code, key
        )
        if (now := utcnow()) - user.updated_at > SEEN_EVERY:  # /admin's "active in 24 h"
            user.updated_at = now
        await session.commit()
        data["user"] = user
        data[LOCALE] = user.locale
        data["sealed_tokens"] = sealed
        if storage is None or key is None or dialog is None:
            return await handler(event, data)
        owner = storage.preload(key, dialog, writes)
        try:
            return await handler(event, data)
        finally:
            storage.drop_preload(key, owner)

    def _dialog(self, data: dict[str, Any]) -> tuple[SqlStorage | None, str | None]:
        if self.dialogs is None or not isinstance(self.dialogs.storage, SqlStorage):
            return None, None
        context = self.dialogs.resolve_event_context(data["bot"], data)
        return self.dialogs.storage, None if context is None else storage_key(context.key)


def update_locale(data: dict[str, Any]) -> str:
    """The user's language (noted as the user was read: after a rollback the row is gone),
    else their Telegram's."""
    locale = data.get(LOCALE)
    if isinstance(locale, str):
        return locale
    tg_user: TgUser | None = data.get("event_from_user")
    code = (tg_user.language_code if tg_user else None) or ""
    return "ru" if code.lower().startswith("ru") else "en"


class LocaleMiddleware(I18nMiddleware):
    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        return update_locale(data)
