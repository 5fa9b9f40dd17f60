"""Per-update context: a database session, the user row, and the user's locale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject
from aiogram.types import User as TgUser
from aiogram.utils.i18n import I18nMiddleware
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import User
from bot.db.repo import ConfirmationRepo, UserRepo

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class DbSessionMiddleware(BaseMiddleware):
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.session_factory() as session:
            data["session"] = session
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
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TgUser | None = data.get("event_from_user")
        if tg_user is not None and not tg_user.is_bot:
            session: AsyncSession = data["session"]
            chat: Chat | None = data.get("event_chat")
            chat_id = chat.id if chat is not None and chat.type == "private" else tg_user.id
            user, sealed = await UserRepo(session).seen_with_tokens(
                tg_user.id, chat_id, tg_user.language_code
            )
            await session.commit()
            data["user"] = user
            data["sealed_tokens"] = sealed
        return await handler(event, data)


class LocaleMiddleware(I18nMiddleware):
    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user: User | None = data.get("user")
        if user is not None:
            return user.locale
        tg_user: TgUser | None = data.get("event_from_user")
        code = (tg_user.language_code if tg_user else None) or ""
        return "ru" if code.lower().startswith("ru") else "en"
