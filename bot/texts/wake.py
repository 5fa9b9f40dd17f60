"""What a rented number is doing (asleep, in the wake-up queue, awake), in words, and the pushes
about a wake-up. Every text that comes from the API is HTML-escaped here."""

from __future__ import annotations

import math
from datetime import datetime
from html import escape

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.api.gotsms import NumberStatus, Rent

HOURS_FROM = 90  # minutes: a longer time is said in hours


def queue_words(seconds: int) -> str:
    """The time left in the wake-up queue, rounded up ("about": it is GotSMS's estimate)."""
    minutes = math.ceil(max(0, seconds) / 60)
    if minutes < 1:
        return _("waking up, less than a minute left in the queue")
    if minutes >= HOURS_FROM:
        hours = round(minutes / 60)
        return ngettext(
            "waking up, about {n} more hour in the queue",
            "waking up, about {n} more hours in the queue",
            hours,
        ).format(n=hours)
    return ngettext(
        "waking up, about {n} more minute in the queue",
        "waking up, about {n} more minutes in the queue",
        minutes,
    ).format(n=minutes)


def awake_words(seconds: int) -> str:
    """The time the number stays awake (online), rounded down (never more than it has)."""
    minutes = max(0, seconds) // 60
    if minutes < 1:
        return _("awake, online for less than a minute more")
    if minutes >= HOURS_FROM:
        hours = minutes // 60
        return ngettext(
            "awake, online for {n} more hour", "awake, online for {n} more hours", hours
        ).format(n=hours)
    return ngettext(
        "awake, online for {n} more minute", "awake, online for {n} more minutes", minutes
    ).format(n=minutes)


def doing_words(status: NumberStatus) -> str:
    """Asleep, in the queue or awake, from the number's status."""
    queue = status.wakeup_time_left_seconds or 0
    online = status.online_time_left_seconds or 0
    if status.wake_from is not None and queue > 0:
        return queue_words(queue)
    if status.wake_from is not None and status.online_till is not None and online > 0:
        return awake_words(online)
    return _("asleep")


def rent_doing_words(rent: Rent, now: datetime) -> str | None:
    """The same from the rent alone (no status read): None when it cannot tell (a wake-up whose
    queue is over may have brought the number online)."""
    if rent.wake_from is None or rent.wake_till is None:
        return _("asleep")
    if rent.wake_till > now:
        return queue_words(int((rent.wake_till - now).total_seconds()))
    return None


def doing_line(words: str) -> str:
    return _("📶 Now: {state}").format(state=words)


def awake_push_text(phone: str, service: str, seconds: int) -> str:
    head = _(
        "⏰ <b>{phone}</b> ({service}) is awake now: it is online and can receive an SMS."
    ).format(phone=escape(phone), service=escape(service))
    minutes = max(0, seconds) // 60
    if minutes < 1:
        stays = _("It stays online for less than a minute.")
    else:
        stays = ngettext(
            "It stays online for {n} more minute.", "It stays online for {n} more minutes.", minutes
        ).format(n=minutes)
    return head + "\n" + stays


def expired_push_text(phone: str, service: str) -> str:
    return _(
        "⌛ The wake-up of <b>{phone}</b> ({service}) has expired: the number did not come "
        "online. You can wake it up again."
    ).format(phone=escape(phone), service=escape(service))


def failed_push_text(phone: str, service: str, ended: bool) -> str:
    if ended:
        return _(
            "❌ The wake-up of <b>{phone}</b> ({service}) is over: the rental has ended."
        ).format(phone=escape(phone), service=escape(service))
    return _(
        "❌ <b>{phone}</b> ({service}) could not be woken up: GotSMS cancelled the wake-up. "
        "You can try again."
    ).format(phone=escape(phone), service=escape(service))
