"""Typed callback data. Every packed value stays within Telegram's 64 bytes."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData

from bot.db.models import Service


class LogoutTarget(StrEnum):
    GOSMS = "gosms"
    GOTSMS = "gotsms"
    ALL = "all"


class MenuCb(CallbackData, prefix="menu"):
    action: str


class LangCb(CallbackData, prefix="lang"):
    code: str


class TokenCb(CallbackData, prefix="tok"):
    service: Service


class LogoutCb(CallbackData, prefix="out"):
    target: LogoutTarget


class ConfirmCb(CallbackData, prefix="cf"):
    """Yes/No of a one-shot confirmation; `id` points at the stored action."""

    action: str
    id: str
    ok: bool


class NotifyCb(CallbackData, prefix="nt"):
    action: str
    kind: str
