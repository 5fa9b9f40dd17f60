"""/send: the one-liner and the guided flow phone → text → device → SIM → confirm → SMS card."""

from __future__ import annotations

from datetime import timedelta
from html import escape
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.errors import ApiError, ApiRejected, ApiUnavailable
from bot.api.gosms import GoSMSClient, SmsStatus
from bot.db.models import Service, User, utcnow
from bot.db.outbox_repo import PollStateRepo
from bot.db.repo import ConfirmationRepo, DeviceRepo, SavedDeviceRepo, SentSmsRepo
from bot.handlers.confirm import already_settled, question, settle
from bot.handlers.util import show, typing
from bot.keyboards import gosms as kb
from bot.keyboards.callbacks import ConfirmCb, MenuCb
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.poller.sms import JOB as SMS_JOB
from bot.services.gosms import InvalidInput, check_text, normalize_phone, split_one_liner
from bot.texts import api_error_text
from bot.texts.gosms import send_question, sms_card

CONFIRMATION_TTL = timedelta(minutes=30)
FIRST_STATUS_CHECK = timedelta(seconds=3)  # the card starts moving within seconds
FLOW_KEYS = ("send_phone", "send_text", "send_device", "send_name", "send_confirmation")
NOT_A_COMMAND = ~F.text.startswith("/")


class SendFlow(StatesGroup):
    phone = State()
    text = State()
    device = State()
    sim = State()
    confirm = State()


def usage() -> str:
    return _(
        "Send <code>/send PHONE TEXT</code>, for example <code>/send +7 999 123-45-67 Hello</code> "
        "(if the text starts with digits, put it on a new line), or just /send and I'll ask."
    )


def ask_phone_text() -> str:
    return "\n".join(
        [
            _("📤 Who should I send the SMS to? Send the phone number, like +7 999 123-45-67."),
            _("/cancel to stop."),
        ]
    )


def ask_text_text() -> str:
    return _("✍️ Now send the text of the SMS: 1 to 300 characters, no backtick (`).")


async def end_flow(state: FSMContext) -> None:
    """Leaves the flow but keeps other FSM data (the saved /sms searches)."""
    data = await state.get_data()
    await state.set_state(None)
    await state.set_data({k: v for k, v in data.items() if k not in FLOW_KEYS})


