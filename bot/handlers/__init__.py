"""Routers by topic. Built fresh on every call: a Router can belong to one dispatcher only."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import common, gosms, gotsms, groups, language, notify, tokens


def get_routers() -> list[Router]:
    return [
        groups.router(),  # first: in groups almost nothing is answered
        common.router(),
        language.router(),
        tokens.router(),
        notify.router(),
        *gotsms.get_routers(),
        *gosms.get_routers(),
        common.fallback_router(),
    ]
