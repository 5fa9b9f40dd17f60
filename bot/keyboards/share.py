"""Sharing a rent's codes with a group: the card's button and the list of groups (texts:
bot/texts/share.py)."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot.api.gotsms import Rent
from bot.db.models import GroupOffer, RentWatch
from bot.keyboards.gotsms import ACTIVE, RentCb, short_id
from bot.keyboards.grid import Keyboard

GROUPS = "g"  # the groups offered
LINK = "k"  # share with the group `c`
STOP = "x"  # stop sharing


class ShareCb(CallbackData, prefix="gsh"):
    """A rent's sharing: `a` GROUPS / LINK / STOP, `id` the rent (short), `c` the group's chat
    id (LINK), `st`/`p` the list the card came from."""

    a: str
    id: str
    st: str = ACTIVE
    p: int = 1
    c: int = 0


def with_sharing(
    markup: InlineKeyboardMarkup, rent: Rent, watch: RentWatch | None, status: str, page: int
) -> InlineKeyboardMarkup:
    """The card's keyboard with Share (an active rent) or Stop sharing above its last row."""
    rid = short_id(rent.id)
    if watch is not None and watch.group_chat_id is not None:
        button = InlineKeyboardButton(
            text="🚫 " + _("Stop sharing"),
            callback_data=ShareCb(a=STOP, id=rid, st=status, p=page).pack(),
        )
    elif rent.status == "active":
        button = InlineKeyboardButton(
            text="👥 " + _("Share codes with a group"),
            callback_data=ShareCb(a=GROUPS, id=rid, st=status, p=page).pack(),
        )
    else:
        return markup
    rows = list(markup.inline_keyboard)
    return InlineKeyboardMarkup(inline_keyboard=[*rows[:-1], [button], *rows[-1:]])


def groups(
    rent: Rent, offers: Sequence[GroupOffer], status: str, page: int, bot_username: str
) -> InlineKeyboardMarkup:
    rid = short_id(rent.id)
    builder = Keyboard()
    for offer in offers:
        builder.row(
            InlineKeyboardButton(
                text="👥 " + (offer.title or _("a group")),
                callback_data=ShareCb(a=LINK, id=rid, st=status, p=page, c=offer.chat_id).pack(),
            )
        )
    if bot_username:
        builder.row(
            InlineKeyboardButton(
                text="➕ " + _("Add me to a group"),
                url=f"https://t.me/{bot_username}?startgroup=link",
            )
        )
    builder.row(back_button(rent.id, status, page))
    return builder.as_markup()


def back_button(rent_id: str, status: str, page: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text="‹ " + _("Rental card"),
        callback_data=RentCb(a="o", id=short_id(rent_id), st=status, p=page).pack(),
    )


def back(rent_id: str, status: str, page: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[back_button(rent_id, status, page)]])
