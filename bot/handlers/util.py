"""Small helpers shared by handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, Message

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


async def show(
    message: Message,
    text: str,
    reply_markup: InlineKeyboardMarkup | None = None,
    *,
    edit: bool = True,
) -> Message | None:
    """Edits a bot message in place (a list page, a card); an unchanged card is not an error.

    With `edit=False`, or when the message cannot be edited any more, a new message is sent.
    """
    if edit and message.from_user is not None and message.from_user.is_bot:
        try:
            result = await message.edit_text(text, reply_markup=reply_markup)
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return message
            if (
                "message to edit not found" not in exc.message
                and "can't be edited" not in exc.message
            ):
                raise
        else:
            return result if isinstance(result, Message) else message
    return await message.answer(text, reply_markup=reply_markup)
