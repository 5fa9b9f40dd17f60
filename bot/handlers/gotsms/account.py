"""/balance, /prices (no token needed), /services [text] and /plans [service]."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.api.clients import Clients
from bot.api.gotsms import GotSMSClient
from bot.db.models import Service
from bot.handlers.gotsms.common import busy, stale, target, unpack
from bot.handlers.util import show
from bot.keyboards import gotsms as kb
from bot.keyboards.callbacks import MenuCb
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.services.gotsms import (
    SERVICES_PAGE,
    clean_search,
    find_service,
    keep_search,
    load_plans,
    pages_of,
    recall_search,
)
from bot.texts.gotsms import balance_text, plans_text, price_pages, prices_text, services_text


def public_router() -> Router:
    """The public price list: works without a token."""
    r = Router(name="gotsms.prices")

    @r.message(Command("prices"))
    async def prices_command(message: Message, clients: Clients) -> None:
        await show_prices(message, clients, 1, edit=False)

    @r.callback_query(kb.PricesCb.filter(F.p >= 1))
    async def prices_page(
        query: CallbackQuery, callback_data: kb.PricesCb, ack: Ack, clients: Clients
    ) -> None:
        await ack()
        if (message := target(query)) is not None:
            await show_prices(message, clients, callback_data.p, edit=True)

    return r


async def show_prices(message: Message, clients: Clients, page: int, *, edit: bool) -> None:
    async with busy(message):
        groups = await clients.gotsms().pricelist()
    pages = price_pages(groups) or [_("The price list is empty right now.")]
    page = min(max(1, page), len(pages))
    text = prices_text(pages[page - 1], page, len(pages))
    await show(message, text, kb.prices(page, len(pages)), edit=edit)


def router() -> Router:
    r = Router(name="gotsms.account")
    r.message.middleware(NeedsToken(Service.GOTSMS))
    r.callback_query.middleware(NeedsToken(Service.GOTSMS))

    @r.message(Command("balance"))
    async def balance_command(message: Message, gotsms: GotSMSClient) -> None:
        await show_balance(message, gotsms)

    @r.callback_query(MenuCb.filter(F.action == "balance"))
    async def balance_button(query: CallbackQuery, ack: Ack, gotsms: GotSMSClient) -> None:
        await ack()
        if (message := target(query)) is not None:
            await show_balance(message, gotsms)

    @r.message(Command("services"))
    async def services_command(
        message: Message, command: CommandObject, state: FSMContext, gotsms: GotSMSClient
    ) -> None:
        search = clean_search(command.args)
        q = await keep_search(state, search)
        await show_services(message, gotsms, kb.PICK_PLANS, 1, search, q, edit=False)

    @r.callback_query(kb.ServicesCb.filter(F.p >= 1))
    async def services_page(
        query: CallbackQuery,
        callback_data: kb.ServicesCb,
        ack: Ack,
        state: FSMContext,
        gotsms: GotSMSClient,
    ) -> None:
        search = await recall_search(state, callback_data.q)
        if search is None or callback_data.m not in (kb.PICK_PLANS, kb.PICK_RENT, kb.PICK_MESSAGES):
            await stale(ack)
            return
        await ack()
        if (message := target(query)) is not None:
            await show_services(
                message, gotsms, callback_data.m, callback_data.p, search, callback_data.q
            )

    @r.message(Command("plans"))
    async def plans_command(
        message: Message, command: CommandObject, state: FSMContext, gotsms: GotSMSClient
    ) -> None:
        await plans_or_pick(message, state, gotsms, kb.PICK_PLANS, clean_search(command.args))

    @r.callback_query(kb.PlansCb.filter(F.p >= 1))
    async def plans_view(
        query: CallbackQuery, callback_data: kb.PlansCb, ack: Ack, gotsms: GotSMSClient
    ) -> None:
        ids = unpack(callback_data.s)
        if (
            ids is None
            or callback_data.d not in ("", *kb.DURATIONS)
            or callback_data.b not in ("", *kb.BILLINGS)
            or (callback_data.c and unpack(callback_data.c) is None)
        ):
            await stale(ack)
            return
        await ack()
        if (message := target(query)) is not None:
            await show_plans(message, gotsms, callback_data, ids[0])

    return r


async def show_balance(message: Message, gotsms: GotSMSClient) -> None:
    async with busy(message):
        account = await gotsms.account()
    await message.answer(balance_text(account.balance), reply_markup=kb.balance_menu())


async def show_services(
    message: Message,
    gotsms: GotSMSClient,
    mode: str,
    page: int,
    search: str,
    q: str,
    *,
    edit: bool = True,
) -> None:
    async with busy(message):
        found = await gotsms.services(search=search or None, page=page, per_page=SERVICES_PAGE)
    pages = pages_of(found.meta.total, SERVICES_PAGE)
    await show(
        message,
        services_text(search, found.meta.total, mode),
        kb.services(found.data, mode, min(page, pages), pages, q),
        edit=edit,
    )


async def show_plans(
    message: Message, gotsms: GotSMSClient, view: kb.PlansCb, service_id: str, *, edit: bool = True
) -> None:
    async with busy(message):
        found = await load_plans(gotsms, view, service_id)
    view = view.model_copy(update={"p": min(max(1, view.p), found.pages)})
    name = found.service or _("this service")
    text = plans_text(name, found.items, found.total, renting=view.m == kb.PICK_RENT)
    await show(message, text, kb.plans(found.items, view, found.countries, found.pages), edit=edit)


async def plans_or_pick(
    message: Message, state: FSMContext, gotsms: GotSMSClient, mode: str, text: str
) -> None:
    """A service typed after the command opens its plans; otherwise a service picker."""
    if text:
        async with busy(message):
            service, count = await find_service(gotsms, text)
        if service is not None:
            view = kb.PlansCb(m=mode, s=kb.short_id(service.id))
            await show_plans(message, gotsms, view, service.id, edit=False)
            return
        if count == 0:
            await message.answer(
                _("No service matches «{text}». Pick one from the list:").format(text=escape(text))
            )
            text = ""
    q = await keep_search(state, text)
    await show_services(message, gotsms, mode, 1, text, q, edit=False)
