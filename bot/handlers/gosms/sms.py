"""/sms [search]: the SMS list (10 a page, edited in place) and the SMS card: refresh, delete."""

from __future__ import annotations

import hashlib

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.errors import ApiNotFound, ApiRejected
from bot.api.gosms import GoSMSClient, Sms
from bot.db.models import Service, User
from bot.db.repo import SavedDeviceRepo, SentSmsRepo
from bot.handlers.confirm import question, settle
from bot.handlers.util import show, typing
from bot.keyboards import gosms as kb
from bot.keyboards.callbacks import ConfirmCb, MenuCb
from bot.keyboards.grid import Keyboard
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.services.gosms import (
    PAGE_SIZE,
    InvalidInput,
    check_search,
    delete_wait,
    is_device_id,
    pages,
)
from bot.texts.gosms import card_of, sms_list

SEARCHES = "gosms_searches"
MAX_SEARCHES = 20
VALID_ID = F.id.func(is_device_id)  # SMS ids have the same shapes: ObjectID or UUID


async def remember_search(state: FSMContext, search: str) -> str:
    """Keeps the search in the chat's FSM data; the buttons carry only its 8-hex key."""
    if not search:
        return ""
    key = hashlib.sha256(search.encode()).hexdigest()[:8]
    data = await state.get_data()
    searches: dict[str, str] = dict(data.get(SEARCHES) or {})
    searches.pop(key, None)
    searches[key] = search
    while len(searches) > MAX_SEARCHES:
        searches.pop(next(iter(searches)))
    await state.update_data({SEARCHES: searches})
    return key


async def recall_search(state: FSMContext, key: str) -> str | None:
    if not key:
        return ""
    searches = (await state.get_data()).get(SEARCHES) or {}
    found = searches.get(key)
    return found if isinstance(found, str) else None


def wait_text(seconds: int) -> str:
    if seconds <= 0:
        return _("in a moment")
    minutes, rest = divmod(seconds, 60)
    if minutes and not rest:
        return _("in {minutes} min").format(minutes=minutes)
    if minutes:
        return _("in {minutes} min {seconds} s").format(minutes=minutes, seconds=rest)
    return _("in {seconds} s").format(seconds=rest)


def after_delete(page: int, q: str) -> InlineKeyboardMarkup | None:
    if not page:
        return None
    builder = Keyboard()
    builder.button(text="‹ " + _("Back to the list"), callback_data=kb.SmsPageCb(page=page, q=q))
    return builder.as_markup()


