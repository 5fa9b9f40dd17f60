"""/notify: each kind of push on or off, and the low-balance threshold."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands import N_
from bot.db.models import NotificationSettings, User
from bot.db.repo import NotificationRepo
from bot.handlers.util import show
from bot.keyboards.callbacks import MenuCb, NotifyCb
from bot.keyboards.grid import Keyboard
from bot.middlewares.errors import Ack
from bot.poller import wake
from bot.poller.codes import catch_up
from bot.texts import money

KINDS: tuple[tuple[str, str], ...] = (
    ("codes", N_("New codes")),
    ("sms_status", N_("SMS delivery")),
    ("devices", N_("Devices offline or low battery")),
    ("rent_expiry", N_("Rentals ending")),
    ("low_balance", N_("Low balance")),
    ("wake_push", N_("Number awake")),
    ("no_code_refund", N_("Refund a rental automatically if no code arrives")),
)
NO_CODE_MINUTES = (0, 5, 10, 15, 30, 60)
MAX_THRESHOLD = Decimal("1000000")


class ThresholdFlow(StatesGroup):
    waiting = State()


def notify_text(settings: NotificationSettings) -> str:
    lines = [_("<b>Notifications</b>"), _("Tap a notification type to turn it on or off.")]
    if settings.low_balance:
        if settings.balance_threshold is None:
            lines.append(_("Set the amount below which I warn you about a low balance."))
        else:
            lines.append(
                _("I'll warn you when your GotSMS balance drops below {amount}.").format(
                    amount=money(settings.balance_threshold)
                )
            )
    lines.append(no_code_line(settings))
    return "\n".join(lines)


def notify_keyboard(settings: NotificationSettings) -> InlineKeyboardMarkup:
    builder = Keyboard()
    for kind, label in KINDS:
        mark = "✅" if getattr(settings, kind) else "⬜"
        builder.button(
            text=f"{mark} {_(label)}", callback_data=NotifyCb(action="toggle", kind=kind)
        )
    threshold = settings.balance_threshold
    label = (
        _("Threshold: {amount}").format(amount=money(threshold))
        if threshold
        else _("Set threshold")
    )
    builder.button(text="💰 " + label, callback_data=NotifyCb(action="threshold", kind=""))
    builder.adjust(1)
    no_code_row(builder, settings)
    return builder.as_markup()


def no_code_line(settings: NotificationSettings) -> str:
    minutes = settings.no_code_minutes
    if minutes <= 0:
        return _("No-code reminder for rentals made here: off.")
    return ngettext(
        "No-code reminder for rentals made here: after {n} minute without a code.",
        "No-code reminder for rentals made here: after {n} minutes without a code.",
        minutes,
    ).format(n=minutes)


def no_code_row(builder: Keyboard, settings: NotificationSettings) -> None:
    """The no-code minutes: a new rental made here is reminded of (or refunded) after them."""
    buttons = []
    for minutes in NO_CODE_MINUTES:
        label = _("Off") if minutes == 0 else str(minutes)
        if minutes == settings.no_code_minutes:
            label = "✅ " + label
        data = NotifyCb(action="nocode", kind=str(minutes)).pack()
        buttons.append(InlineKeyboardButton(text=label, callback_data=data))
    builder.row(
        InlineKeyboardButton(
            text="⌛ " + _("No-code reminder after (minutes):"),
            callback_data=NotifyCb(action="nocode", kind=str(settings.no_code_minutes)).pack(),
        )
    )
    builder.row(*buttons)


def router() -> Router:
    r = Router(name="notify")

    @r.message(Command("notify"))
    async def notify_command(message: Message, session: AsyncSession, user: User) -> None:
        settings = await NotificationRepo(session).get(user.id)
        await session.commit()
        await message.answer(notify_text(settings), reply_markup=notify_keyboard(settings))

    @r.callback_query(MenuCb.filter(F.action == "notify"))
    async def notify_button(
        query: CallbackQuery, ack: Ack, session: AsyncSession, user: User
    ) -> None:
        await ack()
        settings = await NotificationRepo(session).get(user.id)
        await session.commit()
        if isinstance(query.message, Message):
            await query.message.answer(
                notify_text(settings), reply_markup=notify_keyboard(settings)
            )

    @r.callback_query(
        NotifyCb.filter(F.action == "toggle"), NotifyCb.filter(F.kind.in_(dict(KINDS)))
    )
    async def toggle(
        query: CallbackQuery,
        callback_data: NotifyCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        state: FSMContext,
    ) -> None:
        settings = await NotificationRepo(session).get(user.id)
        value = not getattr(settings, callback_data.kind)
        setattr(settings, callback_data.kind, value)
        if callback_data.kind == "codes" and value:
            await catch_up(session, user.id)
        if callback_data.kind == "wake_push" and value:
            await wake.resume(session, user.id)
        await session.commit()
        await ack(_("On") if value else _("Off"))
        if isinstance(query.message, Message):
            await show(query.message, notify_text(settings), notify_keyboard(settings))
            if callback_data.kind == "low_balance" and value and settings.balance_threshold is None:
                await ask_threshold(query.message, state)

    @r.callback_query(
        NotifyCb.filter(F.action == "nocode"),
        NotifyCb.filter(F.kind.in_({str(n) for n in NO_CODE_MINUTES})),
    )
    async def no_code_minutes(
        query: CallbackQuery, callback_data: NotifyCb, ack: Ack, session: AsyncSession, user: User
    ) -> None:
        settings = await NotificationRepo(session).get(user.id)
        settings.no_code_minutes = int(callback_data.kind)
        await session.commit()
        await ack(no_code_line(settings))
        if isinstance(query.message, Message):
            await show(query.message, notify_text(settings), notify_keyboard(settings))

    @r.callback_query(NotifyCb.filter(F.action == "threshold"))
    async def threshold_button(query: CallbackQuery, ack: Ack, state: FSMContext) -> None:
        await ack()
        if isinstance(query.message, Message):
            await ask_threshold(query.message, state)

    @r.message(ThresholdFlow.waiting, F.text, ~F.text.startswith("/"))
    async def threshold_sent(
        message: Message, session: AsyncSession, user: User, state: FSMContext
    ) -> None:
        amount = parse_amount(message.text or "")
        if amount is None:
            await message.answer(_("Send a positive amount like 5 or 2.50, or /cancel."))
            return
        await state.clear()
        settings = await NotificationRepo(session).get(user.id)
        settings.balance_threshold = amount
        settings.low_balance = True
        await session.commit()
        await message.answer(notify_text(settings), reply_markup=notify_keyboard(settings))

    @r.message(ThresholdFlow.waiting, ~F.text)
    async def threshold_not_text(message: Message) -> None:
        await message.answer(_("Send the amount as text, like 5 or 2.50, or /cancel."))

    return r


async def ask_threshold(message: Message, state: FSMContext) -> None:
    await state.set_state(ThresholdFlow.waiting)
    await message.answer(
        _(
            "Send the amount: I'll warn you when your GotSMS balance drops below it. "
            "For example, 5 or 2.50."
        )
    )


def parse_amount(text: str) -> Decimal | None:
    try:
        amount = Decimal(text.strip().replace(",", ".").replace(" ", ""))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount <= 0 or amount >= MAX_THRESHOLD:
        return None
    rounded = amount.quantize(Decimal("0.01"))
    return rounded if rounded > 0 else None  # 0.001 would be a threshold of 0.00
