"""Texts shown to the user that are built from data: cards and error messages, all HTML-escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal

from bot.api.errors import (
    ApiAuthError,
    ApiBadResponse,
    ApiError,
    ApiNotFound,
    ApiPermissionError,
    ApiRateLimited,
    ApiUnavailable,
)
from bot.api.gotsms import Reason
from bot.db.models import Service

SERVICE_NAMES = {Service.GOSMS: "GoSMS", Service.GOTSMS: "GotSMS"}
GOSMS_BAD_INPUT = range(2001, 2010)
MONEY_PATTERN = "#,##0.00"
DEFAULT_LOCALE = "en"


def service_name(service: Service | str) -> str:
    return SERVICE_NAMES.get(Service(service), str(service))


def current_locale() -> str:
    """The locale of the user being answered (set by the locale middleware or the push sender)."""
    i18n = I18n.get_current(no_error=True)
    return i18n.current_locale if i18n is not None else DEFAULT_LOCALE


def _number_locale(code: str) -> Locale:
    try:
        return Locale.parse(code.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(DEFAULT_LOCALE)


def money(value: Decimal, locale: str | None = None) -> str:
    """An amount with two decimals in the user's locale: en "1,234.56", ru "1\u00a0234,56"."""
    return number(value, MONEY_PATTERN, locale)


def number(value: float | Decimal, pattern: str, locale: str | None = None) -> str:
    """A number in the user's locale by a babel pattern: "#,##0.#" gives en "5", "0.4", "1,234.5"
    and ru "5", "0,4", "1\u00a0234,5"."""
    return format_decimal(value, pattern, locale=_number_locale(locale or current_locale()))


def utc_time(moment: datetime) -> str:
    """A time shown in UTC; a naive time is taken as UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def api_error_text(error: ApiError) -> str:
    """A short localized message that says what happened and what to do."""
    name = service_name(error.service)
    if isinstance(error, ApiUnavailable):
        text = _("{service} is not answering right now. Try again in a minute.").format(
            service=name
        )
        if error.uncertain:
            text += " " + _("The action may have gone through: check before repeating it.")
        return text
    if isinstance(error, ApiRateLimited):
        seconds = max(1, round(error.retry_after))
        return _("Too many requests to {service}. Try again in {seconds} s.").format(
            service=name, seconds=seconds
        )
    if isinstance(error, ApiBadResponse):
        return _("{service} sent an answer I don't understand. Try again later.").format(
            service=name
        )
    if error.service == Service.GOSMS:
        return _gosms_text(error)
    return _gotsms_text(error)


def _gosms_text(error: ApiError) -> str:
    code = error.code if isinstance(error.code, int) else None
    by_code = {
        1002: _("Your GoSMS API token is turned off. Turn it on in the GoSMS panel."),
        1003: _("GoSMS no longer recognizes this API token. Connect a new one with /token."),
        1004: _("You have no devices in GoSMS yet. Install the GoSMS app on an Android phone."),
        1006: _(
            "You have reached the monthly limit of your GoSMS plan. Upgrade the plan or wait "
            "until next month."
        ),
        1008: _("GoSMS has no such SMS: it may have been deleted."),
        1010: _("An SMS can be deleted only 5 minutes after it was created. Try again later."),
        1012: _(
            "GoSMS couldn't find this device. Check its ID in the GoSMS panel under My devices."
        ),
        1015: _("None of your GoSMS devices is turned on. Turn one on in the GoSMS panel."),
        1016: _("GoSMS doesn't recognize that device ID. Pick another device."),
        1017: _("A SIM card can be chosen only together with a device."),
        3000: _("Your GoSMS account is blocked. Contact GoSMS support."),
    }
    if code in by_code:
        return by_code[code]
    if isinstance(error, ApiPermissionError):
        return _(
            "Your GoSMS API token doesn't have permission for this. Turn the permission on in the "
            "GoSMS panel."
        )
    if isinstance(error, ApiAuthError):
        return _("GoSMS did not accept your API token. Connect a new one with /token.")
    if code in GOSMS_BAD_INPUT:
        return _(
            "GoSMS refused the input: the number must be 3–30 digits and the text 1–300 "
            "characters without a backtick (`)."
        )
    if isinstance(error, ApiNotFound):
        return _("GoSMS couldn't find this: it may have been deleted.")
    return _("GoSMS refused the request: {detail}").format(detail=escape(error.detail))


def _gotsms_text(error: ApiError) -> str:
    by_reason = {
        Reason.OUT_OF_STOCK: _(
            "No numbers are available for this service right now. Try another plan or try "
            "again later."
        ),
        Reason.TRANSITION_DAILY_ONLY: _("Only a daily rental can be moved to a longer plan."),
        Reason.RENEWAL_MONTHLY_ONLY: _(
            "Auto-renew can be turned on or off only for 1, 3, 6 or 12-month plans."
        ),
        Reason.REFUND_UNAVAILABLE: _("This rental can't be refunded."),
        Reason.INSUFFICIENT_BALANCE: _(
            "Not enough money on your GotSMS balance. Top it up and try again."
        ),
    }
    reason = next((r for r in Reason if r.value == error.code), None)
    if reason is not None:
        return by_reason[reason]
    if isinstance(error, ApiAuthError):
        return _("GotSMS did not accept your API token. Connect a new one with /token.")
    if isinstance(error, ApiPermissionError):
        return _(
            "GotSMS refused access with this API token. Check that API access is turned on in your "
            "GotSMS profile."
        )
    if isinstance(error, ApiNotFound):
        return _("GotSMS couldn't find this: it may have ended or belong to another account.")
    return _("GotSMS refused the request: {detail}").format(detail=escape(error.detail))
