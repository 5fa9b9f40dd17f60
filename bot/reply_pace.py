"""Handlers' replies count towards the deployment's Telegram pace.

Telegram's ~30 messages a second hold for the whole bot, and the sender's pushes are only part
of what it sends: every message a handler sends or edits takes a slot of the shared pace too
(without waiting for it: a user who pressed a button is answered at once), so the pushes of every
instance make room for it.
"""

from __future__ import annotations

from typing import Protocol

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.telegram_retry import sender_is_calling

# what Telegram counts as a message sent: new messages and edits, not answers or reads
COUNTED = ("send", "edit", "copy", "forward")


class Notes(Protocol):
    async def note_reply(self) -> None: ...


class ReplyPace(BaseRequestMiddleware):
    def __init__(self, pace: Notes) -> None:
        self.pace = pace

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if method.__api_method__.startswith(COUNTED) and not sender_is_calling():
            await self.pace.note_reply()
        return await make_request(bot, method)
