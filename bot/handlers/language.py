"""/lang: English or Russian, stored for the user."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.db.repo import UserRepo
from bot.handlers.util import show
from bot.keyboards.callbacks import LangCb, MenuCb
from bot.keyboards.common import LANGUAGE_NAMES, languages
from bot.middlewares.errors import Ack


def router() -> Router:
    r = Router(name="language")

    async def offer(message: Message, user: User) -> None:
        await message.answer(_("Choose the language:"), reply_markup=languages(user.locale))

    @r.message(Command("lang"))
    async def lang_command(message: Message, user: User) -> None:
        await offer(message, user)

    @r.callback_query(MenuCb.filter(F.action == "lang"))
    async def lang_button(query: CallbackQuery, ack: Ack, user: User) -> None:
        await ack()
        if query.message is not None:
            await offer(query.message, user)  # type: ignore[arg-type]

    @r.callback_query(LangCb.filter(F.code.in_(LANGUAGE_NAMES)))
    async def choose(
        query: CallbackQuery,
        callback_data: LangCb,
        ack: Ack,
        user: User,
        session: AsyncSession,
        i18n: I18n,
    ) -> None:
        await UserRepo(session).set_language(user, callback_data.code)
        await session.commit()
        i18n.current_locale = callback_data.code
        await ack(_("Language: {name}").format(name=LANGUAGE_NAMES[callback_data.code]))
        if isinstance(query.message, Message):
            # `show` takes an unchanged message (the same language pressed twice) as done
            await show(
                query.message,
                _("Language: {name}. Everything from now on is in this language.").format(
                    name=LANGUAGE_NAMES[callback_data.code]
                ),
            )

    return r
