"""/balance, /prices (no token needed), /services [text] and /plans [service]."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.clients import Clients
from bot.api.gotsms import GotSMSClient, Ref
from bot.db.models import Service, User
from bot.db.rent_watch import ServicePickRepo
from bot.handlers.gotsms.common import busy, stale, target, unpack
from bot.handlers.util import show
from bot.keyboards import gotsms as kb
from bot.keyboards.callbacks import MenuCb
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.services.gotsms import (
    SERVICES_PAGE,
    PlanView,
    clean_search,
    find_service,
    keep_search,
    load_plans,
    pages_of,
    recall_search,
)
from bot.texts.gotsms import (
    balance_text,
    first_services_note,
    pinned_note,
    plans_text,
    price_pages,
    prices_text,
    services_text,
)

FIRST_PINNED = 6  # the most ⭐ services /rent shows above its list
FIRST_RECENT = 4  # the most services rented lately shown there besides the pinned ones


@dataclass(frozen=True)
class Picks:
    """The user whose ⭐ and last rented services /rent shows first."""

    session: AsyncSession
    user_id: int


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
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        search = await recall_search(state, callback_data.q)
        if search is None or callback_data.m not in (kb.PICK_PLANS, kb.PICK_RENT, kb.PICK_MESSAGES):
            await stale(ack)
            return
        await ack()
        if (message := target(query)) is not None:
            await show_services(
                message,
                gotsms,
                callback_data.m,
                callback_data.p,
                search,
                callback_data.q,
                picks=Picks(session, user.id),
            )

    @r.message(Command("plans"))
    async def plans_command(
        message: Message, command: CommandObject, state: FSMContext, gotsms: GotSMSClient
    ) -> None:
        await plans_or_pick(message, state, gotsms, kb.PICK_PLANS, clean_search(command.args))

    @r.callback_query(kb.PlansCb.filter(F.p >= 1))
    async def plans_view(
        query: CallbackQuery,
        callback_data: kb.PlansCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        service_id = plans_service(callback_data)
        if service_id is None:
            await stale(ack)
            return
        await ack()
        if (message := target(query)) is not None:
            await show_plans(
                message, gotsms, callback_data, service_id, picks=Picks(session, user.id)
            )

    @r.callback_query(kb.PinCb.filter(F.on.in_({0, 1}) & (F.m == kb.PICK_RENT) & (F.p >= 1)))
    async def pin_pressed(
        query: CallbackQuery,
        callback_data: kb.PinCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        view = kb.PlansCb(**callback_data.model_dump(exclude={"on"}))
        service_id = plans_service(view)
        message = target(query)
        if service_id is None or message is None:
            await stale(ack)
            return
        on = callback_data.on == 1
        await ack(pinned_note(on))
        async with busy(message):
            found = await load_plans(gotsms, view, service_id)
            name = found.service or (await any_plan_service(gotsms, service_id) if on else "")
        await ServicePickRepo(session).pin(user.id, service_id, name, on)
        await render_plans(message, view, found, on)

    return r


async def any_plan_service(gotsms: GotSMSClient, service_id: str) -> str:
    """The service's name when the filters shown match none of its plans."""
    found = await gotsms.plans(service_id=service_id, per_page=1)
    return found.data[0].service.name if found.data else ""


def plans_service(view: kb.PlansCb) -> str | None:
    """The service of a plans view, or None when the button was not made by this bot."""
    ids = unpack(view.s)
    if (
        ids is None
        or view.d not in ("", *kb.DURATIONS)
        or view.b not in ("", *kb.BILLINGS)
        or (view.c and unpack(view.c) is None)
    ):
        return None
    return ids[0]


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
    picks: Picks | None = None,
) -> None:
    """A page of services; in /rent, page 1 without a search starts with the user's ⭐ and last
    rented services."""
    async with busy(message):
        found = await gotsms.services(search=search or None, page=page, per_page=SERVICES_PAGE)
    pages = pages_of(found.meta.total, SERVICES_PAGE)
    page = min(page, pages)
    first: list[tuple[Ref, bool]] = []
    if picks is not None and mode == kb.PICK_RENT and page == 1 and not search:
        chosen = await ServicePickRepo(picks.session).first(
            picks.user_id, FIRST_PINNED, FIRST_RECENT
        )
        first = [(Ref(id=p.service_id, name=p.name), bool(p.pinned)) for p in chosen]
    text = services_text(search, found.meta.total, mode)
    if first:
        text += "\n" + first_services_note()
    await show(message, text, kb.services(found.data, mode, page, pages, q, first), edit=edit)


async def show_plans(
    message: Message,
    gotsms: GotSMSClient,
    view: kb.PlansCb,
    service_id: str,
    *,
    edit: bool = True,
    picks: Picks | None = None,
) -> None:
    """The plans of a service; in /rent with its ⭐ button."""
    async with busy(message):
        found = await load_plans(gotsms, view, service_id)
    pinned: bool | None = None
    if picks is not None and view.m == kb.PICK_RENT:
        pinned = await ServicePickRepo(picks.session).is_pinned(picks.user_id, service_id)
    await render_plans(message, view, found, pinned, edit=edit)


async def render_plans(
    message: Message, view: kb.PlansCb, found: PlanView, pinned: bool | None, *, edit: bool = True
) -> None:
    view = view.model_copy(update={"p": min(max(1, view.p), found.pages)})
    name = found.service or _("this service")
    text = plans_text(name, found.items, found.total, renting=view.m == kb.PICK_RENT)
    markup = kb.plans(found.items, view, found.countries, found.pages, pinned)
    await show(message, text, markup, edit=edit)


async def plans_or_pick(
    message: Message,
    state: FSMContext,
    gotsms: GotSMSClient,
    mode: str,
    text: str,
    picks: Picks | None = None,
) -> None:
    """A service typed after the command opens its plans; otherwise a service picker."""
    if text:
        async with busy(message):
            service, count = await find_service(gotsms, text)
        if service is not None:
            view = kb.PlansCb(m=mode, s=kb.short_id(service.id))
            await show_plans(message, gotsms, view, service.id, edit=False, picks=picks)
            return
        if count == 0:
            await message.answer(
                _("No service matches «{text}». Pick one from the list:").format(text=escape(text))
            )
            text = ""
    q = await keep_search(state, text)
    await show_services(message, gotsms, mode, 1, text, q, edit=False, picks=picks)
