"""Routers by topic. Built fresh on every call: a Router can belong to one dispatcher only."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from aiogram.types import CallbackQuery

from bot.handlers import (
    admin,
    admin_broadcast,
    common,
    forget,
    gosms,
    gotsms,
    groups,
    language,
    notify,
    tokens,
)


def get_routers() -> list[Router]:
    routers = [
        groups.router(),  # first: in groups almost nothing is answered
        admin.router(),  # for anyone but the operators its filters fail: an unknown command
        common.router(),
        admin_broadcast.router(),  # /admin broadcast, before /admin itself; admins only
        language.router(),
        tokens.router(),
        forget.router(),
        notify.router(),
        *gotsms.get_routers(),
        *gosms.get_routers(),
        common.fallback_router(),
    ]
    for router in routers:
        skip_foreign_presses(router)
        run_filters_inline(router)
    return routers


def skip_foreign_presses(router: Router) -> bool:
    """A router whose every button handler takes callback data of its own kinds (CallbackData
    filters) is skipped at once for a press of any other kind; whether it was.

    aiogram otherwise tries each of the router's handlers on every press that reaches it, and a
    rent card's button passes a dozen routers with thirty handlers on its way.
    """
    observer = router.callback_query
    if router.sub_routers or not observer.handlers:
        return False
    kinds: set[type[CallbackData]] = set()
    for handler in observer.handlers:
        takes = {
            item.callback.callback_data
            for item in handler.filters or ()
            if isinstance(item.callback, CallbackQueryFilter)
        }
        if not takes:
            return False  # this handler may take any press
        kinds |= takes
    observer.filter(PressOf(kinds))
    return True


class PressOf(Filter):
    """A press whose callback data is of one of these kinds by its prefix, as
    `CallbackData.unpack` reads it (the part before the first separator)."""

    def __init__(self, kinds: Iterable[type[CallbackData]]) -> None:
        kinds = tuple(kinds)
        self.prefixes = frozenset(kind.__prefix__ for kind in kinds)
        self.starts = tuple(kind.__prefix__ + kind.__separator__ for kind in kinds)

    async def __call__(self, query: CallbackQuery) -> bool:
        data = query.data or ""
        return data.startswith(self.starts) or data in self.prefixes


def run_filters_inline(router: Router) -> int:
    """Every plain-function filter of the router tree runs on the event loop; how many changed.

    aiogram runs a filter that is not a coroutine (a magic filter such as `F.text`, a `State`,
    a plain predicate) through `asyncio.to_thread`: a thread hop for each one it tries, on every
    update, which cost more than the handlers themselves. Ours are all cheap pure checks of the
    event, so they are called in place instead.
    """
    changed = 0
    for each in router.chain_tail:
        for observer in each.observers.values():
            handlers = [*observer.handlers, observer._handler]  # _handler: the router's own filters
            changed += _inline(f for h in handlers for f in h.filters or ())
    return changed


def _inline(filters: Iterable[FilterObject]) -> int:
    changed = 0
    for item in filters:
        if not item.awaitable:
            item.callback = _in_place(item.callback)
            item.awaitable = True
            changed += 1
    return changed


def _in_place(check: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(check)
    async def call(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return call
