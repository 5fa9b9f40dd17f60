"""ACCESS=allowlist: only the listed, the operators and those an operator allowed get through.

Outside DbSessionMiddleware and UserMiddleware: a stranger's update creates no user row, no
dialog, takes no token and calls no API. A stranger's private message gets one refusal a day
(a pasted token is deleted all the same, so it does not stay in the chat); a button press a
short alert; anything in a group nothing. With ACCESS=open it only hands the update on.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Chat, Message, TelegramObject, Update
from aiogram.types import User as TgUser
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Access, Settings
from bot.db.access import AccessRepo, Listed
from bot.db.models import locale_of
from bot.handlers.common import looks_like_stray_token
from bot.handlers.util import delete_quietly
from bot.middlewares.context import Handler
from bot.middlewares.errors import Ack

log = logging.getLogger(__name__)


def refusal_text(user_id: int) -> str:
    return _(
        "Sorry, this bot is private: only the people its owner lets in can use it. "
        "If you should have access, send the bot's owner your Telegram ID: <code>{id}</code>"
    ).format(id=user_id)


def holds_token(message: Message) -> bool:
    """A /token command, or what looks like a pasted token: not left in a stranger's chat."""
    text = message.text or ""
    command = text.split(maxsplit=1)[0].split("@")[0].lower() if text.strip() else ""
    return command == "/token" or looks_like_stray_token(text)


class AccessMiddleware(BaseMiddleware):
    def __init__(
        self, settings: Settings, session_factory: async_sessionmaker[AsyncSession], i18n: I18n
    ) -> None:
        self.open = settings.access is Access.OPEN
        ids, names = settings.allowed
        self.listed = Listed(ids, names, settings.admins)
        self.session_factory = session_factory
        self.i18n = i18n

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if self.open:
            return await handler(event, data)
        tg_user: TgUser | None = data.get("event_from_user")
        if tg_user is None or tg_user.is_bot:  # nobody to refuse; no handler acts on it alone
            return await handler(event, data)
        async with self.session_factory() as session:
            repo = AccessRepo(session)
            allowed = await repo.may_use(tg_user.id, tg_user.username, self.listed)
            await session.commit()  # a read's transaction, ended before any Telegram call
            if allowed:
                return await handler(event, data)
            assert isinstance(event, Update)
            await self._refuse(event, tg_user, data, repo)
        return None

    async def _refuse(
        self, event: Update, tg_user: TgUser, data: dict[str, Any], repo: AccessRepo
    ) -> None:
        with self.i18n.context(), self.i18n.use_locale(locale_of(None, tg_user.language_code)):
            ack: Ack | None = data.get("ack")
            if event.callback_query is not None and ack is not None:
                await ack(_("Sorry, this bot is private."), alert=True)
                return
            chat: Chat | None = data.get("event_chat")
            message = event.message
            if message is None or chat is None or chat.type != "private":
                return  # a group, an edit, a member update: nothing at all
            if holds_token(message):
                await delete_quietly(message)
            if not await repo.refuse_once(tg_user.id):
                return
            log.info("user %s is not on the allowlist: refused", tg_user.id)
            await _tell(data["bot"], chat.id, refusal_text(tg_user.id))


async def _tell(bot: Bot, chat_id: int, text: str) -> None:
    try:
        await bot.send_message(chat_id, text)
    except TelegramAPIError as exc:
        log.info("refusal not sent to %s: %s", chat_id, exc.message)
