"""GotSMS callback data and keyboards. Every prefix starts with `g`.

Ids are never truncated. A UUID (36 characters) is *shortened losslessly* to the 22-character
base64url form of its 16 bytes (`short_id` / `long_id`), so that two ids fit into one button
(a plan and its service, a rent and a message cursor) within Telegram's 64 bytes. An id that is
not a UUID travels whole, marked with `~`.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import CopyTextButton, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot.api.gotsms import Message, Plan, Ref, Rent
from bot.keyboards.callbacks import MenuCb
from bot.keyboards.common import pager_row
from bot.keyboards.grid import Keyboard
from bot.texts import money
from bot.texts.gotsms import length_text

# ConfirmCb actions of the GotSMS side
RENT = "gr"
REFUND = "gf"
MOVE = "gt"

# /services pickers: what a chosen service opens
PICK_RENT = "r"
PICK_PLANS = "p"
PICK_MESSAGES = "m"

DURATIONS = {"n": "min", "h": "hour", "d": "day", "w": "week", "m": "month", "y": "year"}
DURATION_CODES = {value: key for key, value in DURATIONS.items()}
BILLINGS = {"s": "sms", "d": "duration"}
ACTIVE, FINISHED = "a", "f"
COPY_MAX = 256
WHOLE_ID = re.compile(r"[A-Za-z0-9_-]{1,60}")


def short_id(value: str) -> str:
    """A UUID as 22 base64url characters; anything else whole behind `~`."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return "~" + value
    if str(parsed) != value.lower():
        return "~" + value
    return base64.urlsafe_b64encode(parsed.bytes).decode().rstrip("=")


def long_id(value: str) -> str:
    """The id `short_id` shortened; ValueError for anything it could not have produced.

    A whole id goes into API paths (`/numbers/{id}/wake-up`), so only letters, digits, `-` and
    `_` pass: a forged `~../rents/ID/refund#` must not turn a wake-up into a refund.
    """
    if value.startswith("~"):
        if WHOLE_ID.fullmatch(value[1:]) is None:
            raise ValueError("not a short id")
        return value[1:]
    if len(value) != 22:
        raise ValueError("not a short id")
    try:
        raw = base64.urlsafe_b64decode(value + "==")
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a short id") from exc
    if len(raw) != 16:
        raise ValueError("not a short id")
    return str(uuid.UUID(bytes=raw))


class PricesCb(CallbackData, prefix="gpr"):
    p: int


class ServicesCb(CallbackData, prefix="gsv"):
    """A page of services. `m`: what a pick opens (PICK_*); `q`: key of a kept search."""

    m: str
    p: int
    q: str = ""


class PlansCb(CallbackData, prefix="gpl"):
    """Plans of one service: `d` duration code, `b` billing code, `c` country (short id)."""

    m: str
    s: str
    d: str = ""
    b: str = ""
    c: str = ""
    p: int = 1


class PlanCb(CallbackData, prefix="gpk"):
    """A plan picked for renting: its service and its id (both short)."""

    s: str
    id: str


class PinCb(CallbackData, prefix="gpn"):
    """⭐ a service for /rent (`on` 1) or take the star away (0), then its plans again (the
    other fields are the PlansCb being shown)."""

    on: int
    m: str
    s: str
    d: str = ""
    b: str = ""
    c: str = ""
    p: int = 1


class AgainCb(CallbackData, prefix="gag"):
    """Rent again: the service and the plan of a finished rent (both short)."""

    s: str
    pl: str


class AreaCb(CallbackData, prefix="gac"):
    """The area-code step: `s` skip, `x` cancel."""

    a: str


class RentsCb(CallbackData, prefix="grl"):
    st: str
    p: int


class RentCb(CallbackData, prefix="grc"):
    """A rent card action: `o` open, `s` status, `w` wake up, `r` auto-renew, `t` longer
    plan, `f` refund, `n` auto-refund if no code, `k` keep waiting (the no-code push).
    `st`/`p`: the list it came from (to find it again and to go back)."""

    a: str
    id: str
    st: str = ACTIVE
    p: int = 1


class RentMessagesCb(CallbackData, prefix="grm"):
    """Messages of one rent, older than the message `b` (short id; "" = the newest)."""

    id: str
    b: str = ""


class MoveCb(CallbackData, prefix="gtr"):
    """A longer plan chosen for a rent (both short ids)."""

    id: str
    pl: str


class CodesCb(CallbackData, prefix="gcd"):
    """/codes: `l` list again, `r` mark read; `h` fingerprint of the messages shown."""

    a: str
    h: str = ""


