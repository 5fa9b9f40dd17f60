"""/devices: the saved devices (GoSMS has no list endpoint), the device card and its buttons."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.errors import ApiNotFound
from bot.api.gosms import GoSMSClient
from bot.db.models import Device, Service, User, clip
from bot.db.repo import DeviceRepo, SavedDeviceRepo
from bot.handlers.confirm import question, settle
from bot.handlers.util import show, typing
from bot.keyboards import gosms as kb
from bot.keyboards.callbacks import ConfirmCb, MenuCb
from bot.keyboards.grid import Keyboard
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.services.gosms import MAX_SAVED_DEVICES, InvalidInput, check_device_id
from bot.texts import api_error_text
from bot.texts.gosms import device_card, devices_list

CARD_ACTIONS = {"o", "r", "on", "off", "x", "f"}


class DeviceFlow(StatesGroup):
    device_id = State()


def ask_id_text() -> str:
    return "\n".join(
        [
            _("➕ Send the device ID."),
            _("Copy it from the GoSMS panel → My devices (it looks like <code>6622a8bb…</code>)."),
            _("/cancel to stop."),
        ]
    )


def back_to_list(row: int | None = None) -> InlineKeyboardMarkup:
    builder = Keyboard()
    if row is not None:
        builder.button(
            text="🧹 " + _("Remove from the bot"), callback_data=kb.DeviceCb(action="f", row=row)
        )
    builder.button(text="‹ " + _("All devices"), callback_data=kb.DevicesCb(action="list"))
    builder.adjust(1)
    return builder.as_markup()


def router() -> Router:
    r = Router(name="gosms.devices")
    r.message.middleware(NeedsToken(Service.GOSMS))
    r.callback_query.middleware(NeedsToken(Service.GOSMS))

    @r.message(Command("devices"))
    async def devices_command(
        message: Message,
        command: CommandObject,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        gosms: GoSMSClient,
    ) -> None:
        await state.set_state(None)  # a new command leaves any dialog
        args = (command.args or "").split()
        if args and args[0].lower() == "add":
            args = args[1:]
        if len(args) > 1:
            await message.answer(
                _("Send one device ID: <code>/devices add ID</code>, or just /devices.")
            )
            return
        if args:
            await add_device(message, state, session, user, gosms, args[0])
            return
        saved = await DeviceRepo(session).list(user.id)
        await session.commit()  # no connection held through the Telegram call
        await message.answer(devices_list(saved), reply_markup=kb.devices(saved))

    @r.callback_query(MenuCb.filter(F.action == "devices"))
    async def devices_button(
        query: CallbackQuery, ack: Ack, session: AsyncSession, user: User
    ) -> None:
        await ack()
        if isinstance(query.message, Message):
            saved = await DeviceRepo(session).list(user.id)
            await session.commit()
            await query.message.answer(devices_list(saved), reply_markup=kb.devices(saved))

    @r.callback_query(kb.DevicesCb.filter(F.action == "list"))
    async def list_pressed(
        query: CallbackQuery, ack: Ack, session: AsyncSession, user: User
    ) -> None:
        await ack()
        if isinstance(query.message, Message):
            saved = await DeviceRepo(session).list(user.id)
            await session.commit()
            await show(query.message, devices_list(saved), kb.devices(saved))

    @r.callback_query(kb.DevicesCb.filter(F.action == "add"))
    async def add_pressed(query: CallbackQuery, ack: Ack, state: FSMContext) -> None:
        await ack()
        await state.set_state(DeviceFlow.device_id)
        if isinstance(query.message, Message):
            await show(query.message, ask_id_text())

    @r.message(DeviceFlow.device_id, F.text, ~F.text.startswith("/"))
    async def id_sent(
        message: Message,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        gosms: GoSMSClient,
    ) -> None:
        await add_device(message, state, session, user, gosms, message.text or "")

    @r.message(DeviceFlow.device_id, ~F.text)
    async def id_not_text(message: Message) -> None:
        await message.answer(_("Please send the device ID as text, or /cancel."))

    @r.callback_query(
        kb.DeviceCb.filter(F.action.in_(CARD_ACTIONS) & (F.row > 0) & (F.row <= kb.ROW_MAX))
    )
    async def card_pressed(
        query: CallbackQuery,
        callback_data: kb.DeviceCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gosms: GoSMSClient,
    ) -> None:
        repo = SavedDeviceRepo(session)
        device = await repo.get(user.id, callback_data.row)
        await session.commit()  # no connection held through the API calls below
        if device is None:
            await ack(_("This device is not in your list any more. Send /devices."), alert=True)
            return
        action = callback_data.action
        if action == "f":
            await repo.delete(user.id, device.id)
            await session.commit()
            await ack(_("Removed from the bot; it is still in your GoSMS account."))
            if isinstance(query.message, Message):
                saved = await DeviceRepo(session).list(user.id)
                await session.commit()
                await show(query.message, devices_list(saved), kb.devices(saved))
            return
        await ack()
        if not isinstance(query.message, Message):
            return
        if action == "x":
            asked = await question(
                session,
                user.id,
                kb.DEVICE_DELETE,
                {"row": device.id, "device_id": device.device_id},
                "🗑 " + _("Yes, delete"),
            )
            await show(
                query.message,
                _(
                    "🗑 Delete the device <b>{name}</b> from your GoSMS account? It will no "
                    "longer send SMS for you. This can't be undone."
                ).format(name=escape(device.name or device.device_id)),
                asked.keyboard,
            )
            return
        if action in ("on", "off"):
            assert query.message.bot is not None
            async with typing(query.message.bot, query.message.chat.id):
                await gosms.set_device_active(device.device_id, action == "on")
        await show_card(query.message, gosms, session, device)

    @r.callback_query(ConfirmCb.filter(F.action == kb.DEVICE_DELETE))
    async def delete_confirmed(
        query: CallbackQuery,
        callback_data: ConfirmCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gosms: GoSMSClient,
    ) -> None:
        settled = await settle(query, callback_data, ack, session, user)
        if settled is None:
            return
        message = settled.message
        if not settled.ok:
            saved = await DeviceRepo(session).list(user.id)
            await session.commit()
            await show(message, devices_list(saved), kb.devices(saved))
            return
        device_id = str(settled.payload["device_id"])
        saved_repo = SavedDeviceRepo(session)
        device = await saved_repo.by_device_id(user.id, device_id)
        await session.commit()  # no connection held through the API call
        name = escape(device.name if device is not None and device.name else device_id)
        gone = False
        assert message.bot is not None
        try:
            async with typing(message.bot, message.chat.id):
                await gosms.delete_device(device_id)
        except ApiNotFound:
            gone = True
        if device is not None:
            await saved_repo.delete(user.id, device.id)
        await session.commit()
        text = (
            _("The device {name} was already gone from GoSMS; I removed it from the bot too.")
            if gone
            else _("🗑 The device {name} is deleted from GoSMS and removed from the bot.")
        ).format(name=name)
        await show(message, text, back_to_list())

    return r


async def add_device(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    gosms: GoSMSClient,
    raw_id: str,
) -> None:
    try:
        device_id = check_device_id(raw_id)
    except InvalidInput as refusal:
        await state.set_state(DeviceFlow.device_id)
        await message.answer("❌ " + refusal.text + "\n" + _("Send the ID again, or /cancel."))
        return
    saved = await DeviceRepo(session).list(user.id)
    await session.commit()  # no connection held through the API call
    known = next((d for d in saved if d.device_id == device_id), None)
    if known is None and len(saved) >= MAX_SAVED_DEVICES:
        await state.set_state(None)
        await message.answer(
            _(
                "You already have {count} saved devices, the most I keep. Remove one from the "
                "bot first."
            ).format(count=len(saved))
        )
        return
    assert message.bot is not None
    try:
        async with typing(message.bot, message.chat.id):
            info = await gosms.device_info(device_id)
    except ApiNotFound as error:
        await state.set_state(DeviceFlow.device_id)
        await message.answer(
            "❌ " + api_error_text(error) + "\n" + _("Send the ID again, or /cancel.")
        )
        return
    await state.set_state(None)
    device = await DeviceRepo(session).add(user.id, device_id, info.device_name)
    await session.commit()
    text = _("✅ Saved. You can now pick it in /send.") + "\n\n" + device_card(info, device_id)
    await message.answer(text, reply_markup=kb.device_card(device.id, info.is_active is not False))


async def show_card(
    message: Message, gosms: GoSMSClient, session: AsyncSession, device: Device
) -> None:
    assert message.bot is not None
    try:
        async with typing(message.bot, message.chat.id):
            info = await gosms.device_info(device.device_id)
    except ApiNotFound as error:
        await show(message, "❌ " + api_error_text(error), back_to_list(device.id))
        return
    name = clip(Device.name, info.device_name)  # as stored: a long name is not written anew
    if name and name != device.name:
        device.name = name
        await session.commit()
    await show(
        message,
        device_card(info, device.device_id),
        kb.device_card(device.id, info.is_active is not False),
    )
