"""/start, /help, /cancel, the main menu, membership changes, and the fallback hints."""

from __future__ import annotations

import re
from html import escape

from aiogram import F, Router
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter, Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands import COMMANDS
from bot.db.models import Service, User
from bot.db.repo import UserRepo
from bot.handlers.confirm import close_open
from bot.handlers.util import delete_quietly
from bot.keyboards.callbacks import MenuCb
from bot.keyboards.common import main_menu
from bot.middlewares.errors import Ack
from bot.poller.codes import catch_up
from bot.texts import service_name

STRAY_TOKEN = re.compile(r"[A-Za-z0-9._|=-]{20,512}")

# What Telegram itself posts in a chat (a pin, the auto-delete timer, a gift, a topic...): nobody
# wrote it to the bot, so it gets no answer. Anything else that is not text gets a hint.
SERVICE_EVENTS = frozenset(
    {
        "boost_added",
        "channel_chat_created",
        "chat_background_set",
        "chat_owner_changed",
        "chat_owner_left",
        "checklist_tasks_added",
        "checklist_tasks_done",
        "community_chat_added",
        "community_chat_joined",
        "community_chat_removed",
        "delete_chat_photo",
        "direct_message_price_changed",
        "forum_topic_closed",
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_reopened",
        "general_forum_topic_hidden",
        "general_forum_topic_unhidden",
        "gift",
        "gift_upgrade_sent",
        "giveaway_completed",
        "giveaway_created",
        "group_chat_created",
        "left_chat_member",
        "managed_bot_created",
        "message_auto_delete_timer_changed",
        "migrate_from_chat_id",
        "migrate_to_chat_id",
        "new_chat_members",
        "new_chat_photo",
        "new_chat_title",
        "paid_message_price_changed",
        "pinned_message",
        "poll_option_added",
        "poll_option_deleted",
        "proximity_alert_triggered",
        "suggested_post_approval_failed",
        "suggested_post_approved",
        "suggested_post_declined",
        "suggested_post_paid",
        "suggested_post_refunded",
        "supergroup_chat_created",
        "unique_gift",
        "video_chat_ended",
        "video_chat_participants_invited",
        "video_chat_scheduled",
        "video_chat_started",
        "write_access_allowed",
    }
)


def help_text() -> str:
    lines = [_("<b>Commands</b>")]
    lines += [f"/{command} — {_(description)}" for command, description in COMMANDS]
    lines += [
        "",
        _(
            "Waking a number: GotSMS brings a sleeping rented number online so it can receive "
            "an SMS (the ⏰ button of a rental in /rents)."
        ),
        _("In a group: /link shares a rental's codes there, /unlink stops it."),
    ]
    return "\n".join(lines)


def start_text(first_name: str, connected: set[Service]) -> str:
    status = ", ".join(
        f"{service_name(s)} {'✅' if s in connected else '—'}"
        for s in (Service.GOTSMS, Service.GOSMS)
    )
    next_step = (
        _("Next step: connect a token with /token.")
        if not connected
        else _("See everything I can do with /help.")
    )
    return "\n\n".join(
        [
            _("👋 Hi, {name}! I'm SMS Desk: two SMS services in one chat.").format(
                name=escape(first_name)
            ),
            _(
                "📤 <b>GoSMS</b> — your own Android phones become SMS gateways: "
                "I send SMS through them and track each one until it is delivered."
            ),
            _(
                "📥 <b>GotSMS</b> — rent phone numbers for verification codes: "
                "every code that arrives is sent here automatically."
            ),
            _("Connected: {status}").format(status=status),
            next_step,
        ]
    )


def looks_like_stray_token(text: str | None) -> bool:
    """A lone long word of letters and digits: most likely a pasted API token."""
    if not text:  # a photo, a sticker, a location...
        return False
    word = text.strip()
    return (
        STRAY_TOKEN.fullmatch(word) is not None
        and any(c.isdigit() for c in word)
        and any(c.isalpha() for c in word)
    )


def not_text_hint(state: str | None) -> str:
    """For a message that is not text, in a dialog step that has no hint of its own."""
    if state is None:
        return _("I understand commands and text messages. /help lists what I can do.")
    return _("I'm waiting for your answer: a text or a button press. /cancel stops.")


def router() -> Router:
    r = Router(name="common")

    @r.message(F.content_type.in_(SERVICE_EVENTS))
    async def service_event(message: Message) -> None:
        """Telegram's note in the chat (a pin, the auto-delete timer...), not a message to me."""

    @r.message(CommandStart())
    async def start(
        message: Message,
        session: AsyncSession,
        user: User,
        sealed_tokens: dict[Service, bytes],
        state: FSMContext,
    ) -> None:
        await state.clear()
        if not user.is_active:
            await UserRepo(session).set_active(user.id, True)
            await catch_up(session, user.id)
            await session.commit()  # not holding SQLite's write lock through the API call
        connected = set(sealed_tokens)  # loaded with the user (UserMiddleware)
        first_name = message.from_user.first_name if message.from_user else ""
        await message.answer(start_text(first_name, connected), reply_markup=main_menu(connected))

    @r.message(Command("help"))
    async def help_command(message: Message) -> None:
        await message.answer(help_text())

    @r.callback_query(MenuCb.filter(F.action == "help"))
    async def help_button(query: CallbackQuery, ack: Ack) -> None:
        await ack()
        if query.message is not None:
            await query.message.answer(help_text())

    @r.message(Command("cancel"))
    async def cancel(
        message: Message, state: FSMContext, session: AsyncSession, user: User
    ) -> None:
        closed = await close_open(session, user.id)  # the Yes of an open question stops working
        if await state.get_state() is None and not closed:
            await message.answer(_("There is nothing to cancel."))
            return
        await state.clear()
        await message.answer(_("Cancelled. /help lists what I can do."))

    @r.my_chat_member(ChatMemberUpdatedFilter(KICKED), F.chat.type == "private")
    async def blocked(event: ChatMemberUpdated, session: AsyncSession) -> None:
        await UserRepo(session).set_active(event.from_user.id, False)

    @r.my_chat_member(ChatMemberUpdatedFilter(MEMBER), F.chat.type == "private")
    async def unblocked(event: ChatMemberUpdated, session: AsyncSession) -> None:
        await UserRepo(session).set_active(event.from_user.id, True)
        await catch_up(session, event.from_user.id)

    return r


def fallback_router() -> Router:
    """Last in line: whatever no other handler took gets a short hint, never silence."""
    r = Router(name="fallback")

    @r.message(~F.text)  # a photo, a sticker, a file, a voice note, a location, a poll...
    async def not_text(message: Message, state: FSMContext) -> None:
        await message.answer(not_text_hint(await state.get_state()))

    @r.message(F.text.func(looks_like_stray_token))
    async def stray_token(message: Message) -> None:
        await delete_quietly(message)
        await message.answer(
            _(
                "That looked like an API token, so I deleted it from the chat. To connect it, "
                "use /token."
            )
        )

    @r.message(F.text.startswith("/"))
    async def unknown_command(message: Message) -> None:
        await message.answer(_("I don't know that command. /help lists them all."))

    @r.message()
    async def unknown_text(message: Message) -> None:
        await message.answer(_("I didn't get that. /help lists what I can do."))

    @r.callback_query()
    async def stale_button(query: CallbackQuery, ack: Ack) -> None:
        await ack(_("This button is out of date. Send /start for a fresh menu."), alert=True)

    return r