class MessagesCb(CallbackData, prefix="gms"):
    """The history: page, service filter (short id), phone filter (digits)."""

    p: int
    s: str = ""
    q: str = ""


def copy_button(label: str, value: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=label, copy_text=CopyTextButton(text=value[:COPY_MAX]))


def balance_menu() -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text="📲 " + _("Rent a number"), callback_data=MenuCb(action="rent"))
    builder.button(text="📋 " + _("My rentals"), callback_data=MenuCb(action="rents"))
    return builder.as_markup()


def prices(page: int, pages: int) -> InlineKeyboardMarkup | None:
    builder = Keyboard()
    pager_row(builder, page, pages, lambda n: PricesCb(p=n))
    return builder.as_markup() if pages > 1 else None


def services(
    items: Sequence[Ref],
    mode: str,
    page: int,
    pages: int,
    q: str,
    first: Sequence[tuple[Ref, bool]] = (),
) -> InlineKeyboardMarkup:
    """`first`: (service, pinned) shown above the page, ⭐ pinned or 🕘 rented lately; the page
    leaves them out so that no service is listed twice."""
    builder = Keyboard()
    for service, pinned in first:
        icon = "⭐ " if pinned else "🕘 "
        opens = PlansCb(m=mode, s=short_id(service.id))
        builder.button(text=icon + (service.name or "—")[:58], callback_data=opens)
    shown = {service.id for service, _pinned in first}
    for service in items:
        if service.id in shown:
            continue
        if mode == PICK_MESSAGES:
            data: CallbackData = MessagesCb(p=1, s=short_id(service.id))
        else:
            data = PlansCb(m=mode, s=short_id(service.id))
        builder.button(text=(service.name or "—")[:60], callback_data=data)
    # the first ones in rows of their own: an odd one out does not share a row with the page
    builder.adjust(*([2] * (len(first) // 2) + [1] * (len(first) % 2) + [2]))
    pager_row(builder, page, pages, lambda n: ServicesCb(m=mode, p=n, q=q))
    return builder.as_markup()


def plans(
    items: Sequence[Plan],
    view: PlansCb,
    countries: Sequence[Ref],
    pages: int,
    pinned: bool | None = None,
) -> InlineKeyboardMarkup:
    """`pinned`: the service's ⭐ in /rent (None: no pin button)."""
    builder = Keyboard()
    for plan in items:
        label = f"{plan.country.name} · {duration(plan)} · {money(plan.price)}"
        builder.row(
            InlineKeyboardButton(
                text=label[:60],
                callback_data=PlanCb(s=view.s, id=short_id(plan.id)).pack(),
            )
        )
    pager_row(builder, view.p, pages, lambda n: view.model_copy(update={"p": n}))

    def mark(on: bool, text: str) -> str:
        return ("✅ " if on else "") + text

    row = [(view.d == "", _("Any length"), "")]
    row += [(view.d == code, length_word(DURATIONS[code]), code) for code in ("d", "w", "m")]
    builder.row(
        *[
            InlineKeyboardButton(
                text=mark(on, text),
                callback_data=view.model_copy(update={"d": code, "p": 1}).pack(),
            )
            for on, text, code in row
        ]
    )
    more = [(view.d == code, length_word(DURATIONS[code]), code) for code in ("n", "h", "y")]
    builder.row(
        *[
            InlineKeyboardButton(
                text=mark(on, text),
                callback_data=view.model_copy(update={"d": code, "p": 1}).pack(),
            )
            for on, text, code in more
        ]
    )
    billing = [(view.b == "", _("Any billing"), ""), (view.b == "d", _("By time"), "d")]
    billing.append((view.b == "s", _("Per SMS"), "s"))
    builder.row(
        *[
            InlineKeyboardButton(
                text=mark(on, text),
                callback_data=view.model_copy(update={"b": code, "p": 1}).pack(),
            )
            for on, text, code in billing
        ]
    )
    if len(countries) > 1 or view.c:
        country_buttons = [
            InlineKeyboardButton(
                text=mark(view.c == "", _("All countries")),
                callback_data=view.model_copy(update={"c": "", "p": 1}).pack(),
            )
        ]
        for country in countries[:7]:
            code = short_id(country.id)
            country_buttons.append(
                InlineKeyboardButton(
                    text=mark(view.c == code, country.name[:30]),
                    callback_data=view.model_copy(update={"c": code, "p": 1}).pack(),
                )
            )
        for start in range(0, len(country_buttons), 4):
            builder.row(*country_buttons[start : start + 4])
    back = InlineKeyboardButton(
        text="‹ " + _("Services"), callback_data=ServicesCb(m=view.m, p=1).pack()
    )
    if pinned is None:
        builder.row(back)
    else:
        star = PinCb(on=0 if pinned else 1, **view.model_dump())
        label = "☆ " + _("Unpin") if pinned else "⭐ " + _("Pin to the top")
        builder.row(back, InlineKeyboardButton(text=label, callback_data=star.pack()))
    return builder.as_markup()


def plan_gone() -> InlineKeyboardMarkup:
    """Under "this plan is not offered any more": choose anew, or back to the finished rents."""
    builder = Keyboard()
    builder.button(text="📲 " + _("Rent a number"), callback_data=MenuCb(action="rent"))
    builder.button(text="‹ " + _("My rentals"), callback_data=RentsCb(st=FINISHED, p=1))
    return builder.as_markup()


def area_code() -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text="⏭ " + _("Any area code"), callback_data=AreaCb(a="s"))
    builder.button(text=_("Cancel"), callback_data=AreaCb(a="x"))
    return builder.as_markup()


def low_balance() -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text="💰 " + _("Balance"), callback_data=MenuCb(action="balance"))
    return builder.as_markup()


def rent_result(rent: Rent) -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.row(copy_button("📋 " + rent.phone, rent.phone))
    builder.row(
        InlineKeyboardButton(
            text="📄 " + _("Rental card"),
            callback_data=RentCb(a="o", id=short_id(rent.id)).pack(),
        )
    )
    return builder.as_markup()


def rents(items: Sequence[Rent], status: str, page: int, pages: int) -> InlineKeyboardMarkup:
    builder = Keyboard()
    for rent in items:
        icon = "🟢" if rent.status == "active" else "⚪"
        builder.row(
            InlineKeyboardButton(
                text=f"{icon} {rent.phone} · {rent.service.name}"[:60],
                callback_data=RentCb(a="o", id=short_id(rent.id), st=status, p=page).pack(),
            )
        )
    pager_row(builder, page, pages, lambda n: RentsCb(st=status, p=n))
    other = FINISHED if status == ACTIVE else ACTIVE
    label = _("Finished") if other == FINISHED else _("Active")
    builder.row(
        InlineKeyboardButton(text="🔁 " + label, callback_data=RentsCb(st=other, p=1).pack())
    )
    return builder.as_markup()


def rent_card(
    rent: Rent,
    status: str,
    page: int,
    *,
    can_wake: bool | None = None,
    auto_refund: bool | None = None,
) -> InlineKeyboardMarkup:
    """`can_wake`: whether GotSMS allows a wake-up now (the number's status, else the rent's);
    `auto_refund`: the rent's no-code refund switch, when it can still be switched."""
    rid = short_id(rent.id)
    wake = rent.can_wake_up if can_wake is None else can_wake

    def cb(action: str) -> str:
        return RentCb(a=action, id=rid, st=status, p=page).pack()

    builder = Keyboard()
    builder.row(copy_button("📋 " + rent.phone, rent.phone))
    builder.row(
        InlineKeyboardButton(
            text="✉️ " + _("Messages"), callback_data=RentMessagesCb(id=rid).pack()
        ),
        InlineKeyboardButton(text="📶 " + _("Number status"), callback_data=cb("s")),
    )
    if rent.status == "active":
        renew = (
            _("Turn off auto-renew")
            if rent.is_included_for_next_renewal
            else _("Turn on auto-renew")
        )
        wake_button = InlineKeyboardButton(text="⏰ " + _("Wake up"), callback_data=cb("w"))
        builder.row(
            *([wake_button] if wake else []),
            InlineKeyboardButton(text="🔄 " + renew, callback_data=cb("r")),
        )
        builder.row(
            InlineKeyboardButton(text="⏫ " + _("Longer plan"), callback_data=cb("t")),
            InlineKeyboardButton(text="↩️ " + _("Refund"), callback_data=cb("f")),
        )
        if auto_refund is not None:
            label = _("Turn off auto-refund") if auto_refund else _("Turn on auto-refund")
            builder.row(InlineKeyboardButton(text="🤖 " + label, callback_data=cb("n")))
    elif rent.plan.id:
        again = AgainCb(s=short_id(rent.service.id), pl=short_id(rent.plan.id))
        builder.row(InlineKeyboardButton(text="🔁 " + _("Rent again"), callback_data=again.pack()))
    builder.row(
        InlineKeyboardButton(
            text="‹ " + _("My rentals"), callback_data=RentsCb(st=status, p=page).pack()
        )
    )
    return builder.as_markup()


def back_to_card(rent_id: str) -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text="‹ " + _("Rental card"), callback_data=RentCb(a="o", id=short_id(rent_id)))
    return builder.as_markup()


