"""gotsms routers: the public price list first, then everything behind the GotSMS token."""

from __future__ import annotations

from aiogram import Router

from bot.handlers.gotsms import account, messages, rent, rents, share


def get_routers() -> list[Router]:
    return [
        account.public_router(),
        account.router(),
        rent.router(),
        rents.router(),
        share.router(),
        messages.router(),
    ]
