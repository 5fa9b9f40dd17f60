"""A rent card's "Share codes with a group": the groups offered (/link in a group), linking one
(checked with Telegram: the owner must be in it), and Stop sharing. /link and /unlink sent in
the private chat say where they work (in a group: bot/handlers/groups.py)."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.gotsms import GotSMSClient, Rent
from bot.db.group_links import GroupLinkRepo
from bot.db.models import Service, User
from bot.handlers.gotsms.common import busy, stale, target, unpack
from bot.handlers.gotsms.rents import Card
from bot.handlers.util import show
from bot.keyboards import share as kb
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.services.gotsms import find_rent
from bot.services.sharing import GONE, GroupGone, is_member
from bot.texts import share as texts

log = logging.getLogger(__name__)


def router() -> Router:
    r = Router(name="gotsms.share")
    r.message.filter(F.chat.type == ChatType.PRIVATE)
    r.message.middleware(NeedsToken(Service.GOTSMS))
    r.callback_query.middleware(NeedsToken(Service.GOTSMS))

    @r.message(Command("link"))
    async def link_here(message: Message) -> None:
        await message.answer(texts.private_link_text())

    @r.message(Command("unlink"))
    async def unlink_here(message: Message) -> None:
        await message.answer(texts.private_unlink_text())

    @r.callback_query(kb.ShareCb.filter(F.a.in_({kb.GROUPS, kb.LINK, kb.STOP})))
    async def share_action(
        query: CallbackQuery,
        callback_data: kb.ShareCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
        bot: Bot,
    ) -> None:
        ids = unpack(callback_data.id)
        message = target(query)
        if ids is None or message is None:
            await stale(ack)
            return
        await ack()
        sharing = Sharing(message, bot, session, user, gotsms, ids[0], callback_data)
        if callback_data.a == kb.GROUPS:
            await sharing.offer_groups()
        elif callback_data.a == kb.LINK:
            await sharing.link(callback_data.c)
        else:
            await sharing.stop()

    return r


class Sharing:
    """One card's sharing buttons, and the calls behind them."""

    def __init__(
        self,
        message: Message,
        bot: Bot,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
        rent_id: str,
        data: kb.ShareCb,
    ) -> None:
        self.message = message
        self.bot = bot
        self.session = session
        self.user = user
        self.gotsms = gotsms
        self.rent_id = rent_id
        self.status = data.st
        self.page = data.p
        self.card = Card(message, gotsms, rent_id, data.st, data.p, session=session, user=user)
        self.links = GroupLinkRepo(session)

    async def _rent(self) -> Rent | None:
        async with busy(self.message):
            rent = await find_rent(self.gotsms, self.rent_id, self.status, self.page)
        if rent is None:
            await show(self.message, "❌ " + texts.rent_gone_text())
        return rent

    async def offer_groups(self) -> None:
        offers = await self.links.offers_of(self.user.id)
        await self.session.commit()
        rent = await self._rent()
        if rent is None:
            return
        me = await self.bot.me()
        markup = kb.groups(rent, offers, self.status, self.page, me.username or "")
        await show(self.message, texts.groups_text(rent, len(offers)), markup)

    async def link(self, chat_id: int) -> None:
        offer = await self.links.offer_of(chat_id, self.user.id)
        await self.session.commit()
        if offer is None:
            await show(self.message, texts.offer_gone_note(), self._back())
            return
        title = offer.title
        try:
            member = await is_member(self.bot, chat_id, self.user.id)
        except GroupGone:
            await self._forget(chat_id)
            await show(self.message, texts.bot_gone_note(title), self._back())
            return
        except TelegramAPIError as exc:
            log.info("membership in group %s not checked: %s", chat_id, exc.message)
            await show(self.message, texts.check_failed_text(), self._back())
            return
        if not member:
            await show(self.message, texts.not_member_note(title), self._back())
            return
        rent = await self._rent()
        if rent is None:
            return
        await self.links.link(self.user.id, rent, chat_id, title)
        await self.session.commit()
        note = texts.group_linked_text(rent.service.name, rent.phone)
        if not await self._tell_group(chat_id, note):
            await show(self.message, texts.bot_gone_note(title), self._back())
            return
        await self.card._show(rent, note=texts.linked_note(title))

    async def stop(self) -> None:
        stopped = await self.links.stop(self.user.id, self.rent_id)
        await self.session.commit()
        rent = await self._rent()
        if rent is None:
            return
        if stopped is None:  # stopped meanwhile (/unlink, the group gone): the card as it is
            await self.card._show(rent)
            return
        chat_id, title = stopped
        await self._tell_group(chat_id, texts.group_stopped_text(rent.phone))
        await self.card._show(rent, note=texts.stopped_note(title))

    async def _tell_group(self, chat_id: int, text: str) -> bool:
        """A short note in the group; False when the bot is not there any more (unlinked)."""
        try:
            await self.bot.send_message(chat_id, text)
        except TelegramAPIError as exc:
            if is_gone(exc):
                await self._forget(chat_id)
                return False
            log.info("note to group %s not sent: %s", chat_id, exc.message)
        return True

    async def _forget(self, chat_id: int) -> None:
        await self.links.forget_chat(chat_id, "group gone")
        await self.session.commit()

    def _back(self) -> InlineKeyboardMarkup:
        return kb.back(self.rent_id, self.status, self.page)


def is_gone(error: TelegramAPIError) -> bool:
    """The bot cannot write to the group any more."""
    return isinstance(error, TelegramForbiddenError) or any(r in error.message for r in GONE)
