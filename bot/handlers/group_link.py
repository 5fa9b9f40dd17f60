"""/link and /unlink in a group, and what the group itself tells the bot (it was added or
removed, renamed, made a supergroup). Registered by bot/handlers/groups.py, ahead of its
"private chat only" answers.

/link offers the group on the sender's rent cards: only a user of the bot with a GotSMS token,
and only a member of the group (asked of Telegram). /unlink by that user stops every rent of
theirs shared there. Anyone else is refused and nothing changes. The group is told no more than
that: no balance, token, rent or number.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ChatMemberUpdated, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.group_links import GroupLinkRepo
from bot.db.models import Service, User
from bot.services.sharing import GroupGone, is_member
from bot.texts import share as texts

log = logging.getLogger(__name__)


async def link(
    message: Message,
    bot: Bot,
    session: AsyncSession,
    user: User | None = None,
    sealed_tokens: dict[Service, bytes] | None = None,
) -> None:
    me = await bot.me()
    username = me.username or ""
    if user is None or message.from_user is None or Service.GOTSMS not in (sealed_tokens or {}):
        await message.answer(texts.link_refused_text(username))
        return
    chat = message.chat
    try:
        member = await is_member(bot, chat.id, user.id)
    except GroupGone:
        return  # removed meanwhile: my_chat_member unlinks it
    except TelegramAPIError as exc:
        log.info("membership in group %s not checked: %s", chat.id, exc.message)
        await message.answer(texts.check_failed_text())
        return
    if not member:
        await message.answer(texts.not_in_group_text())
        return
    title = chat.title or ""
    await GroupLinkRepo(session).offer(chat.id, user.id, title)
    await session.commit()
    reached = await _tell_owner(bot, user, texts.owner_offered_text(title))
    text = texts.group_offered_text(username)
    if not reached:
        text += "\n" + texts.owner_unreachable_text(username)
    await message.answer(text)


async def _tell_owner(bot: Bot, user: User, text: str) -> bool:
    try:
        await bot.send_message(user.chat_id, text)
    except TelegramAPIError as exc:
        log.info("user %s not told of a linked group: %s", user.id, exc.message)
        return False
    return True


async def unlink(message: Message, session: AsyncSession, user: User | None = None) -> None:
    if user is None:
        await message.answer(texts.unlink_refused_text())
        return
    stopped, offered = await GroupLinkRepo(session).unlink_owner(message.chat.id, user.id)
    await session.commit()
    if not stopped and not offered:
        await message.answer(texts.unlink_refused_text())
        return
    await message.answer(texts.unlinked_text(stopped))


async def bot_removed(event: ChatMemberUpdated, session: AsyncSession) -> None:
    """Removed from the group (or the group deleted): every link to it goes."""
    log.info("removed from group %s: its links are dropped", event.chat.id)
    await GroupLinkRepo(session).forget_chat(event.chat.id, "group: bot removed")


async def bot_added(event: ChatMemberUpdated, bot: Bot) -> None:
    try:
        await bot.send_message(event.chat.id, texts.greeting_text())
    except TelegramAPIError as exc:
        log.info("no greeting in group %s: %s", event.chat.id, exc.message)


async def renamed(message: Message, session: AsyncSession) -> None:
    await GroupLinkRepo(session).retitle(message.chat.id, message.new_chat_title or "")


async def migrated(message: Message, session: AsyncSession) -> None:
    """The group became a supergroup: the links follow it to its new chat id."""
    if message.migrate_to_chat_id is not None:
        await GroupLinkRepo(session).moved(message.chat.id, message.migrate_to_chat_id)
