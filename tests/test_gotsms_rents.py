"""/rents and every button of the rent card, against the fake GotSMS."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.shapes import Shape
from tests.test_gotsms_catalog import connect, copy_texts


@pytest.fixture(autouse=True, params=list(Shape))
def shape(request: pytest.FixtureRequest, gotsms: FakeGotSMS) -> Shape:
    """Every test runs once per answer shape of the fakes."""
    gotsms.shape = request.param
    return Shape(request.param)


EN, RU = 3301, 3302


def rent(
    gotsms: FakeGotSMS, duration: str = "day", length: int = 1, service: str = "Telegram"
) -> dict[str, Any]:
    plan = gotsms.plan_by(service, duration, length)
    return gotsms.create_rent(GOTSMS_TOKEN, plan["id"])


def posts(gotsms: FakeGotSMS, suffix: str) -> int:
    return sum(1 for r in gotsms.requests if r.method == "POST" and r.path.endswith(suffix))


async def open_card(harness: Harness, user_id: int, phone: str) -> None:
    await harness.send(user_id, "/rents")
    await harness.press(user_id, phone)


async def test_rents_list_pages_and_switch(harness: Harness, gotsms: FakeGotSMS) -> None:
    phones = [rent(gotsms)["phone"] for _ in range(10)]
    finished = rent(gotsms, service="Google")
    gotsms.set_rent_end(finished["id"], gotsms.now() - timedelta(minutes=1))
    await connect(harness, EN)
    await harness.send(EN, "/rents")
    listing = harness.last(EN)
    assert listing.text.startswith("📋 Your active rentals (10)")
    assert "1/2" in listing.button_texts()
    assert phones[-1] in listing.text, "newest first"
    await harness.press(EN, "›")
    page2 = harness.tg.message(EN, listing.message_id)
    assert phones[0] in page2.text
    assert "2/2" in page2.button_texts()
    await harness.press(EN, "Finished")
    done = harness.tg.message(EN, listing.message_id)
    assert done.text.startswith("📋 Your finished rentals (1)")
    assert finished["phone"] in done.text
    await harness.press(EN, finished["phone"])
    card = harness.tg.message(EN, listing.message_id)
    assert "Status: ⚪ finished" in card.text
    assert "Refund" not in " ".join(card.button_texts())
    await harness.press(EN, "My rentals")
    assert harness.tg.message(EN, listing.message_id).text.startswith("📋 Your finished rentals")


async def test_no_rents_in_russian(harness: Harness) -> None:
    await connect(harness, RU, "ru")
    await harness.send(RU, "/rents")
    assert "Активных аренд нет" in harness.last(RU).text


async def test_card_status_and_wake_up(harness: Harness, gotsms: FakeGotSMS) -> None:
    made = rent(gotsms)
    await connect(harness, EN)
    await open_card(harness, EN, made["phone"])
    card = harness.last(EN)
    for line in ("Service: Telegram", "Status: 🟢 active", "Active until: ", "Auto-renew: off"):
        assert line in card.text
    assert copy_texts(card) == [made["phone"]]
    await harness.press(EN, "Number status")
    assert "The number has not been woken up yet." in harness.last(EN).text
    assert "You can wake it up now: GotSMS brings it online" in harness.last(EN).text
    message_id, wake_data = harness.find_button(EN, "Wake up")
    answer = await harness.press(EN, "Wake up")
    assert answer.answered
    woken = harness.tg.message(EN, card.message_id)
    assert "Wake-up request sent: GotSMS brings the number online" in woken.text
    queue = "Waiting in the wake-up queue: "
    assert f"{queue}5 min 0 s left" in woken.text or f"{queue}4 min" in woken.text
    assert "Online: 30 min 0 s left (until " in woken.text
    assert "It can't be woken up right now." in woken.text
    assert posts(gotsms, "/wake-up") == 1
    assert "Wake up" not in " ".join(woken.button_texts()), "GotSMS does not allow it now"
    count = len(harness.tg.bot_messages(EN))
    await harness.feed(harness.tg.callback_update(EN, message_id, wake_data))  # a stale button
    refused = harness.tg.message(EN, card.message_id).text
    assert "Wake up is not available for this number right now" in refused, "said on the card"
    assert len(harness.tg.bot_messages(EN)) == count


async def test_auto_renew_toggle_and_monthly_only(harness: Harness, gotsms: FakeGotSMS) -> None:
    daily = rent(gotsms)
    monthly = rent(gotsms, "month", 1)
    await connect(harness, EN)
    await open_card(harness, EN, daily["phone"])
    await harness.press(EN, "Turn on auto-renew")
    assert (
        "Auto-renew can be turned on or off only for 1, 3, 6 or 12-month plans."
        in harness.last(EN).text
    )
    await open_card(harness, EN, monthly["phone"])
    card = harness.last(EN)
    await harness.press(EN, "Turn on auto-renew")
    toggled = harness.tg.message(EN, card.message_id)
    assert "Auto-renew is now on." in toggled.text
    assert "Auto-renew: on" in toggled.text
    assert "🔄 Turn off auto-renew" in toggled.button_texts()
    await harness.press(EN, "Turn off auto-renew")
    assert "Auto-renew is now off." in harness.tg.message(EN, card.message_id).text


async def test_auto_renew_in_russian(harness: Harness, gotsms: FakeGotSMS) -> None:
    daily = rent(gotsms)
    await connect(harness, RU, "ru")
    await open_card(harness, RU, daily["phone"])
    assert "Автопродление: выключено" in harness.last(RU).text
    await harness.press(RU, "Включить автопродление")
    assert "Автопродление можно включить или выключить только" in harness.last(RU).text


@pytest.mark.parametrize("concurrent", [False, True])
async def test_move_to_a_longer_plan_once(
    harness: Harness, gotsms: FakeGotSMS, concurrent: bool
) -> None:
    made = rent(gotsms)
    await connect(harness, EN)
    await open_card(harness, EN, made["phone"])
    await harness.press(EN, "Longer plan")
    options = harness.last(EN)
    assert options.button_texts()[:4] == [
        "1 month — 9.99",
        "3 months — 27.99",
        "6 months — 52.99",
        "12 months — 99.99",
    ]
    await harness.press(EN, "3 months — 27.99")
    question = harness.tg.message(EN, options.message_id)
    assert f"Move {made['phone']} to 3 months?" in question.text
    assert "Price: 27.99" in question.text
    assert "Your balance: 99.00" in question.text
    assert posts(gotsms, "/transition") == 0
    presses = [harness.press_update(EN, "Pay 27.99") for _ in range(2)]
    if concurrent:
        await asyncio.gather(*(harness.feed(update) for update in presses))
    else:
        for update in presses:
            await harness.feed(update)
    assert posts(gotsms, "/transition") == 1
    assert f"Done: {made['phone']} is now on the 3 months plan." in harness.last(EN).text
    assert gotsms.balance(GOTSMS_TOKEN) == pytest.approx(99 - 27.99)
    assert gotsms.rents_of(GOTSMS_TOKEN)[0]["plan"]["duration_type"] == "month"


async def test_move_twice_gets_the_daily_only_text(harness: Harness, gotsms: FakeGotSMS) -> None:
    made = rent(gotsms)
    await connect(harness, RU, "ru")
    await open_card(harness, RU, made["phone"])
    await harness.press(RU, "Более длинный тариф")
    await harness.press(RU, "1 месяц — 9,99")
    question, _data = harness.find_button(RU, "Оплатить 9,99")
    # meanwhile the rent is moved to 3 months on the GotSMS website
    three = gotsms.plan_by("Telegram", "month", 3)["id"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gotsms.url}/rents/{made['id']}/transition",
            json={"plan_id": three},
            headers={"Authorization": f"Bearer {GOTSMS_TOKEN}"},
        ) as response,
    ):
        assert response.status == 200
    await harness.press(RU, "Оплатить 9,99")  # now for a monthly rent
    refused = harness.tg.message(RU, question).text
    assert "Перевести на более длинный тариф можно только посуточную аренду." in refused
    assert posts(gotsms, "/transition") == 2


async def test_longer_plan_of_a_monthly_rent_is_refused_at_once(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    made = rent(gotsms, "month", 1)
    await connect(harness, EN)
    await open_card(harness, EN, made["phone"])
    await harness.press(EN, "Longer plan")
    assert "Only a daily rental can be moved to a longer plan." in harness.last(EN).text


@pytest.mark.parametrize("concurrent", [False, True])
async def test_refund_once(harness: Harness, gotsms: FakeGotSMS, concurrent: bool) -> None:
    made = rent(gotsms)
    await connect(harness, EN)
    await open_card(harness, EN, made["phone"])
    await harness.press(EN, "Refund")
    assert (
        f"Refund the rental of {made['phone']} (Telegram)? 1.00 goes back" in harness.last(EN).text
    )
    assert posts(gotsms, "/refund") == 0
    presses = [harness.press_update(EN, "Yes, refund") for _ in range(2)]
    if concurrent:
        await asyncio.gather(*(harness.feed(update) for update in presses))
    else:
        for update in presses:
            await harness.feed(update)
    answers = [harness.tg.callback_answers[u["callback_query"]["id"]] for u in presses]
    assert sum(1 for a in answers if a.text and "already used" in a.text) == 1
    assert posts(gotsms, "/refund") == 1
    assert "Refunded: 1.00 is back on your balance." in harness.last(EN).text
    assert gotsms.balance(GOTSMS_TOKEN) == 100.0


async def test_refund_unavailable_and_cancel(harness: Harness, gotsms: FakeGotSMS) -> None:
    made = rent(gotsms)
    gotsms.inject_message(made["id"], "Your code is 4242")
    await connect(harness, EN)
    await open_card(harness, EN, made["phone"])
    await harness.press(EN, "Refund")
    await harness.press(EN, "Cancel")
    assert harness.last(EN).text == "Nothing was changed."
    await harness.press(EN, "Rental card")
    await harness.press(EN, "Refund")
    await harness.press(EN, "Yes, refund")
    assert harness.last(EN).text == "❌ This rental can't be refunded."
    assert posts(gotsms, "/refund") == 1


async def test_rent_messages_page_with_before_id(harness: Harness, gotsms: FakeGotSMS) -> None:
    made = rent(gotsms)
    for n in range(10):
        gotsms.inject_message(made["id"], f"Code {1000 + n} <b>&")
    await connect(harness, EN)
    await open_card(harness, EN, made["phone"])
    await harness.press(EN, "Messages")
    first = harness.last(EN)
    assert "Code 1009 <b>&" in first.text, "escaped and shown as text"
    assert "Code 1001" not in first.text
    assert copy_texts(first)[:2] == ["1009", "1008"]
    await harness.press(EN, "Older")
    older = harness.tg.message(EN, first.message_id)
    assert "before_id" in gotsms.requests[-1].query
    assert "Code 1001" in older.text
    assert "Code 1009" not in older.text
    await harness.press(EN, "Newest")
    assert "Code 1009" in harness.tg.message(EN, first.message_id).text


async def test_token_revoked_midway(harness: Harness, gotsms: FakeGotSMS) -> None:
    made = rent(gotsms)
    await connect(harness, EN)
    await harness.send(EN, "/rents")
    gotsms.fail_next("/rents", 401)
    answer = await harness.press(EN, made["phone"])
    assert answer.answered
    refusal = "GotSMS did not accept your API token. Connect a new one with /token."
    assert refusal in harness.last(EN).text


async def test_api_down(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    gotsms.set_down(True)
    await harness.send(EN, "/rents")
    assert "GotSMS is not answering right now. Try again in a minute." in harness.last(EN).text


async def test_forbidden_token(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    gotsms.forbid(GOTSMS_TOKEN)
    await harness.send(EN, "/balance")
    assert "GotSMS refused access with this API token" in harness.last(EN).text
