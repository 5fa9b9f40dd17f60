"""/forget: the user's data is theirs. Confirmed once, then everything of theirs is deleted."""

from __future__ import annotations

from dataclasses import replace

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import DEFAULT_DESTINY
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.handlers.confirm import question, settle
from bot.handlers.util import show
from bot.keyboards.callbacks import ConfirmCb
from bot.middlewares.errors import Ack
from bot.services.forget import forget_user

ACTION = "forget"
PRIVATE = F.chat.type == "private"
# every destiny a dialog of the user's chat is kept under (bot/services/gotsms.py `views`)
DESTINIES = (DEFAULT_DESTINY, "gotsms")


def question_text() -> str:
    return "\n\n".join(
        [
            _("Delete everything I store about you?"),
            _(
                "Your API tokens, settings, saved devices, the rentals and SMS I watch, "
                "your campaigns, dialogs and queued notifications are deleted right away. "
                "Your GoSMS and GotSMS accounts themselves are not touched."
            ),
            _("This cannot be undone."),
        ]
    )


def done_text() -> str:
    return _(
        "Done: everything I stored about you is deleted — API tokens, settings, devices, "
        "watched rentals and SMS, campaigns, dialogs and queued notifications. "
        "Send /start to begin again as a new user."
    )


async def ask(message: Message, session: AsyncSession, user: User) -> None:
    asked = await question(session, user.id, ACTION, {}, "🗑 " + _("Yes, delete everything"))
    await message.answer(question_text(), reply_markup=asked.keyboard)


async def confirmed(
    query: CallbackQuery,
    callback_data: ConfirmCb,
    ack: Ack,
    session: AsyncSession,
    user: User,
    state: FSMContext,
) -> None:
    settled = await settle(query, callback_data, ack, session, user)
    if settled is None:
        return
    if not settled.ok:
        await show(settled.message, _("Nothing was deleted."))
        return
    await forget_user(session, user.id)
    await clear_dialogs(state)
    await show(settled.message, done_text())


async def clear_dialogs(state: FSMContext) -> None:
    """The dialogs of the user's chat, wherever the storage keeps them (Redis or the database:
    its rows are gone already, a clear then writes nothing)."""
    for destiny in DESTINIES:
        await FSMContext(storage=state.storage, key=replace(state.key, destiny=destiny)).clear()


def router() -> Router:
    r = Router(name="forget")
    r.message.register(ask, Command(ACTION), PRIVATE)
    r.callback_query.register(confirmed, ConfirmCb.filter(F.action == ACTION))
    return r