def router() -> Router:
    r = Router(name="gosms.sms")
    r.message.middleware(NeedsToken(Service.GOSMS))
    r.callback_query.middleware(NeedsToken(Service.GOSMS))

    @r.message(Command("sms"))
    async def sms_command(
        message: Message, command: CommandObject, state: FSMContext, gosms: GoSMSClient
    ) -> None:
        try:
            search = check_search(command.args)
        except InvalidInput as refusal:
            await message.answer("❌ " + refusal.text)
            return
        await state.set_state(None)  # a new command leaves any dialog
        q = await remember_search(state, search)
        await show_list(message, gosms, 1, search, q, edit=False)

    @r.callback_query(MenuCb.filter(F.action == "sms"))
    async def sms_button(query: CallbackQuery, ack: Ack, gosms: GoSMSClient) -> None:
        await ack()
        if isinstance(query.message, Message):
            await show_list(query.message, gosms, 1, "", "", edit=False)

    @r.callback_query(kb.SmsPageCb.filter(F.page >= 1))
    async def page_pressed(
        query: CallbackQuery,
        callback_data: kb.SmsPageCb,
        ack: Ack,
        state: FSMContext,
        gosms: GoSMSClient,
    ) -> None:
        search = await recall_search(state, callback_data.q)
        if search is None:
            await ack(_("This search is out of date. Send /sms TEXT again."), alert=True)
            return
        await ack()
        if isinstance(query.message, Message):
            await show_list(query.message, gosms, callback_data.page, search, callback_data.q)

    @r.callback_query(kb.SmsCb.filter(F.action.in_({"o", "r"}) & VALID_ID & (F.page >= 0)))
    async def card_pressed(
        query: CallbackQuery,
        callback_data: kb.SmsCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gosms: GoSMSClient,
    ) -> None:
        await ack()
        if isinstance(query.message, Message):
            await show_card(
                query.message,
                gosms,
                session,
                user,
                callback_data.id,
                callback_data.page,
                callback_data.q,
            )

    @r.callback_query(kb.SmsCb.filter((F.action == "d") & VALID_ID & (F.page >= 0)))
    async def delete_pressed(
        query: CallbackQuery,
        callback_data: kb.SmsCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
    ) -> None:
        await ack()
        payload = {"id": callback_data.id, "page": callback_data.page, "q": callback_data.q}
        asked = await question(session, user.id, kb.SMS_DELETE, payload, "🗑 " + _("Yes, delete"))
        if isinstance(query.message, Message):
            await show(
                query.message,
                _("🗑 Delete the SMS <code>{id}</code> from GoSMS? This can't be undone.").format(
                    id=callback_data.id
                ),
                asked.keyboard,
            )

    @r.callback_query(ConfirmCb.filter(F.action == kb.SMS_DELETE))
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
        payload, message = settled.payload, settled.message
        sms_id, page, q = str(payload["id"]), int(payload["page"]), str(payload["q"])
        if not settled.ok:
            await show_card(message, gosms, session, user, sms_id, page, q)
            return
        assert message.bot is not None
        try:
            async with typing(message.bot, message.chat.id):
                await gosms.delete_sms(sms_id)
        except ApiRejected as error:
            if error.code != 1010:
                raise
            sms = await gosms.get_sms(sms_id)
            note = "⏳ " + _(
                "GoSMS deletes an SMS only 5 minutes after it was created: try again {when}."
            ).format(when=wait_text(delete_wait(sms.time_create)))
            await show_card(message, gosms, session, user, sms_id, page, q, note=note, sms=sms)
            return
        except ApiNotFound:
            await SentSmsRepo(session).forget(user.id, sms_id)
            await session.commit()  # SQLite's write lock is not held through the API call
            await show(
                message,
                _("GoSMS has no such SMS: it may have been deleted."),
                after_delete(page, q),
            )
            return
        await SentSmsRepo(session).forget(user.id, sms_id)
        await session.commit()
        await show(message, _("🗑 The SMS is deleted."), after_delete(page, q))

    return r


async def show_list(
    message: Message, gosms: GoSMSClient, page: int, search: str, q: str, *, edit: bool = True
) -> None:
    assert message.bot is not None
    async with typing(message.bot, message.chat.id):
        result = await gosms.list_sms(limit=PAGE_SIZE, page=page, search=search or None)
        total = result.pagination.total_records
        if not result.sms_list and total and page > 1:  # past the end, e.g. after deletions
            page = pages(total)
            result = await gosms.list_sms(limit=PAGE_SIZE, page=page, search=search or None)
    count = pages(total)
    text = sms_list(result.sms_list, total, page, count, search)
    await show(message, text, kb.sms_list(result.sms_list, page, count, q), edit=edit)


async def show_card(
    message: Message,
    gosms: GoSMSClient,
    session: AsyncSession,
    user: User,
    sms_id: str,
    page: int,
    q: str,
    *,
    note: str = "",
    sms: Sms | None = None,
) -> None:
    assert message.bot is not None
    if sms is None:
        async with typing(message.bot, message.chat.id):
            sms = await gosms.get_sms(sms_id)
    name = None
    if sms.device_id:
        device = await SavedDeviceRepo(session).by_device_id(user.id, sms.device_id.lower())
        name = device.name if device is not None else None
    await SentSmsRepo(session).set_status(user.id, sms.id, sms.status)
    await session.commit()  # SQLite's write lock is not held through the API call
    text = card_of(sms, name)
    if note:
        text = note + "\n\n" + text
    await show(message, text, kb.sms_card(sms.id, page=page, q=q))
