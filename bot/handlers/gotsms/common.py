"""Helpers shared by the GotSMS routers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.handlers.util import typing
from bot.keyboards.gotsms import long_id
from bot.middlewares.errors import Ack


def target(query: CallbackQuery) -> Message | None:
    return query.message if isinstance(query.message, Message) else None


def unpack(*values: str) -> list[str] | None:
    """The ids of a button, or None when the button was not made by this bot."""
    try:
        return [long_id(value) for value in values]
    except ValueError:
        return None


async def stale(ack: Ack) -> None:
    await ack(_("This button is out of date. Send /start for a fresh menu."), alert=True)


@contextlib.asynccontextmanager
async def busy(message: Message) -> AsyncIterator[None]:
    """ "typing…" while a slow call runs."""
    if message.bot is None:
        yield
        return
    async with typing(message.bot, message.chat.id):
        yield