def router() -> Router:
    r = Router(name="gosms.send")
    r.message.middleware(NeedsToken(Service.GOSMS))
    r.callback_query.middleware(NeedsToken(Service.GOSMS))

    @r.message(Command("send"))
    async def send_command(
        message: Message,
        command: CommandObject,
        state: FSMContext,
        session: AsyncSession,
        user: User,
    ) -> None:
        await end_flow(state)
        args = (command.args or "").strip()
        if not args:
            await state.set_state(SendFlow.phone)
            await message.answer(ask_phone_text())
            return
        raw_phone, raw_text = split_one_liner(args)
        try:
            phone = normalize_phone(raw_phone)
        except InvalidInput as refusal:
            await message.answer("❌ " + refusal.text + "\n\n" + usage())
            return
        await state.update_data(send_phone=phone)
        if not raw_text:
            await state.set_state(SendFlow.text)
            await message.answer(ask_text_text())
            return
        try:
            text = check_text(raw_text)
        except InvalidInput as refusal:
            await state.set_state(SendFlow.text)
            await message.answer(
                "❌ " + refusal.text + "\n" + _("Send the corrected text, or /cancel.")
            )
            return
        await state.update_data(send_text=text)
        await ask_device(message, state, session, user)

    @r.callback_query(MenuCb.filter(F.action == "send"))
    async def send_button(query: CallbackQuery, ack: Ack, state: FSMContext) -> None:
        await ack()
        await end_flow(state)
        await state.set_state(SendFlow.phone)
        if isinstance(query.message, Message):
            await query.message.answer(ask_phone_text())

    @r.message(SendFlow.phone, F.text, NOT_A_COMMAND)
    async def phone_sent(message: Message, state: FSMContext) -> None:
        try:
            phone = normalize_phone(message.text or "")
        except InvalidInput as refusal:
            await message.answer(
                "❌ " + refusal.text + "\n" + _("Send the number again, or /cancel.")
            )
            return
        await state.update_data(send_phone=phone)
        await state.set_state(SendFlow.text)
        await message.answer(ask_text_text())

    @r.message(SendFlow.text, F.text, NOT_A_COMMAND)
    async def text_sent(
        message: Message, state: FSMContext, session: AsyncSession, user: User
    ) -> None:
        try:
            text = check_text(message.text or "")
        except InvalidInput as refusal:
            await message.answer(
                "❌ " + refusal.text + "\n" + _("Send the text again, or /cancel.")
            )
            return
        await state.update_data(send_text=text)
        await ask_device(message, state, session, user)

    @r.message(SendFlow.phone, ~F.text)
    async def phone_not_text(message: Message) -> None:
        await message.answer(_("Send the phone number as text, or /cancel."))

    @r.message(SendFlow.text, ~F.text)
    async def text_not_text(message: Message) -> None:
        await message.answer(_("An SMS carries only text: type it as a message, or /cancel."))

    @r.message(SendFlow.device, NOT_A_COMMAND)
    @r.message(SendFlow.sim, NOT_A_COMMAND)
    @r.message(SendFlow.confirm, NOT_A_COMMAND)
    async def use_buttons(message: Message) -> None:
        await message.answer(_("Please choose with the buttons above, or /cancel."))

    @r.callback_query(SendFlow.device, kb.SendDeviceCb.filter((F.row >= 0) & (F.row <= kb.ROW_MAX)))
    async def device_chosen(
        query: CallbackQuery,
        callback_data: kb.SendDeviceCb,
        ack: Ack,
        state: FSMContext,
        session: AsyncSession,
        user: User,
    ) -> None:
        if callback_data.row == 0:
            await ack()
            await state.update_data(send_device=None, send_name=None)
            if isinstance(query.message, Message):
                await ask_confirmation(query.message, state, session, user, None)
            return
        device = await SavedDeviceRepo(session).get(user.id, callback_data.row)
        await session.commit()  # no connection held through the Telegram calls
        if device is None:
            await ack(_("That device is not in your list any more. Choose another."), alert=True)
            return
        await ack()
        await state.update_data(send_device=device.device_id, send_name=device.name)
        await state.set_state(SendFlow.sim)
        if isinstance(query.message, Message):
            await show(
                query.message,
                _("📶 Which SIM card of {name} should send it?").format(name=escape(device.name)),
                kb.send_sims(),
            )

    @r.callback_query(SendFlow.sim, kb.SendSimCb.filter(F.slot.in_({0, 1, 2})))
    async def sim_chosen(
        query: CallbackQuery,
        callback_data: kb.SendSimCb,
        ack: Ack,
        state: FSMContext,
        session: AsyncSession,
        user: User,
    ) -> None:
        await ack()
        to_sim = callback_data.slot - 1 if callback_data.slot else None
        if isinstance(query.message, Message):
            await ask_confirmation(query.message, state, session, user, to_sim)

    @r.callback_query(ConfirmCb.filter(F.action == kb.SEND))
    async def send_confirmed(
        query: CallbackQuery,
        callback_data: ConfirmCb,
        ack: Ack,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        gosms: GoSMSClient,
    ) -> None:
        if callback_data.ok and not await is_current(state, callback_data.id):
            # the flow ended (another command) without a newer question: close this one too
            if await ConfirmationRepo(session).discard(callback_data.id, user.id, kb.SEND) is None:
                await already_settled(ack)
                return
            await ack(_("This SMS was cancelled or replaced by a newer one. Nothing was sent."))
            if isinstance(query.message, Message):
                await show(query.message, _("Not sent: nothing was charged."))
            return
        settled = await settle(query, callback_data, ack, session, user, CONFIRMATION_TTL)
        if settled is None:
            return
        if await is_current(state, callback_data.id):
            await end_flow(state)
        if not settled.ok:
            await show(settled.message, _("Not sent: nothing was charged."))
            return
        await deliver(settled.message, settled.payload, session, user, gosms)

    return r


