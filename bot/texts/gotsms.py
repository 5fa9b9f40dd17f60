"""GotSMS cards and lists. Every text that comes from the API is HTML-escaped here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from html import escape

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.api.gotsms import Message, NumberStatus, Plan, PriceGroup, PricePlan, Rent
from bot.db.models import utcnow
from bot.texts import money, utc_time
from bot.texts.wake import doing_line, doing_words, rent_doing_words

UNREADABLE = "—"


def amount(value: Decimal | None) -> str:
    """An amount, or "—" when the API sent one that could not be read."""
    return UNREADABLE if value is None else money(value)


PAGE_LIMIT = 3500  # characters of one price-list page, well inside Telegram's 4096
BODY_LIMIT = 200


def length_text(amount: int, duration_type: str) -> str:
    forms = {
        "min": ngettext("{n} minute", "{n} minutes", amount),
        "hour": ngettext("{n} hour", "{n} hours", amount),
        "day": ngettext("{n} day", "{n} days", amount),
        "week": ngettext("{n} week", "{n} weeks", amount),
        "month": ngettext("{n} month", "{n} months", amount),
        "year": ngettext("{n} year", "{n} years", amount),
    }
    form = forms.get(duration_type)
    return form.format(n=amount) if form else escape(f"{amount} {duration_type}")


def billing_text(billing_type: str) -> str:
    return {"sms": _("per SMS"), "duration": _("by time")}.get(billing_type, escape(billing_type))


def when(moment: datetime | None) -> str:
    return utc_time(moment) if moment else "—"


def seconds_text(seconds: int | None) -> str:
    if not seconds or seconds <= 0:
        return "—"
    minutes, rest = divmod(seconds, 60)
    if minutes:
        return _("{minutes} min {seconds} s").format(minutes=minutes, seconds=rest)
    return _("{seconds} s").format(seconds=rest)


def balance_text(balance: Decimal) -> str:
    return _("💰 Your GotSMS balance: <b>{balance}</b>").format(balance=money(balance))


# ---------------------------------------------------------------- price list


def _price_line(plan: PricePlan) -> str:
    parts = [
        escape(plan.country or "—"),
        length_text(plan.period, plan.period_type),
        billing_text(plan.billing_type) if plan.billing_type else "",
        f"<b>{amount(plan.price)}</b>",
    ]
    return "• " + " · ".join(p for p in parts if p)


def price_pages(groups: Sequence[PriceGroup]) -> list[str]:
    """The price list cut into pages of whole services (a huge service is split by lines)."""
    blocks: list[str] = []
    for group in groups:
        lines = [f"<b>{escape(group.name)}</b>"] + [_price_line(p) for p in group.plans]
        chunk: list[str] = []
        for line in lines:
            if chunk and len("\n".join([*chunk, line])) > PAGE_LIMIT:
                blocks.append("\n".join(chunk))
                chunk = [f"<b>{escape(group.name)}</b>"]
            chunk.append(line)
        blocks.append("\n".join(chunk))
    pages: list[str] = []
    current = ""
    for block in blocks:
        candidate = f"{current}\n\n{block}" if current else block
        if current and len(candidate) > PAGE_LIMIT:
            pages.append(current)
            current = block
        else:
            current = candidate
    if current:
        pages.append(current)
    return pages


def prices_text(page_text: str, page: int, pages: int) -> str:
    head = _("💲 <b>GotSMS prices</b>")
    if pages > 1:
        head += f" ({page}/{pages})"
    return head + "\n\n" + page_text


# ---------------------------------------------------------------- services and plans


def services_text(search: str, total: int, mode: str) -> str:
    head = {
        "r": _("📲 <b>Rent a number</b>: choose the service."),
        "m": _("✉️ Choose the service to filter the messages by."),
    }.get(mode, _("🧩 <b>GotSMS services</b>: press one to see its plans."))
    lines = [head]
    if search:
        lines.append(_("Search: {search}").format(search=escape(search)))
    if total == 0:
        lines.append(_("Nothing found. Try another word: /services TEXT"))
    else:
        lines.append(_("Found: {total}").format(total=total))
    return "\n".join(lines)


def plan_line(plan: Plan) -> str:
    return " · ".join(
        [
            escape(plan.country.name),
            length_text(plan.duration_in_type, plan.duration_type),
            billing_text(plan.billing_type),
            f"<b>{money(plan.price)}</b>",
        ]
    )


def plans_text(service: str, items: Sequence[Plan], total: int, renting: bool) -> str:
    lines = [_("📋 <b>Plans of {service}</b>").format(service=escape(service))]
    if not items:
        lines.append(_("No plans match these filters."))
    else:
        lines += ["• " + plan_line(p) for p in items]
        lines.append("")
        lines.append(
            _("Press a plan to rent a number.")
            if renting
            else ngettext(
                "{total} plan. Press it to rent a number.",
                "{total} plans. Press one to rent a number.",
                total,
            ).format(total=total)
        )
    return "\n".join(lines)


def area_question(plan: Plan) -> str:
    return "\n".join(
        [
            _("You chose: {service}, {plan}.").format(
                service=escape(plan.service.name), plan=plan_line(plan)
            ),
            _(
                "Want a number with a particular area code? Send its digits (for example "
                "<code>212</code>), or press «Any area code»."
            ),
        ]
    )


def rent_question(plan: Plan, area_code: str | None, balance: Decimal) -> str:
    lines = [
        _("📲 <b>Rent a number?</b>"),
        _("Service: {service}").format(service=escape(plan.service.name)),
        _("Plan: {plan}").format(plan=plan_line(plan)),
        _("Area code: {code}").format(code=escape(area_code) if area_code else _("any")),
        _("Price: <b>{price}</b>").format(price=money(plan.price)),
        _("Your balance: {balance}").format(balance=money(balance)),
    ]
    return "\n".join(lines)


def low_balance_text(price: Decimal, balance: Decimal) -> str:
    return _(
        "❌ Not enough money: the plan costs {price}, your balance is {balance}. "
        "Top up your GotSMS balance and try again."
    ).format(price=money(price), balance=money(balance))


def rent_done(rent: Rent) -> str:
    return "\n".join(
        [
            _("✅ <b>Your number: {phone}</b>").format(phone=escape(rent.phone)),
            _("Service: {service}").format(service=escape(rent.service.name)),
            _("Active: {start} — {end}").format(
                start=when(rent.active_from), end=when(rent.active_till)
            ),
            _("Paid: {price}").format(price=amount(rent.price)),
            "",
            _("Codes sent to this number will arrive here automatically."),
        ]
    )


# ---------------------------------------------------------------- rentals


def status_word(status: str) -> str:
    return {"active": _("🟢 active"), "finished": _("⚪ finished")}.get(status, escape(status))


def rents_text(items: Sequence[Rent], active: bool, total: int) -> str:
    head = _("📋 <b>Your active rentals</b>") if active else _("📋 <b>Your finished rentals</b>")
    if not items:
        empty = (
            _("No active rentals. Rent a number with /rent.")
            if active
            else _("No finished rentals.")
        )
        return head + "\n" + empty
    lines = [head + f" ({total})"]
    for rent in items:
        lines.append(
            f"• <code>{escape(rent.phone)}</code> · {escape(rent.service.name)} · "
            + _("until {end}").format(end=when(rent.active_till))
        )
    return "\n".join(lines)


def rent_card(
    rent: Rent,
    status: NumberStatus | None = None,
    *,
    doing: NumberStatus | None = None,
    auto_refund: bool | None = None,
) -> str:
    """`auto_refund`: the no-code refund switch, when it can still be switched."""
    renew = _("Auto-renew: on") if rent.is_included_for_next_renewal else _("Auto-renew: off")
    lines = [
        f"📱 <b><code>{escape(rent.phone)}</code></b>",
        _("Service: {service}").format(service=escape(rent.service.name)),
        _("Plan: {plan}").format(
            plan=length_text(rent.plan.duration_in_type, rent.plan.duration_type)
            + " · "
            + billing_text(rent.plan.billing_type)
        ),
        _("Status: {status}").format(status=status_word(rent.status)),
        _("Active until: {end}").format(end=when(rent.active_till)),
        renew,
    ]
    if auto_refund is not None:
        lines.append(
            _("Auto-refund if no code: on") if auto_refund else _("Auto-refund if no code: off")
        )
    if rent.status == "active":
        words = number_doing(rent, doing or status)
        lines += [doing_line(words)] if words else []
    if status is not None:
        lines += ["", status_text(status)]
    return "\n".join(lines)


def number_doing(rent: Rent, status: NumberStatus | None) -> str | None:
    """Asleep, in the queue or awake: from the status when it was read, else from the rent."""
    return doing_words(status) if status is not None else rent_doing_words(rent, utcnow())


def status_text(status: NumberStatus) -> str:
    lines = [_("📶 <b>Number status</b>")]
    if status.wake_till is not None:
        lines.append(
            _("Waiting in the wake-up queue: {left} left (until {till})").format(
                left=seconds_text(status.wakeup_time_left_seconds), till=when(status.wake_till)
            )
        )
    if status.online_till is not None:
        lines.append(
            _("Online: {left} left (until {till})").format(
                left=seconds_text(status.online_time_left_seconds), till=when(status.online_till)
            )
        )
    if status.wake_till is None and status.online_till is None:
        lines.append(_("The number has not been woken up yet."))
    lines.append(
        _("You can wake it up now: GotSMS brings it online so that it can receive an SMS.")
        if status.can_wake_up
        else _("It can't be woken up right now.")
    )
    return "\n".join(lines)


def move_text(rent: Rent, count: int) -> str:
    text = _("⏫ Move {phone} to a longer plan. The new plan's price is charged at once.").format(
        phone=escape(rent.phone)
    )
    if count == 0:
        text += "\n" + _("This number has no longer plan to move to.")
    return text


def move_question(phone: str, plan_label: str, price: Decimal, balance: Decimal) -> str:
    return "\n".join(
        [
            _("⏫ Move {phone} to {plan}?").format(phone=escape(phone), plan=plan_label),
            _("Price: <b>{price}</b>").format(price=money(price)),
            _("Your balance: {balance}").format(balance=money(balance)),
        ]
    )


def refund_question(rent: Rent) -> str:
    return _(
        "↩️ Refund the rental of {phone} ({service})? {price} goes back to your balance and the "
        "number is no longer yours."
    ).format(phone=escape(rent.phone), service=escape(rent.service.name), price=amount(rent.price))


# ---------------------------------------------------------------- messages


def _body(text: str) -> str:
    short = text if len(text) <= BODY_LIMIT else text[: BODY_LIMIT - 1] + "…"
    return escape(short)


def message_block(message: Message, *, with_phone: bool = True) -> str:
    head = [f"🕒 {when(message.received_at)}"]
    if message.service is not None:
        head.append(escape(message.service.name))
    if with_phone and message.phone:
        head.append(escape(message.phone))
    lines = [" · ".join(head)]
    if message.code:
        lines.append(_("Code: <code>{code}</code>").format(code=escape(message.code)))
    if message.sender:
        lines.append(_("From: {sender}").format(sender=escape(message.sender)))
    lines.append(f"<blockquote>{_body(message.body)}</blockquote>" if message.body else "")
    return "\n".join(line for line in lines if line)


def codes_text(items: Sequence[Message], total: int) -> str:
    if not items:
        return _("📭 No unread codes. New ones will arrive here automatically.")
    lines = [_("📬 <b>Unread codes</b> ({total})").format(total=total)]
    lines += [message_block(m) for m in items]
    if total > len(items):
        lines.append(
            _("…and {count} more. Mark these as read to see the next ones.").format(
                count=total - len(items)
            )
        )
    return "\n\n".join(lines)


def marked_text(items: Sequence[Message], same: bool, more: int) -> str:
    lines = [
        ngettext(
            "✅ Marked {n} message as read.", "✅ Marked {n} messages as read.", len(items)
        ).format(n=len(items))
    ]
    if not same and items:
        lines.append(_("New messages arrived in the meantime; these are the ones marked as read:"))
        lines += [message_block(m) for m in items]
    if more:
        lines.append(_("{count} more unread.").format(count=more))
    return "\n\n".join(lines)


def messages_text(items: Sequence[Message], page: int, pages: int, service: str, phone: str) -> str:
    head = _("✉️ <b>Messages</b>")
    if pages > 1:
        head += f" ({page}/{pages})"
    filters = []
    if service:
        filters.append(_("service: {name}").format(name=escape(service)))
    if phone:
        filters.append(_("number: {phone}").format(phone=escape(phone)))
    lines = [head + (" · " + ", ".join(filters) if filters else "")]
    if not items:
        lines.append(_("No messages yet."))
    lines += [message_block(m) for m in items]
    return "\n\n".join(lines)


def rent_messages_text(phone: str | None, items: Sequence[Message]) -> str:
    """`phone`: None when no message says which number it went to."""
    head = (
        _("✉️ <b>Messages to {phone}</b>").format(phone=escape(phone))
        if phone
        else _("✉️ <b>Messages to this number</b>")
    )
    lines = [head]
    if not items:
        lines.append(_("No messages on this number yet."))
    lines += [message_block(m, with_phone=False) for m in items]
    return "\n\n".join(lines)


def pinned_note(on: bool) -> str:
    """The answer to ⭐ on a service's plans."""
    if on:
        return _("⭐ Pinned: this service comes first in /rent.")
    return _("Unpinned: this service is no longer first in /rent.")


def first_services_note() -> str:
    """Under the /rent heading when its list starts with the user's own services."""
    return _("First: ⭐ your pinned services and 🕘 the ones you rented lately.")
