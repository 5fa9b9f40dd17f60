"""The routers: which are skipped at once for a press of another kind, and which never are."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery, User

from bot.handlers import PressOf, get_routers
from bot.keyboards.callbacks import MenuCb
from bot.keyboards.gotsms import RentCb, ServicesCb


def press(data: str) -> CallbackQuery:
    user = User(id=5, is_bot=False, first_name="U")
    return CallbackQuery(id="1", from_user=user, chat_instance="1", data=data)


def root_filters(name: str) -> list[Any]:
    router = next(r for r in get_routers() if r.name == name)
    return [item.callback for item in router.callback_query._handler.filters or ()]


async def test_a_router_of_its_own_kinds_lets_only_those_presses_through() -> None:
    (only,) = [f for f in root_filters("gotsms.rents") if isinstance(f, PressOf)]
    card = RentCb(a="o", id="abcdefgh", st="a", p=1).pack()
    assert await only(press(card))
    assert await only(press(MenuCb(action="rents").pack()))
    assert not await only(press("grcx:o:abcdefgh:a:1"))  # another prefix that begins alike
    assert not await only(press(ServicesCb(m="", p=1, q="").pack()))  # the services list's
    assert not await only(press(""))


def test_routers_with_a_handler_for_any_press_are_never_skipped() -> None:
    for name in ("groups", "fallback"):
        assert not any(isinstance(f, PressOf) for f in root_filters(name))
