"""Keyboard builders for the general commands."""

from __future__ import annotations

from collections.abc import Callable

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot.db.models import Service
from bot.keyboards.callbacks import ConfirmCb, LangCb, LogoutCb, LogoutTarget, MenuCb, TokenCb
from bot.keyboards.grid import Keyboard
from bot.texts import service_name

LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}


def main_menu(connected: set[Service]) -> InlineKeyboardMarkup:
    """The service buttons of what is connected, then the general ones, two a row."""
    builder = Keyboard()
    buttons: list[tuple[str, str]] = []
    if Service.GOTSMS in connected:
        buttons += [
            ("📱 " + _("Rent a number"), "rent"),
            ("🗂 " + _("My rentals"), "rents"),
            ("🔢 " + _("Codes"), "codes"),
            ("💰 " + _("Balance"), "balance"),
        ]
    if Service.GOSMS in connected:
        buttons += [
            ("✉️ " + _("Send SMS"), "send"),
            ("📣 " + _("Campaign"), "bulk"),
            ("📨 " + _("My SMS"), "sms"),
            ("📲 " + _("Devices"), "devices"),
        ]
    buttons += [
        ("🔑 " + _("Connect a token"), "token"),
        ("🔔 " + _("Notifications"), "notify"),
        ("🌐 " + _("Language"), "lang"),
        ("❓ " + _("Help"), "help"),
    ]
    if connected:
        buttons.append(("🚪 " + _("Disconnect a token"), "logout"))
    for text, action in buttons:
        builder.button(text=text, callback_data=MenuCb(action=action))
    builder.adjust(2)
    return builder.as_markup()


def languages(current: str) -> InlineKeyboardMarkup:
    builder = Keyboard()
    for code, name in LANGUAGE_NAMES.items():
        mark = "✅ " if code == current else ""
        builder.button(text=mark + name, callback_data=LangCb(code=code))
    return builder.as_markup()


def token_services() -> InlineKeyboardMarkup:
    builder = Keyboard()
    for service in (Service.GOTSMS, Service.GOSMS):
        builder.button(text=service_name(service), callback_data=TokenCb(service=service))
    return builder.as_markup()


def logout_targets(connected: set[Service]) -> InlineKeyboardMarkup:
    builder = Keyboard()
    for service in (Service.GOTSMS, Service.GOSMS):
        if service in connected:
            target = LogoutTarget(service.value)
            builder.button(text=service_name(service), callback_data=LogoutCb(target=target))
    if len(connected) > 1:
        builder.button(text=_("Both"), callback_data=LogoutCb(target=LogoutTarget.ALL))
    builder.adjust(2, 1)
    return builder.as_markup()


def confirm(action: str, confirmation_id: str, yes: str) -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text=yes, callback_data=ConfirmCb(action=action, id=confirmation_id, ok=True))
    builder.button(
        text=_("Cancel"), callback_data=ConfirmCb(action=action, id=confirmation_id, ok=False)
    )
    return builder.as_markup()


def pager_row(
    builder: Keyboard, page: int, pages: int, make: Callable[[int], CallbackData]
) -> None:
    """Adds a "‹ 2/5 ›" row; nothing when everything fits on one page."""
    if pages <= 1:
        return
    row = []
    if page > 1:
        row.append(InlineKeyboardButton(text="‹", callback_data=make(page - 1).pack()))
    row.append(InlineKeyboardButton(text=f"{page}/{pages}", callback_data=make(page).pack()))
    if page < pages:
        row.append(InlineKeyboardButton(text="›", callback_data=make(page + 1).pack()))
    builder.row(*row)
