"""GotSMS logic the handlers share: finding a rent, loading a plan view, kept searches."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from aiogram.fsm.context import FSMContext

from bot.api.gotsms import GotSMSClient, Message, Plan, Ref, Rent
from bot.api.lenient import to_count, to_money, to_text
from bot.keyboards.gotsms import BILLINGS, DURATIONS, FINISHED, PlansCb, short_id

PLANS_PAGE = 8
RENTS_PAGE = 8
SERVICES_PAGE = 12
MESSAGES_PAGE = 8
CODES_PAGE = 8
ALL_PLANS = 100  # one call fetches every plan of a service
MONTH_LENGTHS = (1, 3, 6, 12)
SEARCHES = "searches"
MAX_SEARCHES = 20
MAX_SEARCH = 64
AREA_CODE = re.compile(r"[0-9]{2,5}")  # ASCII only: `\d` would take "١٢٣" too
PHONE_MAX = 20


def views(state: FSMContext) -> FSMContext:
    """A store beside the dialog state: /cancel and /start do not wipe the kept searches."""
    return FSMContext(storage=state.storage, key=replace(state.key, destiny="gotsms"))


async def keep_search(state: FSMContext, search: str) -> str:
    """Keeps a search text; the buttons carry only its 8-hex key."""
    if not search:
        return ""
    key = hashlib.sha256(search.encode()).hexdigest()[:8]
    store = views(state)
    searches: dict[str, str] = dict((await store.get_data()).get(SEARCHES) or {})
    searches.pop(key, None)
    searches[key] = search
    while len(searches) > MAX_SEARCHES:
        searches.pop(next(iter(searches)))
    await store.update_data({SEARCHES: searches})
    return key


async def recall_search(state: FSMContext, key: str) -> str | None:
    """The kept search ("" for no key); None when it is gone (a restart, a forged key)."""
    if not key:
        return ""
    found = ((await views(state).get_data()).get(SEARCHES) or {}).get(key)
    return found if isinstance(found, str) else None


def clean_search(text: str | None) -> str:
    return " ".join((text or "").split())[:MAX_SEARCH]


def phone_digits(text: str) -> str:
    """The digits of a typed phone as ASCII ("٣" → "3"); "²" and other non-decimals are dropped."""
    return "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())[:PHONE_MAX]


def pages_of(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def fingerprint(items: Iterable[Message]) -> str:
    """8 hex characters naming a set of messages (order does not matter)."""
    joined = ",".join(sorted(m.id for m in items))
    return hashlib.sha256(joined.encode()).hexdigest()[:8]


async def find_service(client: GotSMSClient, text: str) -> tuple[Ref | None, int]:
    """The service a user typed: an exact name, or the only match. Also the match count."""
    found = await client.services(search=text, per_page=100)
    exact = [s for s in found.data if s.name.lower() == text.lower()]
    if exact:
        return exact[0], len(found.data)
    if len(found.data) == 1:
        return found.data[0], 1
    return None, found.meta.total


async def find_rent(
    client: GotSMSClient, rent_id: str, status: str = "", page: int = 1
) -> Rent | None:
    """There is no "get one rent" call: look on the page it was shown on, then in the newest."""
    wanted = "finished" if status == FINISHED else "active"
    listed = await client.rents(status=wanted, page=page, per_page=RENTS_PAGE)
    for rent in listed.data:
        if rent.id == rent_id:
            return rent
    everything = await client.rents(per_page=100)
    return next((rent for rent in everything.data if rent.id == rent_id), None)


@dataclass(frozen=True)
class PlanView:
    service: str
    items: list[Plan]
    countries: list[Ref]
    total: int
    pages: int


async def load_plans(client: GotSMSClient, view: PlansCb, service_id: str) -> PlanView:
    """One call: every plan of the service with the API's length and billing filters;
    the country filter and the pages are applied here (the buttons need every country)."""
    found = await client.plans(
        service_id=service_id,
        duration_type=DURATIONS.get(view.d),
        billing_type=BILLINGS.get(view.b),
        per_page=ALL_PLANS,
    )
    countries: dict[str, Ref] = {}
    for plan in found.data:
        countries.setdefault(plan.country.id, plan.country)
    chosen = [p for p in found.data if not view.c or short_id(p.country.id) == view.c]
    pages = pages_of(len(chosen), PLANS_PAGE)
    page = min(max(1, view.p), pages)
    start = (page - 1) * PLANS_PAGE
    name = found.data[0].service.name if found.data else ""
    return PlanView(
        service=name,
        items=chosen[start : start + PLANS_PAGE],
        countries=sorted(countries.values(), key=lambda c: c.name),
        total=len(chosen),
        pages=pages,
    )


async def find_plan(client: GotSMSClient, service_id: str, plan_id: str) -> Plan | None:
    found = await client.plans(service_id=service_id, per_page=ALL_PLANS)
    return next((p for p in found.data if p.id == plan_id), None)


@dataclass(frozen=True)
class MoveOption:
    plan_id: str
    months: int
    price: Decimal
    country: str = ""


async def move_options(client: GotSMSClient, rent: Rent) -> list[MoveOption]:
    """The 1/3/6/12-month plans a daily rent can move to: the rent's own `transition_options`
    when any of them can be read, else the month plans of its service and country (one call)."""
    listed = [option for raw in rent.transition_options if (option := _listed(raw)) is not None]
    if listed:
        return sorted(listed, key=lambda o: o.months)
    found = await client.plans(service_id=rent.service.id, per_page=ALL_PLANS)
    own = next((plan for plan in found.data if plan.id == rent.plan.id), None)
    options = [
        MoveOption(plan.id, plan.duration_in_type, plan.price, "" if own else plan.country.name)
        for plan in found.data
        if plan.duration_type == "month"
        and plan.duration_in_type in MONTH_LENGTHS
        and plan.billing_type == "duration"
        and (own is None or plan.country.id == own.country.id)
    ]
    return sorted(options, key=lambda o: (o.months, o.country))


def _listed(raw: object) -> MoveOption | None:
    """One entry of `transition_options`, named by `id` or `plan_id`; None when its plan or
    length cannot be read (some answers give the length only as a translated text)."""
    if not isinstance(raw, dict):
        return None
    plan_id = to_text(raw.get("id") or raw.get("plan_id"))
    months = to_count(raw.get("duration_in_type"))
    price = to_money(raw.get("price"))
    if not plan_id or price is None or raw.get("duration_type") != "month":
        return None
    return MoveOption(plan_id, months, price) if months in MONTH_LENGTHS else None
