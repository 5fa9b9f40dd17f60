"""/admin broadcast: an operator's announcement to every active user.

The text → a preview exactly as users will see it (sending it is also Telegram's check of its
HTML) and the number of active users → a one-shot confirmation → a `Broadcast` row in state
SENDING, which bot/poller/broadcasts.py queues to every active user and follows on the
operator's progress card. For anyone who is not an admin none of this exists: the update goes
on to the routers after this one, and ends as an unknown command.
"""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.engine import lock_for_writing
from bot.db.models import Broadcast, BroadcastState, User
from bot.handlers.confirm import question, settle
from bot.handlers.util import show
from bot.keyboards.callbacks import ConfirmCb
from bot.middlewares.errors import Ack
from bot.poller.broadcast_pushes import first_card
from bot.poller.broadcasts import active_users

ACTION = "broadcast"
MAX_TEXT = 4096
# what Telegram marks by itself in any text; every other entity is formatting the operator chose
AUTOMATIC = frozenset(
    {"mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number"}
)


class BroadcastFlow(StatesGroup):
    text = State()


def from_admin(event: Message | CallbackQuery, settings: Settings) -> bool:
    return event.from_user is not None and settings.is_admin(event.from_user.id)


def asks_broadcast(args: str | None) -> bool:
    return (args or "").strip().lower() == "broadcast"


def announcement_html(message: Message) -> str:
    """The text as HTML: formatting made with Telegram's buttons is kept; a text without any
    is taken as HTML the operator wrote (`<b>`, `<a href="…">`), checked by the preview."""
    if any(e.type not in AUTOMATIC for e in message.entities or ()):
        return message.html_text
    return message.text or ""


def ask_text() -> str:
    return _(
        "📢 Send me the text of the announcement. It goes to every active user exactly as you "
        "write it. Format it with Telegram's buttons, or write HTML: &lt;b&gt;bold&lt;/b&gt;, "
        '&lt;i&gt;italic&lt;/i&gt;, &lt;a href="https://…"&gt;a link&lt;/a&gt; (a plain '
        "&lt; or &amp; is written &amp;lt; or &amp;amp;). At most 4096 characters. /cancel "
        "stops."
    )


def refused_text(reason: str) -> str:
    return _(
        "Telegram cannot show this text: {reason}. Fix it and send it again, or /cancel."
    ).format(reason=escape(reason.removeprefix("Bad Request: ")))


def router() -> Router:
    r = Router(name="admin_broadcast")
    r.message.filter(F.chat.type == "private", from_admin)
    r.callback_query.filter(from_admin)
    r.message.register(start, Command("admin", magic=F.args.func(asks_broadcast)))
    r.message.register(text_sent, BroadcastFlow.text, F.text, ~F.text.startswith("/"))
    r.message.register(not_text, BroadcastFlow.text, ~F.text)
    r.callback_query.register(confirmed, ConfirmCb.filter(F.action == ACTION))
    return r


async def start(message: Message, state: FSMContext) -> None:
    await state.set_state(BroadcastFlow.text)
    await message.answer(ask_text())


async def not_text(message: Message) -> None:
    await message.answer(_("Send the announcement as text, or /cancel."))


async def text_sent(message: Message, state: FSMContext, session: AsyncSession, user: User) -> None:
    text = announcement_html(message)
    if len(text) > MAX_TEXT:
        await message.answer(
            ngettext(
                "That is {n} character; an announcement has at most 4096. Make it shorter, "
                "or /cancel.",
                "That is {n} characters; an announcement has at most 4096. Make it shorter, "
                "or /cancel.",
                len(text),
            ).format(n=len(text))
        )
        return
    await session.commit()  # no transaction held through the preview's call
    await message.answer(_("This is how users will see it:"))
    try:
        await message.answer(text)
    except TelegramBadRequest as exc:  # its HTML, or its length once parsed
        await message.answer(refused_text(exc.message))
        return
    count = await active_users(session)
    broadcast = Broadcast(admin_id=user.id, text=text, total=count)
    session.add(broadcast)
    await session.flush()
    asked = await question(
        session, user.id, ACTION, {"broadcast_id": broadcast.id}, "📢 " + _("Send to everyone")
    )
    await session.commit()
    await state.clear()
    await message.answer(
        ngettext(
            "It goes to {n} active user. Send it?",
            "It goes to {n} active users. Send it?",
            count,
        ).format(n=count),
        reply_markup=asked.keyboard,
    )


async def confirmed(
    query: CallbackQuery, callback_data: ConfirmCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    settled = await settle(query, callback_data, ack, session, user)
    if settled is None:
        return
    if not settled.ok:
        await show(settled.message, _("The announcement was not sent."))
        return
    broadcast_id = int(settled.payload["broadcast_id"])
    message = settled.message
    await lock_for_writing(session)  # reads, then writes
    total = await active_users(session)
    result = await session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.state == BroadcastState.DRAFT)
        .values(
            state=BroadcastState.SENDING,
            total=total,
            chat_id=message.chat.id,
            message_id=message.message_id,
        )
    )
    await session.commit()
    if getattr(result, "rowcount", 0) != 1:  # a confirmation is used once: cannot happen
        return
    await show(message, first_card(broadcast_id, total))
