"""How the no-code job's pushes look (bot/poller/nocode.py); registered in bot/poller/pushes.py."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.api.lenient import to_money
from bot.db.models import RefundState
from bot.keyboards.gotsms import RentCb, short_id
from bot.poller.nocode import REFUND, REMIND
from bot.poller.pushes import Push, Renderer
from bot.texts import money


def no_code_push(payload: Mapping[str, Any]) -> Push:
    minutes = int(payload.get("minutes") or 0)
    text = ngettext(
        "⌛ No code on {phone} ({service}) after {n} minute.",
        "⌛ No code on {phone} ({service}) after {n} minutes.",
        minutes,
    ).format(n=minutes, **_names(payload))
    hint = _(
        "You can refund the rental while GotSMS allows it, wake the number up, or keep waiting."
    )
    rent = short_id(str(payload["rent_id"]))
    buttons = [
        InlineKeyboardButton(text="↩️ " + _("Refund"), callback_data=RentCb(a="f", id=rent).pack()),
        InlineKeyboardButton(
            text="⏰ " + _("Wake up"), callback_data=RentCb(a="w", id=rent).pack()
        ),
    ]
    keep = InlineKeyboardButton(
        text="⏳ " + _("Keep waiting"), callback_data=RentCb(a="k", id=rent).pack()
    )
    return Push(text + "\n" + hint, InlineKeyboardMarkup(inline_keyboard=[buttons, [keep]]))


def refund_push(payload: Mapping[str, Any]) -> Push:
    names = _names(payload)
    state = str(payload.get("state") or "")
    price = to_money(payload.get("price"))
    if state == RefundState.REFUNDED:
        if price is None:
            text = _("↩️ No code came on {phone} ({service}), so I refunded the rental.")
        else:
            text = _(
                "↩️ No code came on {phone} ({service}), so I refunded the rental: {price} is "
                "back on your balance."
            )
        text = text.format(price=money(price) if price is not None else "", **names)
    elif state == RefundState.UNAVAILABLE:
        text = _(
            "⚠️ No code came on {phone} ({service}), but GotSMS did not allow a refund of this "
            "rental (it may be too old for one, or a message has just come). The rental stays "
            "active and nothing was refunded."
        ).format(**names)
    elif state == RefundState.FAILED:
        text = _(
            "❌ The automatic refund for {phone} ({service}) did not go through. The rental is "
            "still active: open its card to refund it yourself while GotSMS allows it."
        ).format(**names)
    else:
        text = _(
            "❓ I asked GotSMS to refund {phone} ({service}) because no code came, but I do not "
            "know whether it did. Look at /rents: a refunded rental is among the finished ones, "
            "and the money is back on your balance."
        ).format(**names)
    card = InlineKeyboardButton(
        text="📋 " + _("Open rental"),
        callback_data=RentCb(a="o", id=short_id(str(payload["rent_id"]))).pack(),
    )
    return Push(text, InlineKeyboardMarkup(inline_keyboard=[[card]]))


def _names(payload: Mapping[str, Any]) -> dict[str, str]:
    return {
        "phone": escape(str(payload.get("phone") or "")),
        "service": escape(str(payload.get("service") or "GotSMS")),
    }


RENDERERS: dict[str, Renderer] = {REMIND: no_code_push, REFUND: refund_push}
