"""Routers by topic. Built fresh on every call: a Router can belong to one dispatcher only."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import common, language, tokens


def get_routers() -> list[Router]:
    return [common.router(), language.router(), tokens.router(), common.fallback_router()]
