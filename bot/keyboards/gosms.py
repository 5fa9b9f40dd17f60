"""GoSMS callback data and keyboards. Prefixes start with `s` (SMS) or `d` (devices).

Ids are never shortened: an SMS id (24-hex ObjectID or a 36-char UUID) fits whole, and a device
is referred to by its local row id, checked against the presser on every press.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot.api.gosms import Sms
from bot.db.models import Device
from bot.keyboards.common import pager_row
from bot.keyboards.grid import Keyboard
from bot.texts.gosms import STATUS_ICONS

# A local row id fits SQLite's INTEGER; a forged button with a bigger one is refused as stale.
ROW_MAX = 2**63 - 1

# ConfirmCb actions of the GoSMS side
SEND = "ss"
SMS_DELETE = "sd"
DEVICE_DELETE = "dd"


class SmsPageCb(CallbackData, prefix="sl"):
    """A page of /sms; `q` is the key of the search kept in the chat's FSM data ("" = none)."""

    page: int
    q: str = ""


class SmsCb(CallbackData, prefix="sc"):
    """An SMS card: `o` open, `r` refresh, `d` delete (asks first). `page` 0: not from a list."""

    action: str
    id: str
    page: int = 0
    q: str = ""


class SendDeviceCb(CallbackData, prefix="sv"):
    """The device step of /send: a saved device's row id, 0 for any device."""

    row: int


class SendSimCb(CallbackData, prefix="sm"):
    """The SIM step of /send: SIM 1 or 2, 0 for the device's default."""

    slot: int


class DeviceCb(CallbackData, prefix="dv"):
    """A device card: `o` open, `r` refresh, `on`/`off`, `x` delete from GoSMS, `f` remove from
    the bot."""

    action: str
    row: int


class DevicesCb(CallbackData, prefix="dl"):
    """The device list: `list` show it, `add` ask for an id."""

    action: str


def sms_list(items: Sequence[Sms], page: int, pages: int, q: str) -> InlineKeyboardMarkup:
    builder = Keyboard()
    first = (page - 1) * 10 + 1
    for number, sms in enumerate(items, start=first):
        icon = STATUS_ICONS.get(sms.status, "")
        builder.button(
            text=f"{number} {icon}".strip(),
            callback_data=SmsCb(action="o", id=sms.id, page=page, q=q),
        )
    builder.adjust(5)
    pager_row(builder, page, pages, lambda p: SmsPageCb(page=p, q=q))
    return builder.as_markup()


def sms_card(sms_id: str, *, page: int = 0, q: str = "") -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(
        text="🔄 " + _("Refresh"), callback_data=SmsCb(action="r", id=sms_id, page=page, q=q)
    )
    builder.button(
        text="🗑 " + _("Delete"), callback_data=SmsCb(action="d", id=sms_id, page=page, q=q)
    )
    if page:
        builder.button(text="‹ " + _("Back to the list"), callback_data=SmsPageCb(page=page, q=q))
    builder.adjust(2, 1)
    return builder.as_markup()


def send_devices(devices: Sequence[Device]) -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text="🎲 " + _("Any device"), callback_data=SendDeviceCb(row=0))
    for device in devices:
        builder.button(
            text="📱 " + (device.name or device.device_id),
            callback_data=SendDeviceCb(row=device.id),
        )
    builder.adjust(1)
    return builder.as_markup()


def send_sims() -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text=_("Default SIM"), callback_data=SendSimCb(slot=0))
    builder.button(text=_("SIM 1"), callback_data=SendSimCb(slot=1))
    builder.button(text=_("SIM 2"), callback_data=SendSimCb(slot=2))
    builder.adjust(1, 2)
    return builder.as_markup()


def devices(saved: Sequence[Device]) -> InlineKeyboardMarkup:
    builder = Keyboard()
    for device in saved:
        builder.button(
            text="📱 " + (device.name or device.device_id),
            callback_data=DeviceCb(action="o", row=device.id),
        )
    builder.button(text="➕ " + _("Add a device"), callback_data=DevicesCb(action="add"))
    builder.adjust(1)
    return builder.as_markup()


def device_card(row: int, active: bool) -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text="🔄 " + _("Refresh"), callback_data=DeviceCb(action="r", row=row))
    if active:
        builder.button(text="⏸ " + _("Turn off"), callback_data=DeviceCb(action="off", row=row))
    else:
        builder.button(text="▶️ " + _("Turn on"), callback_data=DeviceCb(action="on", row=row))
    delete = _("Delete from GoSMS")  # a name of its own: ruff reads "Delete from" as SQL
    builder.button(text="🗑 " + delete, callback_data=DeviceCb(action="x", row=row))
    builder.button(
        text="🧹 " + _("Remove from the bot"), callback_data=DeviceCb(action="f", row=row)
    )
    builder.button(text="‹ " + _("All devices"), callback_data=DevicesCb(action="list"))
    builder.adjust(2, 2, 1)
    return builder.as_markup()