async def is_current(state: FSMContext, confirmation_id: str) -> bool:
    if await state.get_state() != SendFlow.confirm.state:
        return False
    data = await state.get_data()
    return bool(data.get("send_confirmation") == confirmation_id)


async def ask_device(
    message: Message, state: FSMContext, session: AsyncSession, user: User
) -> None:
    """Next step after the text: pick a saved device, or straight to the question without any."""
    saved = await DeviceRepo(session).list(user.id)
    await session.commit()  # no connection held through the Telegram call
    if not saved:
        await state.update_data(send_device=None, send_name=None)
        await ask_confirmation(message, state, session, user, None)
        return
    await state.set_state(SendFlow.device)
    await message.answer(_("📱 Which device should send it?"), reply_markup=kb.send_devices(saved))


async def ask_confirmation(
    message: Message, state: FSMContext, session: AsyncSession, user: User, to_sim: int | None
) -> None:
    data = await state.get_data()
    device_id: str | None = data.get("send_device")
    payload: dict[str, Any] = {
        "phone": data["send_phone"],
        "text": data["send_text"],
        "device_id": device_id,
        "device_name": data.get("send_name") or "",
        "to_sim": to_sim if device_id else None,
    }
    asked = await question(session, user.id, kb.SEND, payload, "📤 " + _("Send"))
    await state.set_state(SendFlow.confirm)
    await state.update_data(send_confirmation=asked.id)
    text = send_question(
        payload["phone"], payload["text"], device_id, payload["device_name"], payload["to_sim"]
    )
    await show(message, text, asked.keyboard)


async def deliver(
    message: Message,
    payload: dict[str, Any],
    session: AsyncSession,
    user: User,
    gosms: GoSMSClient,
) -> None:
    """Sends the confirmed SMS once and turns the question into the SMS card."""
    device_id: str | None = payload.get("device_id") or None
    to_sim: int | None = payload.get("to_sim") if device_id else None
    assert message.bot is not None
    await show(message, _("⏳ Sending…"))
    try:
        async with typing(message.bot, message.chat.id):
            sms_id = await gosms.send_sms(
                payload["phone"], payload["text"], device_id=device_id, to_sim=to_sim
            )
    except ApiError as error:
        if isinstance(error, ApiUnavailable) and error.uncertain:
            await show(
                message,
                "⚠️ " + api_error_text(error) + " " + _("Look at /sms before sending it again."),
            )
            return
        if isinstance(error, ApiRejected) and error.code == 2009 and to_sim is not None:
            reason = _(
                "The device has no SIM {slot}. Send again and pick another SIM card."
            ).format(slot=to_sim + 1)
        else:
            reason = api_error_text(error)
        await show(message, "❌ " + _("Not sent.") + " " + reason)
        return
    card = sms_card(
        sms_id=sms_id,
        phone=payload["phone"],
        text=payload["text"],
        status=SmsStatus.WAITING,
        device_name=payload.get("device_name") or None,
        device_id=device_id,
        to_sim=to_sim,
    )
    # Tracked before the card is shown: a refused edit must not leave a sent SMS without pushes.
    row = await SentSmsRepo(session).add(
        user_id=user.id,
        sms_id=sms_id,
        chat_id=message.chat.id,
        message_id=message.message_id,
        phone=payload["phone"],
        text=payload["text"],
        device_id=device_id or "",
        device_name=payload.get("device_name") or "",
        to_sim=to_sim,
    )
    await PollStateRepo(session).poke(user.id, SMS_JOB, utcnow() + FIRST_STATUS_CHECK)
    await session.commit()
    shown = await show(message, card, kb.sms_card(sms_id)) or message
    if shown.message_id != row.message_id:  # the question could not be edited: a new card
        row.chat_id, row.message_id = shown.chat.id, shown.message_id
        await session.commit()
