"""/notify: switches each kind of push and sets the low-balance threshold."""

from __future__ import annotations

from decimal import Decimal

from bot.db.models import NotificationSettings
from tests.conftest import Harness

USER = 7301


async def settings(harness: Harness) -> NotificationSettings:
    async with harness.deps.session_factory() as session:
        found = await session.get(NotificationSettings, USER)
        assert found is not None
        return found


async def test_toggles_edit_the_menu_in_place(harness: Harness) -> None:
    harness.tg.user(USER, language_code="en")
    await harness.send(USER, "/notify")
    menu = harness.last(USER)
    assert menu.button_texts()[:5] == [
        "✅ New codes",
        "✅ SMS delivery",
        "✅ Devices offline or low battery",
        "✅ Rentals ending",
        "⬜ Low balance",
    ]
    answer = await harness.press(USER, "New codes")
    assert answer.text == "Off"
    assert harness.tg.message(USER, menu.message_id).button_texts()[0] == "⬜ New codes"
    assert not (await settings(harness)).codes


async def test_low_balance_asks_for_a_threshold(harness: Harness) -> None:
    harness.tg.user(USER, language_code="ru")
    await harness.send(USER, "/start")
    await harness.press(USER, "Уведомления")
    await harness.press(USER, "Низкий баланс")
    assert "Пришлите сумму" in harness.last(USER).text
    await harness.send(USER, "много")
    assert "сумму больше нуля" in harness.last(USER).text
    await harness.send(USER, "7,5")
    assert "ниже 7,50" in harness.last(USER).text
    stored = await settings(harness)
    assert stored.low_balance
    assert stored.balance_threshold == Decimal("7.50")
    await harness.send(USER, "/notify")
    assert "💰 Порог: 7,50" in harness.last(USER).button_texts()