def rent_messages(
    rent_id: str, items: Sequence[Message], older: str | None, newest: bool
) -> InlineKeyboardMarkup:
    builder = Keyboard()
    codes_row(builder, items)
    nav = []
    if not newest:
        nav.append(
            InlineKeyboardButton(
                text="⏮ " + _("Newest"), callback_data=RentMessagesCb(id=short_id(rent_id)).pack()
            )
        )
    if older:
        nav.append(
            InlineKeyboardButton(
                text=_("Older") + " ›",
                callback_data=RentMessagesCb(id=short_id(rent_id), b=short_id(older)).pack(),
            )
        )
    if nav:
        builder.row(*nav)
    builder.row(
        InlineKeyboardButton(
            text="‹ " + _("Rental card"), callback_data=RentCb(a="o", id=short_id(rent_id)).pack()
        )
    )
    return builder.as_markup()


def move_options(rent: Rent, options: Sequence[tuple[str, str]]) -> InlineKeyboardMarkup:
    """`options`: (plan id, label) pairs."""
    builder = Keyboard()
    for plan_id, label in options:
        builder.row(
            InlineKeyboardButton(
                text=label[:60],
                callback_data=MoveCb(id=short_id(rent.id), pl=short_id(plan_id)).pack(),
            )
        )
    builder.row(
        InlineKeyboardButton(
            text="‹ " + _("Rental card"), callback_data=RentCb(a="o", id=short_id(rent.id)).pack()
        )
    )
    return builder.as_markup()


