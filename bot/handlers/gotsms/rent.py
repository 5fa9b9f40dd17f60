"""/rent [service]: service → plan → optional area code → confirmation → one rent."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.errors import ApiError
from bot.api.gotsms import GotSMSClient, Plan, Rent
from bot.db.models import Service, User
from bot.db.rent_watch import RentWatchRepo, ServicePickRepo
from bot.db.repo import NotificationRepo
from bot.handlers.confirm import question, settle
from bot.handlers.gotsms.account import Picks, plans_or_pick, show_services
from bot.handlers.gotsms.common import busy, stale, target, unpack
from bot.handlers.util import show
from bot.keyboards import gotsms as kb
from bot.keyboards.callbacks import ConfirmCb, MenuCb
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.poller.nocode import watch_deadline
from bot.services.gotsms import AREA_CODE, clean_search, find_plan
from bot.services.watch import watch_fresh_rent
from bot.texts import api_error_text, money
from bot.texts.gotsms import area_question, low_balance_text, rent_done, rent_question

PLAN_KEY = "gotsms_plan"


class RentFlow(StatesGroup):
    area_code = State()


def router() -> Router:
    r = Router(name="gotsms.rent")
    r.message.middleware(NeedsToken(Service.GOTSMS))
    r.callback_query.middleware(NeedsToken(Service.GOTSMS))

    @r.message(Command("rent"))
    async def rent_command(
        message: Message,
        command: CommandObject,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        await state.clear()
        text = clean_search(command.args)
        picks = Picks(session, user.id)
        await plans_or_pick(message, state, gotsms, kb.PICK_RENT, text, picks)

    @r.callback_query(MenuCb.filter(F.action == "rent"))
    async def rent_button(
        query: CallbackQuery,
        ack: Ack,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        await ack()
        await state.clear()
        if (message := target(query)) is not None:
            picks = Picks(session, user.id)
            await show_services(message, gotsms, kb.PICK_RENT, 1, "", "", edit=False, picks=picks)

    @r.callback_query(kb.AgainCb.filter())
    async def rent_again(
        query: CallbackQuery,
        callback_data: kb.AgainCb,
        ack: Ack,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        """A finished rent's service, plan and country as offered now, then the /rent question."""
        ids = unpack(callback_data.s, callback_data.pl)
        message = target(query)
        if ids is None or message is None:
            await stale(ack)
            return
        await ack()
        async with busy(message):
            plan = await find_plan(gotsms, ids[0], ids[1])
        if plan is None:
            await show(
                message,
                _("This plan is not offered any more. Send /rent to choose again."),
                kb.plan_gone(),
            )
            return
        await ask_to_rent(message, state, session, user, gotsms, plan, None, edit=True)

    @r.callback_query(kb.PlanCb.filter())
    async def plan_chosen(
        query: CallbackQuery,
        callback_data: kb.PlanCb,
        ack: Ack,
        state: FSMContext,
        gotsms: GotSMSClient,
    ) -> None:
        ids = unpack(callback_data.s, callback_data.id)
        if ids is None:
            await stale(ack)
            return
        await ack()
        message = target(query)
        if message is None:
            return
        async with busy(message):
            plan = await find_plan(gotsms, ids[0], ids[1])
        if plan is None:
            await message.answer(
                _("This plan is not offered any more. Send /rent to choose again.")
            )
            return
        await state.set_state(RentFlow.area_code)
        await state.update_data({PLAN_KEY: plan.model_dump(mode="json")})
        await show(message, area_question(plan), kb.area_code())

    @r.message(RentFlow.area_code, F.text, ~F.text.startswith("/"))
    async def area_code_sent(
        message: Message,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        code = (message.text or "").strip()
        if AREA_CODE.fullmatch(code) is None:
            await message.answer(
                _(
                    "An area code is 2 to 5 digits, like <code>212</code>. Send it again, "
                    "or press «Any area code», or /cancel."
                ),
                reply_markup=kb.area_code(),
            )
            return
        plan = await chosen_plan(state)
        if plan is None:
            await message.answer(_("Let's start again: /rent"))
            return
        await ask_to_rent(message, state, session, user, gotsms, plan, code, edit=False)

    @r.message(RentFlow.area_code, ~F.text)
    async def area_code_not_text(message: Message) -> None:
        await message.answer(_("Send the area code as digits, or /cancel."))

    @r.callback_query(kb.AreaCb.filter())
    async def area_code_button(
        query: CallbackQuery,
        callback_data: kb.AreaCb,
        ack: Ack,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        plan = await chosen_plan(state)
        if plan is None or callback_data.a not in ("s", "x"):
            await stale(ack)
            return
        await ack()
        message = target(query)
        if callback_data.a == "x":
            await state.clear()
            if message is not None:
                await show(message, _("Cancelled. Nothing was rented."))
            return
        if message is not None:
            await ask_to_rent(message, state, session, user, gotsms, plan, None, edit=True)

    @r.callback_query(ConfirmCb.filter(F.action == kb.RENT))
    async def rent_confirmed(
        query: CallbackQuery,
        callback_data: ConfirmCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        settled = await settle(query, callback_data, ack, session, user)
        if settled is None:
            return
        payload, message = settled.payload, settled.message
        if not settled.ok:
            await show(message, _("Cancelled. Nothing was rented."))
            return
        try:
            async with busy(message):
                rent = await gotsms.create_rent(payload["plan_id"], payload.get("area_code"))
        except ApiError as error:
            await show(message, "❌ " + api_error_text(error))
            return
        await remember_rent(session, user.id, rent, str(payload["plan_id"]))
        await watch_fresh_rent(session, user.id)
        await show(message, rent_done(rent), kb.rent_result(rent))

    return r


async def remember_rent(session: AsyncSession, user_id: int, rent: Rent, plan_id: str) -> None:
    """The rent's no-code deadline, and its service among the user's last ones (the caller
    commits)."""
    settings = await NotificationRepo(session).get(user_id)
    watch = await RentWatchRepo(session).made(user_id, rent, plan_id=plan_id, settings=settings)
    await watch_deadline(session, user_id, watch.remind_at)
    await ServicePickRepo(session).used(user_id, rent.service.id, rent.service.name)


async def chosen_plan(state: FSMContext) -> Plan | None:
    if await state.get_state() != RentFlow.area_code.state:
        return None
    raw = (await state.get_data()).get(PLAN_KEY)
    return Plan.model_validate(raw) if isinstance(raw, dict) else None


async def ask_to_rent(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    gotsms: GotSMSClient,
    plan: Plan,
    area_code: str | None,
    *,
    edit: bool,
) -> None:
    """The confirmation with the price and the balance as it is now."""
    async with busy(message):
        account = await gotsms.account()
    if account.balance < plan.price:
        await show(
            message, low_balance_text(plan.price, account.balance), kb.low_balance(), edit=edit
        )
        await state.clear()
        return
    payload = {"plan_id": plan.id, "area_code": area_code, "price": str(plan.price)}
    yes = "✅ " + _("Rent for {price}").format(price=money(plan.price))
    asked = await question(session, user.id, kb.RENT, payload, yes)
    await show(message, rent_question(plan, area_code, account.balance), asked.keyboard, edit=edit)
    # Only once the question is shown: when Telegram fails to show it, pressing again works.
    await state.clear()
