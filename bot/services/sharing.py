"""The rent card's part about sharing its codes with a group, and the membership check made
with Telegram before a group is offered or linked."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    ChatMemberAdministrator,
    ChatMemberMember,
    ChatMemberOwner,
    ChatMemberRestricted,
    InlineKeyboardMarkup,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.gotsms import Rent
from bot.db.rent_watch import RentWatchRepo
from bot.keyboards.share import with_sharing
from bot.texts.share import shared_line

log = logging.getLogger(__name__)
GONE = ("chat not found", "bot was kicked", "bot is not a member")


async def card_with_sharing(
    session: AsyncSession,
    user_id: int,
    rent: Rent,
    text: str,
    markup: InlineKeyboardMarkup,
    status: str,
    page: int,
) -> tuple[str, InlineKeyboardMarkup]:
    """The card's text with the group its codes go to, and Share / Stop sharing."""
    watch = await RentWatchRepo(session).get(user_id, rent.id)
    await session.commit()  # a read: no transaction held through Telegram's call
    if line := shared_line(watch):
        text += "\n" + line
    return text, with_sharing(markup, rent, watch, status, page)


class GroupGone(Exception):
    """The bot is not in the group any more (removed, or the group is gone)."""


async def is_member(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Whether Telegram says the user is in the group now. GroupGone: the bot is not; a
    TelegramAPIError: Telegram could not say."""
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramForbiddenError as exc:
        raise GroupGone from exc
    except TelegramBadRequest as exc:
        if any(reason in exc.message for reason in GONE):
            raise GroupGone from exc
        if "user not found" in exc.message:
            return False
        raise
    if isinstance(member, ChatMemberRestricted):
        return member.is_member
    return isinstance(member, ChatMemberOwner | ChatMemberAdministrator | ChatMemberMember)


__all__ = ["GroupGone", "TelegramAPIError", "card_with_sharing", "is_member"]