def codes_row(builder: Keyboard, items: Sequence[Message]) -> None:
    """One copy button per message that has a code, two in a row."""
    buttons = [
        copy_button(f"📋 {m.code} · {m.service.name if m.service else ''}".strip(" ·")[:60], m.code)
        for m in items
        if m.code
    ]
    for start in range(0, len(buttons), 2):
        builder.row(*buttons[start : start + 2])


def codes(items: Sequence[Message], fingerprint: str) -> InlineKeyboardMarkup:
    builder = Keyboard()
    codes_row(builder, items)
    row = []
    if items:
        row.append(
            InlineKeyboardButton(
                text="✅ " + _("Mark as read"), callback_data=CodesCb(a="r", h=fingerprint).pack()
            )
        )
    row.append(InlineKeyboardButton(text="🔄 " + _("Refresh"), callback_data=CodesCb(a="l").pack()))
    builder.row(*row)
    return builder.as_markup()


def after_marking(items: Sequence[Message], more: bool) -> InlineKeyboardMarkup:
    builder = Keyboard()
    codes_row(builder, items)
    label = _("Next unread") if more else _("Check again")
    builder.row(InlineKeyboardButton(text="🔄 " + label, callback_data=CodesCb(a="l").pack()))
    return builder.as_markup()


def messages(items: Sequence[Message], view: MessagesCb, pages: int) -> InlineKeyboardMarkup:
    builder = Keyboard()
    codes_row(builder, items)
    pager_row(builder, view.p, pages, lambda n: view.model_copy(update={"p": n}))
    row = [
        InlineKeyboardButton(
            text="🔎 " + _("Service"), callback_data=ServicesCb(m=PICK_MESSAGES, p=1).pack()
        )
    ]
    if view.s or view.q:
        row.append(
            InlineKeyboardButton(
                text="✖️ " + _("All messages"), callback_data=MessagesCb(p=1).pack()
            )
        )
    builder.row(*row)
    return builder.as_markup()


def duration(plan: Plan) -> str:
    return length_text(plan.duration_in_type, plan.duration_type)


def length_word(duration_type: str) -> str:
    words = {
        "min": _("Minutes"),
        "hour": _("Hours"),
        "day": _("Days"),
        "week": _("Weeks"),
        "month": _("Months"),
        "year": _("Years"),
    }
    return words.get(duration_type, duration_type)


def rent_ending(rent_id: str, *, can_renew: bool) -> InlineKeyboardMarkup:
    """Under a "rent ends soon" alert: open the rent, move it to a longer plan, or auto-renew."""
    builder = Keyboard()
    rent = short_id(rent_id)
    builder.button(text="⏫ " + _("Longer plan"), callback_data=RentCb(a="t", id=rent))
    if can_renew:
        builder.button(text="🔁 " + _("Turn on auto-renew"), callback_data=RentCb(a="r", id=rent))
    builder.button(text="📋 " + _("Open rental"), callback_data=RentCb(a="o", id=rent))
    builder.adjust(2, 1)
    return builder.as_markup()
