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


class BulkAction(StrEnum):
    """The buttons of /bulk: its dialog, the progress card and the list of campaigns."""

    PASTE_OR_FILE = "src"
    TEXT_OF_ROWS = "rowtext"
    DEVICE_ANY = "any"
    DEVICE_ONE = "one"
    DEVICE_SPREAD = "spread"
    SIM = "sim"
    DROPPED = "dropped"  # every dropped row, as a file
    OPEN = "open"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"  # asks first
    REPORT = "report"
    RETRY = "retry"  # asks first
    RETRY_ALL = "retryu"  # the retry question again, unknown rows included
    LIST = "list"


class BulkCb(CallbackData, prefix="bk"):
    """`id`: a campaign's, a saved device's row or a SIM slot, by `action`; `page` of the list."""

    action: BulkAction
    id: int = 0
    page: int = 0
