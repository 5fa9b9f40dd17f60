"""Groups: the bot works only in a private chat.

Its answers carry balances, phone numbers, SMS texts and codes, which every member of a group
would see, so in a group /start and /help get a short "use me in a private chat" note, /token is
deleted and refused, the other commands are refused politely, and everything else is ignored.
A button pressed in a group, or a (forged) press on another user's private chat, is refused
before any handler could act with the presser's token. This router comes first.

The exception: /link and /unlink, by which an owner shares a rent's codes with the group
(bot/handlers/group_link.py); they say nothing in the group but that.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import (
    JOIN_TRANSITION,
    LEAVE_TRANSITION,
    ChatMemberUpdatedFilter,
    Command,
    CommandStart,
)
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.commands import COMMANDS
from bot.handlers import group_link
from bot.handlers.util import delete_quietly
from bot.middlewares.errors import Ack

OTHER_COMMANDS = tuple(name for name, _text in COMMANDS if name not in ("start", "help", "token"))


def not_own_chat(query: CallbackQuery) -> bool:
    """A press in a group, or on a message of someone else's private chat."""
    message = query.message
    if message is None:  # inline-mode messages: not this bot's kind
        return False
    return message.chat.type != ChatType.PRIVATE or message.chat.id != query.from_user.id


async def private_chat_note(bot: Bot) -> str:
    me = await bot.me()
    return _(
        "🔒 My answers carry balances, phone numbers and codes, so I work only in a private "
        "chat: open @{username} and send /start there."
    ).format(username=me.username or "")


def router() -> Router:
    r = Router(name="groups")
    r.message.filter(F.chat.type != ChatType.PRIVATE)
    r.callback_query.filter(not_own_chat)

    @r.message(CommandStart())
    @r.message(Command("help"))
    async def start_in_group(message: Message, bot: Bot) -> None:
        await message.answer(
            _("👋 I'm SMS Desk: GoSMS and GotSMS in one chat.")
            + "\n"
            + await private_chat_note(bot)
        )

    @r.message(Command("token"))
    async def token_in_group(message: Message) -> None:
        await delete_quietly(message)
        await message.answer(
            _("🔒 For your safety I take tokens only in a private chat with me. Send /token there.")
        )

    r.message(Command("link"))(group_link.link)
    r.message(Command("unlink"))(group_link.unlink)
    r.message(F.new_chat_title)(group_link.renamed)
    r.message(F.migrate_to_chat_id)(group_link.migrated)
    in_group = F.chat.type.in_({ChatType.GROUP, ChatType.SUPERGROUP})
    r.my_chat_member(ChatMemberUpdatedFilter(LEAVE_TRANSITION), in_group)(group_link.bot_removed)
    r.my_chat_member(ChatMemberUpdatedFilter(JOIN_TRANSITION), in_group)(group_link.bot_added)

    @r.message(Command(*OTHER_COMMANDS))
    async def command_in_group(message: Message, bot: Bot) -> None:
        await message.answer(await private_chat_note(bot))

    @r.message()
    async def anything_else(message: Message) -> None:
        """Group talk, or commands for other bots: not for me."""

    @r.callback_query()
    async def foreign_press(query: CallbackQuery, ack: Ack) -> None:
        message = query.message
        if message is not None and message.chat.type == ChatType.PRIVATE:
            await ack(_("This button belongs to another user's chat."), alert=True)
            return
        await ack(_("🔒 I work only in a private chat with me."), alert=True)

    return r
