"""The formatters of amounts and times: amounts in the user's locale, times in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from bot.i18n import create_i18n
from bot.texts import gosms as gosms_texts
from bot.texts import gotsms as gotsms_texts
from bot.texts import money, utc_time

NBSP = "\u00a0"
MOSCOW = timezone(timedelta(hours=3))
NEW_YORK = timezone(timedelta(hours=-5))


def in_locale(locale: str, value: Decimal) -> str:
    i18n = create_i18n()
    with i18n.context(), i18n.use_locale(locale):
        return money(value)


@pytest.mark.parametrize(
    ("locale", "value", "expected"),
    [
        ("en", Decimal("1234.5"), "1,234.50"),
        ("en", Decimal("1234567.891"), "1,234,567.89"),
        ("en", Decimal("0"), "0.00"),
        ("ru", Decimal("1234.5"), f"1{NBSP}234,50"),
        ("ru", Decimal("1234567.891"), f"1{NBSP}234{NBSP}567,89"),
        ("ru", Decimal("-12.3"), "-12,30"),
        ("ru", Decimal("999.99"), "999,99"),
    ],
)
def test_money_follows_the_current_locale(locale: str, value: Decimal, expected: str) -> None:
    assert in_locale(locale, value) == expected


def test_money_outside_a_request_and_in_an_unknown_locale_is_english() -> None:
    assert money(Decimal("1234.5")) == "1,234.50"
    assert in_locale("xx", Decimal("1234.5")) == "1,234.50"
    assert money(Decimal("1234.5"), "ru") == f"1{NBSP}234,50"


def test_gotsms_balance_text_uses_the_locale() -> None:
    i18n = create_i18n()
    with i18n.context(), i18n.use_locale("ru"):
        assert gotsms_texts.balance_text(Decimal("2500")) == (
            f"💰 Ваш баланс GotSMS: <b>2{NBSP}500,00</b>"
        )


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 1, 12, 30, tzinfo=UTC), "2026-03-01 12:30 UTC"),
        (datetime(2026, 3, 1, 12, 30, tzinfo=MOSCOW), "2026-03-01 09:30 UTC"),
        (datetime(2026, 3, 1, 1, 30, tzinfo=MOSCOW), "2026-02-28 22:30 UTC"),
        (datetime(2026, 3, 1, 12, 30, tzinfo=NEW_YORK), "2026-03-01 17:30 UTC"),
        (datetime(2026, 3, 1, 12, 30), "2026-03-01 12:30 UTC"),  # naive means UTC
    ],
)
def test_times_are_shown_in_utc(moment: datetime, expected: str) -> None:
    assert utc_time(moment) == expected
    assert gotsms_texts.when(moment) == expected


def test_gotsms_when_without_a_time() -> None:
    assert gotsms_texts.when(None) == "—"


def test_gosms_unix_times_are_utc() -> None:
    moment = datetime(2026, 3, 1, 9, 30, tzinfo=MOSCOW)
    assert gosms_texts.when(int(moment.timestamp())) == "2026-03-01 06:30 UTC"
