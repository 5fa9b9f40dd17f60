"""/bulk: recipients (pasted or a file) → text → devices → SIM → summary → Start → the card.

The dialog keeps what the user sent (the pasted list, or the file's id) rather than the parsed
rows: the list is read again for the summary, so no dialog holds thousands of rows. The card's
buttons change the campaign's state only; the runner (bot/campaigns) sends and edits the card.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Sequence
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BufferedInputFile, CallbackQuery, Document, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.campaigns.card import card_payload, seconds_per_sms
from bot.campaigns.report import report_csv, report_name
from bot.config import Settings
from bot.db.campaigns import CampaignRepo, Dropped
from bot.db.models import Campaign, CampaignState, DeviceMode, RowState, Service, User, utcnow
from bot.db.repo import DeviceRepo, SavedDeviceRepo
from bot.handlers.confirm import question, settle
from bot.handlers.gosms.send import NOT_A_COMMAND
from bot.handlers.util import show, typing
from bot.keyboards import bulk as kb
from bot.keyboards.callbacks import BulkAction, BulkCb, ConfirmCb, MenuCb
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.services.bulk import (
    BulkRefused,
    Source,
    check,
    compile_template,
    dropped_csv,
    parse_file,
    parse_pasted,
    template_fields,
)
from bot.services.gosms import InvalidInput, check_text
from bot.texts import bulk as texts
from bot.texts.bulk_input import reason_text, refusal_text

FLOW_KEYS = (
    "bulk_paste",
    "bulk_file",
    "bulk_name",
    "bulk_columns",
    "bulk_template",
    "bulk_mode",
    "bulk_devices",
    "bulk_names",
    "bulk_confirmation",
)
TEXT_FILES = (".csv", ".txt")
VALUE_SHOWN = 40  # characters of a dropped row in the summary


class BulkFlow(StatesGroup):
    source = State()
    text = State()
    device = State()
    sim = State()
    confirm = State()


def router() -> Router:
    r = Router(name="gosms.bulk")
    r.message.middleware(NeedsToken(Service.GOSMS))
    r.callback_query.middleware(NeedsToken(Service.GOSMS))
    r.message.register(bulk_command, Command("bulk"))
    r.callback_query.register(bulk_button, MenuCb.filter(F.action == "bulk"))
    r.message.register(list_pasted, BulkFlow.source, F.text, NOT_A_COMMAND)
    r.message.register(file_sent, BulkFlow.source, F.document)
    r.message.register(not_a_list, BulkFlow.source, ~F.text)
    r.message.register(text_sent, BulkFlow.text, F.text, NOT_A_COMMAND)
    r.message.register(text_not_text, BulkFlow.text, ~F.text)
    r.message.register(use_buttons, BulkFlow.device, NOT_A_COMMAND)
    r.message.register(use_buttons, BulkFlow.sim, NOT_A_COMMAND)
    r.message.register(use_buttons, BulkFlow.confirm, NOT_A_COMMAND)
    r.callback_query.register(
        device_chosen,
        BulkFlow.device,
        BulkCb.filter(
            F.action.in_({BulkAction.DEVICE_ANY, BulkAction.DEVICE_ONE, BulkAction.DEVICE_SPREAD})
        ),
    )
    r.callback_query.register(
        sim_chosen, BulkFlow.sim, BulkCb.filter((F.action == BulkAction.SIM) & F.id.in_({0, 1, 2}))
    )
    r.callback_query.register(start_settled, ConfirmCb.filter(F.action == kb.START))
    r.callback_query.register(cancel_settled, ConfirmCb.filter(F.action == kb.CANCEL))
    r.callback_query.register(retry_settled, ConfirmCb.filter(F.action == kb.RETRY))
    r.callback_query.register(pause_or_resume, BulkCb.filter(F.action.in_(PAUSE_RESUME)))
    r.callback_query.register(cancel_pressed, BulkCb.filter(F.action == BulkAction.CANCEL))
    r.callback_query.register(report_pressed, BulkCb.filter(F.action == BulkAction.REPORT))
    r.callback_query.register(
        retry_pressed, BulkCb.filter(F.action.in_({BulkAction.RETRY, BulkAction.RETRY_ALL}))
    )
    r.callback_query.register(dropped_pressed, BulkCb.filter(F.action == BulkAction.DROPPED))
    r.callback_query.register(list_pressed, BulkCb.filter(F.action == BulkAction.LIST))
    r.callback_query.register(open_pressed, BulkCb.filter(F.action == BulkAction.OPEN))
    return r


# ---- step 1: the recipients


async def end_flow(state: FSMContext) -> None:
    """Leaves the dialog but keeps other FSM data (the saved /sms searches)."""
    data = await state.get_data()
    await state.set_state(None)
    await state.set_data({k: v for k, v in data.items() if k not in FLOW_KEYS})


async def ask_source(
    message: Message, state: FSMContext, session: AsyncSession, user: User, settings: Settings
) -> None:
    await end_flow(state)
    await state.set_state(BulkFlow.source)
    has_campaigns = await CampaignRepo(session).count(user.id) > 0
    await session.commit()
    text = texts.ask_source_text(settings.bulk_max_rows, settings.bulk_max_file_bytes)
    await message.answer(text, reply_markup=kb.ask_source(has_campaigns))


async def bulk_command(
    message: Message, state: FSMContext, session: AsyncSession, user: User, settings: Settings
) -> None:
    await ask_source(message, state, session, user, settings)


async def bulk_button(
    query: CallbackQuery,
    ack: Ack,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
) -> None:
    await ack()
    if isinstance(query.message, Message):
        await ask_source(query.message, state, session, user, settings)


async def list_pasted(
    message: Message, state: FSMContext, session: AsyncSession, user: User, settings: Settings
) -> None:
    try:
        source = parse_pasted(message.text or "", max_rows=settings.bulk_max_rows)
    except BulkRefused as refusal:
        await message.answer(texts.refused_text(refusal_text(refusal)))
        return
    await state.update_data(bulk_paste=message.text or "", bulk_file=None, bulk_name="")
    await source_read(message, state, session, user, settings, source)


def is_text_file(document: Document) -> bool:
    name = (document.file_name or "").lower()
    return name.endswith(TEXT_FILES) or (document.mime_type or "").startswith("text/")


async def file_sent(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
    bot: Bot,
) -> None:
    document = message.document
    assert document is not None
    limit = settings.bulk_max_file_bytes
    if (document.file_size or 0) > limit:
        await message.answer(texts.file_too_big_text(limit))
        return
    if not is_text_file(document):
        await message.answer(texts.not_a_text_file_text())
        return
    name = document.file_name or "list.csv"
    try:
        async with typing(bot, message.chat.id):
            source = await read_file(bot, document.file_id, name, settings)
    except BulkRefused as refusal:
        await message.answer(texts.refused_text(refusal_text(refusal)))
        return
    except TelegramBadRequest:  # "file is too big": over what a bot may download
        await message.answer(texts.file_too_big_text(limit))
        return
    await state.update_data(bulk_paste=None, bulk_file=document.file_id, bulk_name=name)
    await source_read(message, state, session, user, settings, source)


async def read_file(bot: Bot, file_id: str, name: str, settings: Settings) -> Source:
    downloaded = await bot.download(file_id)
    assert downloaded is not None
    return await asyncio.to_thread(
        parse_file,
        downloaded.read(),
        name,
        max_rows=settings.bulk_max_rows,
        max_bytes=settings.bulk_max_file_bytes,
    )


async def not_a_list(message: Message) -> None:
    await message.answer(texts.not_a_list_text())


async def source_read(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
    source: Source,
) -> None:
    """Next step after the list: the text, unless every row has its own."""
    columns = list(source.columns)
    await state.update_data(bulk_columns=columns)
    if source.texts:
        await state.update_data(bulk_template=None)
        await ask_device(message, state, session, user, settings)
        return
    await state.set_state(BulkFlow.text)
    await message.answer(texts.ask_text_text(len(source.rows), columns))


# ---- step 2: the text and the devices


async def text_sent(
    message: Message, state: FSMContext, session: AsyncSession, user: User, settings: Settings
) -> None:
    template = message.text or ""
    try:
        fields = template_fields(template)
    except BulkRefused as refusal:
        await message.answer(
            "❌ " + refusal_text(refusal) + "\n" + _("Send the text again, or /cancel.")
        )
        return
    columns: list[str] = (await state.get_data()).get("bulk_columns") or []
    if missing := [f for f in fields if f not in columns]:
        await message.answer(texts.unknown_fields_text(missing, columns))
        return
    # a plain text, or a template's own words: refused now rather than every row dropped for it
    literal = template if not fields else "".join(compile_template(template).parts[0::2])
    try:
        checked = check_text(literal) if not fields or literal.strip() else ""
    except InvalidInput as refusal:
        await message.answer("❌ " + refusal.text + "\n" + _("Send the text again, or /cancel."))
        return
    if not fields:
        template = checked
    await state.update_data(bulk_template=template)
    await ask_device(message, state, session, user, settings)


async def text_not_text(message: Message) -> None:
    await message.answer(_("An SMS carries only text: type it as a message, or /cancel."))


async def use_buttons(message: Message) -> None:
    await message.answer(_("Please choose with the buttons above, or /cancel."))


async def ask_device(
    message: Message, state: FSMContext, session: AsyncSession, user: User, settings: Settings
) -> None:
    saved = await DeviceRepo(session).list(user.id)
    await session.commit()  # no connection held through the Telegram call
    if not saved:
        await state.update_data(bulk_mode=DeviceMode.ANY, bulk_devices=[], bulk_names=[])
        await summarize(message, state, session, user, settings, None)
        return
    await state.set_state(BulkFlow.device)
    await message.answer(texts.ask_device_text(), reply_markup=kb.devices(saved))


async def device_chosen(
    query: CallbackQuery,
    callback_data: BulkCb,
    ack: Ack,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
) -> None:
    if not isinstance(query.message, Message):
        await ack(_("This button is out of date. Send /start for a fresh menu."), alert=True)
        return
    if callback_data.action == BulkAction.DEVICE_ANY:
        await ack()
        await state.update_data(bulk_mode=DeviceMode.ANY, bulk_devices=[], bulk_names=[])
        await summarize(query.message, state, session, user, settings, None)
        return
    if callback_data.action == BulkAction.DEVICE_ONE:
        device = await SavedDeviceRepo(session).get(user.id, callback_data.id)
        chosen = [device] if device is not None else []
        mode = DeviceMode.ONE
    else:
        chosen = list(await DeviceRepo(session).list(user.id))
        mode = DeviceMode.SPREAD if len(chosen) > 1 else DeviceMode.ONE
    await session.commit()
    if not chosen:
        await ack(_("That device is not in your list any more. Choose another."), alert=True)
        return
    await ack()
    names = [d.name or d.device_id for d in chosen]
    await state.update_data(
        bulk_mode=mode, bulk_devices=[d.device_id for d in chosen], bulk_names=names
    )
    await state.set_state(BulkFlow.sim)
    name = names[0] if mode == DeviceMode.ONE else None
    await show(query.message, texts.ask_sim_text(name), kb.sims())


async def sim_chosen(
    query: CallbackQuery,
    callback_data: BulkCb,
    ack: Ack,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
) -> None:
    await ack()
    if isinstance(query.message, Message):
        to_sim = callback_data.id - 1 if callback_data.id else None
        await summarize(query.message, state, session, user, settings, to_sim)


# ---- step 3: the summary and its confirmation


async def summarize(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
    to_sim: int | None,
) -> None:
    """Reads the list again, checks every row, stores the draft and asks to start it."""
    bot = message.bot
    assert bot is not None
    data = await state.get_data()
    template: str | None = data.get("bulk_template")
    try:
        async with typing(bot, message.chat.id):
            source = await reread(bot, data, settings)
            checked = await asyncio.to_thread(check, source, template)
    except BulkRefused as refusal:  # the list reads differently now: ask for it again
        await end_flow(state)
        await state.set_state(BulkFlow.source)
        await message.answer(texts.refused_text(refusal_text(refusal)))
        return
    mode = DeviceMode(data.get("bulk_mode") or DeviceMode.ANY)
    campaign = await CampaignRepo(session).create_draft(
        user.id,
        source=data.get("bulk_name") or "",
        template=template or "",
        device_mode=mode,
        device_ids=data.get("bulk_devices") or [],
        to_sim=to_sim if mode != DeviceMode.ANY else None,
        pace=settings.bulk_device_pace,
        recipients=checked.recipients,
        dropped=checked.dropped,
    )
    asked = None
    if checked.recipients:
        payload = {"campaign_id": campaign.id}
        asked = await question(session, user.id, kb.START, payload, "🚀 " + _("Start"))
    await session.commit()
    if asked is None:
        await end_flow(state)
    else:
        await state.set_state(BulkFlow.confirm)
        await state.update_data(bulk_confirmation=asked.id)
    text = texts.summary_text(
        campaign_id=campaign.id,
        source=campaign.source,
        recipients=len(checked.recipients),
        dropped=[(d.line, d.value[:VALUE_SHOWN], d.reason) for d in checked.dropped],
        describe=reason_text,
        sample=checked.recipients[0].text if checked.recipients else None,
        devices=texts.devices_text(mode, data.get("bulk_names") or [], campaign.to_sim),
        pace=campaign.pace,
        seconds=len(checked.recipients) * seconds_per_sms(campaign),
    )
    keyboard = kb.summary(asked.keyboard if asked else None, campaign.id, len(checked.dropped))
    await show(message, text, keyboard)


async def reread(bot: Bot, data: dict[str, Any], settings: Settings) -> Source:
    if data.get("bulk_file"):
        return await read_file(bot, data["bulk_file"], data.get("bulk_name") or "", settings)
    return parse_pasted(data.get("bulk_paste") or "", max_rows=settings.bulk_max_rows)


async def start_settled(
    query: CallbackQuery,
    callback_data: ConfirmCb,
    ack: Ack,
    state: FSMContext,
    session: AsyncSession,
    user: User,
) -> None:
    user_id = user.id  # read once: a state change expires the session's objects, `user` too
    settled = await settle(query, callback_data, ack, session, user)
    if settled is None:
        return
    if (await state.get_data()).get("bulk_confirmation") == callback_data.id:
        await end_flow(state)
    if not settled.ok:
        await show(settled.message, texts.not_started_text())
        return
    campaign_id = int(settled.payload["campaign_id"])
    repo = CampaignRepo(session)
    if not await repo.start(user_id, campaign_id, utcnow()):
        await session.commit()
        await show(settled.message, texts.stale_campaign_text())
        return
    await repo.set_card(campaign_id, settled.message.chat.id, settled.message.message_id)
    await session.commit()
    await show_card(settled.message, session, user_id, campaign_id)


# ---- the card


async def show_card(
    message: Message,
    session: AsyncSession,
    user_id: int,
    campaign_id: int,
    *,
    edit: bool = True,
) -> None:
    """The campaign's card, in place of `message` (or as a new message): kept as its card."""
    repo = CampaignRepo(session)
    campaign = await repo.get(user_id, campaign_id)
    if campaign is None:
        await session.commit()
        await show(message, texts.stale_campaign_text(), edit=edit)
        return
    card = card_payload(campaign, await repo.counts(campaign_id))
    await session.commit()
    shown = await show(message, texts.card_text(card), kb.card_keyboard(card), edit=edit)
    if shown is not None and (shown.chat.id, shown.message_id) != (
        campaign.chat_id,
        campaign.message_id,
    ):
        await repo.set_card(campaign_id, shown.chat.id, shown.message_id)
        await session.commit()


