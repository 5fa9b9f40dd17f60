"""Small helpers shared by handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message

log = logging.getLogger(__name__)
TYPING_AFTER = 0.5
TYPING_EVERY = 4.5


@contextlib.asynccontextmanager
async def typing(bot: Bot, chat_id: int) -> AsyncIterator[None]:
    """Shows "typing…" while a slow call runs; a fast call shows nothing."""

    async def worker() -> None:
        await asyncio.sleep(TYPING_AFTER)
        while True:
            with contextlib.suppress(TelegramAPIError):
                await bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)
            await asyncio.sleep(TYPING_EVERY)

    task = asyncio.create_task(worker())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def delete_quietly(message: Message) -> bool:
    """Deletes a message; too old or no rights is not an error worth showing."""
    try:
        await message.delete()
    except TelegramAPIError as exc:
        log.info("message %s not deleted: %s", message.message_id, exc.message)
        return False
    return True
