"""/rent: service → plan → area code → confirmation → one rent, against the fake GotSMS."""

from __future__ import annotations

import asyncio

import pytest
from aiogram.fsm.storage.base import StorageKey

from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.shapes import Shape
from tests.test_gotsms_catalog import connect, copy_texts


@pytest.fixture(autouse=True, params=list(Shape))
def shape(request: pytest.FixtureRequest, gotsms: FakeGotSMS) -> Shape:
    """Every test runs once per answer shape of the fakes."""
    gotsms.shape = request.param
    return Shape(request.param)


EN, RU = 3201, 3202


def rent_posts(gotsms: FakeGotSMS) -> list[dict[str, object]]:
    return [r.json for r in gotsms.requests if r.method == "POST" and r.path == "/rents"]


async def to_confirmation(harness: Harness, user_id: int, area: str | None = None) -> None:
    await harness.send(user_id, "/rent telegram")
    await harness.press(user_id, "USA · 1 day · 1.00")
    if area is None:
        await harness.press(user_id, "Any area code")
    else:
        await harness.send(user_id, area)


async def test_rent_step_by_step(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/rent")
    picker = harness.last(EN)
    assert picker.text.startswith("📲 Rent a number: choose the service.")
    await harness.press(EN, "Telegram")
    plans = harness.tg.message(EN, picker.message_id)
    assert plans.text.startswith("📋 Plans of Telegram"), "edited in place"
    await harness.press(EN, "Days")
    assert gotsms.requests[-1].query["duration_type"] == "day"
    answer = await harness.press(EN, "USA · 1 day · 1.00")
    assert answer.answered
    question = harness.tg.message(EN, picker.message_id)
    assert "area code" in question.text
    await harness.send(EN, "abc")
    assert "2 to 5 digits" in harness.last(EN).text
    await harness.send(EN, "212")
    confirmation = harness.last(EN)
    assert "Area code: 212" in confirmation.text
    assert "Price: 1.00" in confirmation.text
    assert "Your balance: 100.00" in confirmation.text
    assert not rent_posts(gotsms), "nothing is rented before yes"
    await harness.press(EN, "Rent for 1.00")
    card = harness.tg.message(EN, confirmation.message_id)
    rent = gotsms.rents_of(GOTSMS_TOKEN)[0]
    assert rent["phone"].startswith("+1 212 ")
    assert f"Your number: {rent['phone']}" in card.text
    assert "Codes sent to this number will arrive here automatically." in card.text
    assert "Active: " in card.text
    assert copy_texts(card) == [rent["phone"]]
    assert rent_posts(gotsms) == [{"plan_id": rent["plan"]["id"], "area_code": "212"}]
    assert gotsms.balance(GOTSMS_TOKEN) == 99.0
    await harness.press(EN, "Rental card")
    assert "Auto-renew: off" in harness.last(EN).text


async def test_rent_in_russian_without_area_code(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, RU, "ru")
    await harness.send(RU, "/rent Telegram")
    await harness.press(RU, "USA · 1 день · 1,00")
    await harness.press(RU, "Любой код")
    confirmation = harness.last(RU)
    assert "Арендовать номер?" in confirmation.text
    assert "Код города: любой" in confirmation.text
    assert "Ваш баланс: 100,00" in confirmation.text
    await harness.press(RU, "Арендовать за 1,00")
    assert "Коды, которые придут на этот номер, я сам пришлю сюда." in harness.last(RU).text
    assert rent_posts(gotsms) == [{"plan_id": gotsms.rents_of(GOTSMS_TOKEN)[0]["plan"]["id"]}]


async def test_low_balance_is_said_before_calling(harness: Harness, gotsms: FakeGotSMS) -> None:
    gotsms.set_balance(GOTSMS_TOKEN, 0.5)
    await connect(harness, EN)
    await to_confirmation(harness, EN)
    text = harness.last(EN).text
    assert "Not enough money: the plan costs 1.00, your balance is 0.50" in text
    assert "Rent for" not in " ".join(harness.last(EN).button_texts())
    assert not rent_posts(gotsms)


async def test_out_of_stock(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await to_confirmation(harness, EN)
    gotsms.set_stock(gotsms.plan_by("Telegram", "day", 1)["id"], 0)
    await harness.press(EN, "Rent for 1.00")
    assert "No numbers are available for this service right now" in harness.last(EN).text
    assert len(rent_posts(gotsms)) == 1
    assert gotsms.balance(GOTSMS_TOKEN) == 100.0


async def test_balance_spent_meanwhile_gets_the_422_text(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    await connect(harness, RU, "ru")
    await harness.send(RU, "/rent telegram")
    await harness.press(RU, "USA · 1 день · 1,00")
    await harness.press(RU, "Любой код")
    gotsms.set_balance(GOTSMS_TOKEN, 0.2)
    await harness.press(RU, "Арендовать за 1,00")
    assert "На балансе GotSMS не хватает денег" in harness.last(RU).text


@pytest.mark.parametrize("concurrent", [False, True])
async def test_rent_runs_once_however_fast_it_is_pressed(
    harness: Harness, gotsms: FakeGotSMS, concurrent: bool
) -> None:
    await connect(harness, EN)
    await to_confirmation(harness, EN)
    presses = [harness.press_update(EN, "Rent for 1.00") for _ in range(2)]
    if concurrent:
        await asyncio.gather(*(harness.feed(update) for update in presses))
    else:
        for update in presses:
            await harness.feed(update)
    answers = [harness.tg.callback_answers[u["callback_query"]["id"]] for u in presses]
    assert all(a.answered for a in answers)
    assert sum(1 for a in answers if a.text and "already used" in a.text) == 1
    assert len(rent_posts(gotsms)) == 1
    assert len(gotsms.rents_of(GOTSMS_TOKEN)) == 1


async def test_cancel_leaves_the_area_code_step(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/rent telegram")
    await harness.press(EN, "USA · 1 day · 1.00")
    await harness.send(EN, "/cancel")
    assert harness.last(EN).text.startswith("Cancelled.")
    key = StorageKey(bot_id=harness.bot.id, chat_id=EN, user_id=EN)
    assert await harness.dp.storage.get_state(key) is None
    await harness.send(EN, "212")
    assert "/help lists what I can do" in harness.last(EN).text
    answer = await harness.press(EN, "Any area code")
    assert answer.text is not None
    assert "out of date" in answer.text
    assert not rent_posts(gotsms)


async def test_cancel_buttons(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/rent telegram")
    await harness.press(EN, "USA · 1 day · 1.00")
    await harness.press(EN, "Cancel")
    assert harness.last(EN).text == "Cancelled. Nothing was rented."
    await to_confirmation(harness, EN)
    yes = harness.press_update(EN, "Rent for 1.00")
    answer = await harness.press(EN, "Cancel")
    assert answer.text == "Cancelled"
    await harness.feed(yes)
    assert not rent_posts(gotsms)


async def test_api_down_while_renting(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await to_confirmation(harness, EN)
    gotsms.fail_next("/rents", 502, method="POST")
    await harness.press(EN, "Rent for 1.00")
    text = harness.last(EN).text
    assert "GotSMS is not answering right now" in text
    assert "may have gone through" in text
    assert len(rent_posts(gotsms)) == 1, "a payment is not retried blindly"