async def refresh_card(bot: Bot, session: AsyncSession, campaign: Campaign) -> None:
    """The campaign's own card, edited where it is (after a change made from another message)."""
    if campaign.chat_id is None or campaign.message_id is None:
        return
    card = card_payload(campaign, await CampaignRepo(session).counts(campaign.id))
    await session.commit()
    with contextlib.suppress(TelegramBadRequest):  # not modified, or gone: the runner's
        await bot.edit_message_text(  # next edit says the rest
            texts.card_text(card),
            chat_id=campaign.chat_id,
            message_id=campaign.message_id,
            reply_markup=kb.card_keyboard(card),
        )


async def own_campaign(
    query: CallbackQuery, ack: Ack, session: AsyncSession, user: User, campaign_id: int
) -> tuple[Message, Campaign] | None:
    """The pressed message and the presser's campaign, or an alert and None."""
    campaign = await CampaignRepo(session).get(user.id, campaign_id)
    await session.commit()
    if campaign is None or not isinstance(query.message, Message):
        await ack(texts.stale_campaign_text(), alert=True)
        return None
    return query.message, campaign


PAUSE_RESUME = {BulkAction.PAUSE, BulkAction.RESUME}


async def pause_or_resume(
    query: CallbackQuery, callback_data: BulkCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    user_id = user.id  # read once: a state change expires the session's objects, `user` too
    found = await own_campaign(query, ack, session, user, callback_data.id)
    if found is None:
        return
    message, _campaign = found
    if callback_data.action == BulkAction.PAUSE:
        moved = await CampaignRepo(session).move(
            user_id, callback_data.id, [CampaignState.RUNNING], CampaignState.PAUSED
        )
    else:
        moved = await CampaignRepo(session).move(
            user_id, callback_data.id, [CampaignState.PAUSED], CampaignState.RUNNING
        )
    await session.commit()
    await ack(None if moved else texts.changed_text(), alert=not moved)
    await show_card(message, session, user_id, callback_data.id)


async def cancel_pressed(
    query: CallbackQuery, callback_data: BulkCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    found = await own_campaign(query, ack, session, user, callback_data.id)
    if found is None:
        return
    message, campaign = found
    if campaign.state not in (CampaignState.RUNNING, CampaignState.PAUSED):
        await ack(texts.changed_text(), alert=True)
        await show_card(message, session, user.id, campaign.id)
        return
    counts = await CampaignRepo(session).counts(campaign.id)
    payload = {"campaign_id": campaign.id}
    asked = await question(session, user.id, kb.CANCEL, payload, "⏹ " + _("Stop sending"))
    await session.commit()
    await ack()
    await message.answer(
        texts.cancel_question_text(campaign.id, counts.waiting),
        reply_markup=kb.cancel_question(asked.keyboard),
    )


async def cancel_settled(
    query: CallbackQuery, callback_data: ConfirmCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    user_id = user.id  # read once: a state change expires the session's objects, `user` too
    settled = await settle(query, callback_data, ack, session, user)
    if settled is None:
        return
    campaign_id = int(settled.payload["campaign_id"])
    if not settled.ok:
        await show(settled.message, texts.kept_text(campaign_id))
        return
    repo = CampaignRepo(session)
    live = [CampaignState.RUNNING, CampaignState.PAUSED]
    moved = await repo.move(user_id, campaign_id, live, CampaignState.CANCELLED)
    campaign = await repo.get(user_id, campaign_id)
    await session.commit()
    await show(
        settled.message, texts.cancelled_text(campaign_id) if moved else texts.changed_text()
    )
    if campaign is not None and settled.message.bot is not None:
        await refresh_card(settled.message.bot, session, campaign)


async def report_pressed(
    query: CallbackQuery, callback_data: BulkCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    found = await own_campaign(query, ack, session, user, callback_data.id)
    if found is None:
        return
    await ack()
    message, campaign = found
    rows = await CampaignRepo(session).rows(campaign.id)
    await session.commit()
    data = await asyncio.to_thread(report_csv, rows)
    await message.answer_document(BufferedInputFile(data, filename=report_name(campaign.id)))


def retryable(rows: Sequence[Any]) -> tuple[int, int]:
    """(refused rows, unknown rows): what "Retry failed" can send again."""
    failed = sum(1 for r in rows if r.state == RowState.FAILED and not r.sms_id)
    unknown = sum(1 for r in rows if r.state == RowState.UNKNOWN)
    return failed, unknown


async def retry_pressed(
    query: CallbackQuery, callback_data: BulkCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    found = await own_campaign(query, ack, session, user, callback_data.id)
    if found is None:
        return
    message, campaign = found
    if campaign.state not in (CampaignState.DONE, CampaignState.CANCELLED):
        await ack(texts.changed_text(), alert=True)
        return
    rows = await CampaignRepo(session).rows(campaign.id)
    if waiting := sum(1 for r in rows if r.state in (RowState.QUEUED, RowState.SENDING)):
        # cancelled before the end: running it again would send those as well
        await session.commit()
        await ack(texts.retry_after_cancel_text(campaign.id, waiting), alert=True)
        return
    failed, unknown = retryable(rows)
    if not failed and not unknown:
        await session.commit()
        await ack(texts.nothing_to_retry_text(), alert=True)
        return
    with_unknown = callback_data.action == BulkAction.RETRY_ALL or not failed
    payload = {"campaign_id": campaign.id, "with_unknown": with_unknown}
    asked = await question(session, user.id, kb.RETRY, payload, "🔁 " + _("Send again"))
    await session.commit()
    await ack()
    text = texts.retry_question_text(campaign.id, failed, unknown, with_unknown)
    keyboard = kb.retry_question(asked.keyboard, campaign.id, unknown, with_unknown)
    # the first question is a new message under the card; "including unknown" edits it
    await show(message, text, keyboard, edit=callback_data.action == BulkAction.RETRY_ALL)


async def retry_settled(
    query: CallbackQuery, callback_data: ConfirmCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    user_id = user.id  # read once: a state change expires the session's objects, `user` too
    settled = await settle(query, callback_data, ack, session, user)
    if settled is None:
        return
    if not settled.ok:
        await show(settled.message, texts.not_retried_text())
        return
    campaign_id = int(settled.payload["campaign_id"])
    with_unknown = bool(settled.payload.get("with_unknown"))
    moved = await CampaignRepo(session).retry(user_id, campaign_id, with_unknown=with_unknown)
    await session.commit()
    if not moved:
        await show(settled.message, texts.changed_text())
        return
    await show_card(settled.message, session, user_id, campaign_id)


async def dropped_pressed(
    query: CallbackQuery, callback_data: BulkCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    found = await own_campaign(query, ack, session, user, callback_data.id)
    if found is None:
        return
    await ack()
    message, campaign = found
    dropped = [Dropped(*item) for item in json.loads(campaign.dropped or "[]")]
    data = await asyncio.to_thread(dropped_csv, dropped, reason_text)
    name = f"dropped-rows-{campaign.id}.csv"
    await message.answer_document(BufferedInputFile(data, filename=name))


# ---- the list


async def list_pressed(
    query: CallbackQuery, callback_data: BulkCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    await ack()
    if not isinstance(query.message, Message):
        return
    repo = CampaignRepo(session)
    total = await repo.count(user.id)
    pages = max(1, math.ceil(total / kb.LIST_PAGE))
    page = min(max(1, callback_data.page), pages)
    items = await repo.of_user(user.id, limit=kb.LIST_PAGE, offset=(page - 1) * kb.LIST_PAGE)
    shown = [(c, (await repo.counts(c.id)).sent) for c in items]
    await session.commit()
    # page 0: from the /bulk question, which stays; a page of the list is edited in place
    await show(
        query.message,
        texts.list_text(total),
        kb.campaigns(shown, page, pages),
        edit=callback_data.page > 0,
    )


async def open_pressed(
    query: CallbackQuery, callback_data: BulkCb, ack: Ack, session: AsyncSession, user: User
) -> None:
    found = await own_campaign(query, ack, session, user, callback_data.id)
    if found is None:
        return
    await ack()
    message, campaign = found
    await show_card(message, session, user.id, campaign.id, edit=False)
