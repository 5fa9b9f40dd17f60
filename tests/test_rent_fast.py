"""Faster renting (issue 14, part 4): /rent starts with the ⭐ pinned and last rented services,
and a finished rent's card rents the same plan again, against the fake GotSMS."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db.models import RentWatch, ServicePick
from bot.db.rent_watch import ServicePickRepo
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.shapes import Shape
from tests.fakes.telegram import StoredMessage
from tests.test_gotsms_catalog import connect, copy_texts


@pytest.fixture(autouse=True, params=list(Shape))
def shape(request: pytest.FixtureRequest, gotsms: FakeGotSMS) -> Shape:
    """Every test runs once per answer shape of the fakes."""
    gotsms.shape = request.param
    return Shape(request.param)


EN, RU = 3401, 3402
FIRST_NOTE = "First: ⭐ your pinned services and 🕘 the ones you rented lately."


def rent_posts(gotsms: FakeGotSMS) -> list[dict[str, object]]:
    return [r.json for r in gotsms.requests if r.method == "POST" and r.path == "/rents"]


def service_buttons(message: StoredMessage) -> list[str]:
    """The service buttons of a /rent page, without the pager."""
    return [
        b.text
        for row in message.buttons
        for b in row
        if b.callback_data and b.callback_data.startswith("gpl:")
    ]


async def rent_through_bot(harness: Harness, user_id: int, service: str, plan: str) -> None:
    await harness.send(user_id, f"/rent {service}")
    await harness.press(user_id, plan)
    await harness.press(user_id, "Any area code")
    await harness.press(user_id, "Rent for ")


async def rent_menu(harness: Harness, user_id: int) -> StoredMessage:
    await harness.send(user_id, "/rent")
    return harness.last(user_id)


async def finished_card(harness: Harness, gotsms: FakeGotSMS, user_id: int) -> StoredMessage:
    """The card of the user's only rent, after it has run out."""
    rent = gotsms.rents_of(GOTSMS_TOKEN)[0]
    gotsms.set_rent_end(rent["id"], gotsms.now() - timedelta(minutes=1))
    await harness.send(user_id, "/rents")
    await harness.press(user_id, "Finished")
    await harness.press(user_id, rent["phone"])
    return harness.last(user_id)


async def test_last_rented_services_come_first(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    plain = await rent_menu(harness, EN)
    assert FIRST_NOTE not in plain.text, "nothing rented yet: the plain list"
    assert service_buttons(plain)[:2] == ["Amazon", "Discord"]
    gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Uber", "day", 1)["id"])  # not through the bot
    await rent_through_bot(harness, EN, "telegram", "USA · 1 day · 1.00")
    await rent_through_bot(harness, EN, "google", "USA · 1 day · 0.80")
    menu = await rent_menu(harness, EN)
    assert FIRST_NOTE in menu.text
    buttons = service_buttons(menu)
    assert buttons[:2] == ["🕘 Google", "🕘 Telegram"], "the newest rental first"
    assert "🕘 Uber" not in buttons, "only rentals made through the bot count"
    assert buttons.count("Google") == buttons.count("Telegram") == 0, "no service listed twice"
    assert len(buttons) == 12, "the page itself is still all the other services"
    await harness.press(EN, "🕘 Telegram")
    assert harness.last(EN).text.startswith("📋 Plans of Telegram")


async def test_the_last_four_rented_services(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    for name in ("Facebook", "Instagram", "Microsoft", "Amazon", "Uber"):
        await rent_through_bot(harness, EN, name.lower(), "USA · 1 day · 0.75")
    buttons = service_buttons(await rent_menu(harness, EN))
    assert buttons[:4] == ["🕘 Uber", "🕘 Amazon", "🕘 Microsoft", "🕘 Instagram"]
    assert "Facebook" in buttons[4:], "the fifth one back in the list"


async def test_pin_moves_a_service_to_the_top_and_back(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    await connect(harness, EN)
    await rent_through_bot(harness, EN, "discord", "USA · 1 day · 0.60")
    await rent_menu(harness, EN)
    await harness.press(EN, "WhatsApp")
    plans = harness.last(EN)
    assert "☆ Unpin" not in plans.button_texts()
    pins = [harness.press_update(EN, "Pin to the top") for _ in range(2)]
    await asyncio.gather(*(harness.feed(update) for update in pins))
    answer = harness.tg.callback_answers[pins[0]["callback_query"]["id"]]
    assert answer.text == "⭐ Pinned: this service comes first in /rent."
    assert "☆ Unpin" in harness.last(EN).button_texts(), "the plans again, with the star"
    assert harness.last(EN).text.startswith("📋 Plans of WhatsApp")
    await harness.press(EN, "‹ Services")
    buttons = service_buttons(harness.last(EN))
    assert buttons[:2] == ["⭐ WhatsApp", "🕘 Discord"], "a pinned service before a rented one"
    assert "WhatsApp" not in buttons
    async with harness.deps.session_factory() as session:
        picks = (await session.scalars(select(ServicePick))).all()
    assert sorted((p.name, p.pinned) for p in picks) == [("Discord", False), ("WhatsApp", True)]

    await harness.press(EN, "⭐ WhatsApp")
    answer = await harness.press(EN, "☆ Unpin")
    assert answer.text == "Unpinned: this service is no longer first in /rent."
    assert "⭐ Pin to the top" in harness.last(EN).button_texts()
    await harness.press(EN, "‹ Services")
    buttons = service_buttons(harness.last(EN))
    assert buttons[0] == "🕘 Discord"
    assert "⭐ WhatsApp" not in buttons
    assert buttons.count("WhatsApp") == 1, "back in its place in the list"


async def test_pinned_where_the_filters_match_no_plan(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/rent uber")
    await harness.press(EN, "Years")
    assert "No plans match these filters." in harness.last(EN).text
    await harness.press(EN, "Pin to the top")
    await harness.press(EN, "‹ Services")
    assert service_buttons(harness.last(EN))[0] == "⭐ Uber"


async def test_the_pin_is_only_in_rent(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/plans telegram")
    assert not [t for t in harness.last(EN).button_texts() if "Pin" in t]
    await harness.send(EN, "/rent telegram")
    assert "⭐ Pin to the top" in harness.last(EN).button_texts()


async def test_pages_stay_whole_with_the_first_services(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    names = [f"Zeta {n:02d}" for n in range(20)]  # 32 services: three pages of 12
    for name in names:
        gotsms.add_plan(gotsms.add_service(name), price=0.7)
    await connect(harness, EN)
    await rent_through_bot(harness, EN, "zeta 19", "USA · 1 day · 0.70")
    await rent_through_bot(harness, EN, "amazon", "USA · 1 day · 0.75")
    first = await rent_menu(harness, EN)
    assert "1/3" in first.button_texts()
    seen = service_buttons(first)
    assert seen[:2] == ["🕘 Amazon", "🕘 Zeta 19"]
    await harness.press(EN, "›")
    second = harness.tg.message(EN, first.message_id)
    assert "2/3" in second.button_texts()
    assert FIRST_NOTE not in second.text
    assert not [t for t in service_buttons(second) if t.startswith(("🕘", "⭐"))]
    seen += service_buttons(second)
    await harness.press(EN, "›")
    seen += service_buttons(harness.tg.message(EN, first.message_id))
    every = sorted(s["name"] for s in gotsms.services)
    listed = sorted(t for t in seen if not t.startswith("🕘"))
    assert listed == [n for n in every if n != "Amazon"], (
        "the pages list every service once, except a first one that is on page 1 itself"
    )
    await harness.press(EN, "‹")
    await harness.press(EN, "‹")
    assert service_buttons(harness.tg.message(EN, first.message_id))[:2] == seen[:2]


async def test_rent_again_with_the_same_confirmation(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await rent_through_bot(harness, EN, "telegram", "UK · 1 day · 1.30")
    old = gotsms.rents_of(GOTSMS_TOKEN)[0]
    card = await finished_card(harness, gotsms, EN)
    assert "🔁 Rent again" in card.button_texts()
    await harness.press(EN, "Rent again")
    question = harness.tg.message(EN, card.message_id)
    assert "Rent a number?" in question.text, "the card turns into the /rent question"
    assert "Service: Telegram" in question.text
    assert "Plan: UK · 1 day · by time · 1.30" in question.text
    assert "Price: 1.30" in question.text
    assert "Your balance: 98.70" in question.text
    assert len(rent_posts(gotsms)) == 1, "nothing more rented before yes"

    presses = [harness.press_update(EN, "Rent for 1.30") for _ in range(2)]
    await asyncio.gather(*(harness.feed(update) for update in presses))
    answers = [harness.tg.callback_answers[u["callback_query"]["id"]] for u in presses]
    assert sum(1 for a in answers if a.text and "already used" in a.text) == 1
    assert rent_posts(gotsms) == [{"plan_id": old["plan"]["id"]}] * 2, "one more, not two"
    new = gotsms.rents_of(GOTSMS_TOKEN)[0]
    assert new["id"] != old["id"]
    assert new["plan"]["id"] == old["plan"]["id"]
    assert new["phone"].startswith("+44 ")
    done = harness.tg.message(EN, card.message_id)
    assert f"Your number: {new['phone']}" in done.text
    assert copy_texts(done) == [new["phone"]]
    assert gotsms.balance(GOTSMS_TOKEN) == pytest.approx(97.4)
    async with harness.deps.session_factory() as session:
        watch = await session.get(RentWatch, new["id"])
        assert watch is not None
        assert watch.made_here
        assert watch.plan_id == old["plan"]["id"]
    await harness.send(EN, "/rent")
    assert service_buttons(harness.last(EN))[0] == "🕘 Telegram"


async def test_rent_again_of_a_rent_made_elsewhere(harness: Harness, gotsms: FakeGotSMS) -> None:
    gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Google", "day", 7, "Germany")["id"])
    await connect(harness, EN)
    await finished_card(harness, gotsms, EN)
    await harness.press(EN, "Rent again")
    assert "Plan: Germany · 7 days · by time · 5.40" in harness.last(EN).text
    await harness.press(EN, "Cancel")
    assert harness.last(EN).text == "Cancelled. Nothing was rented."
    assert rent_posts(gotsms) == []


async def test_rent_again_at_the_price_of_today(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await rent_through_bot(harness, EN, "telegram", "USA · 1 day · 1.00")
    await finished_card(harness, gotsms, EN)
    plan_id = gotsms.rents_of(GOTSMS_TOKEN)[0]["plan"]["id"]
    gotsms.set_price(plan_id, 1.25)
    await harness.press(EN, "Rent again")
    assert "Price: 1.25" in harness.last(EN).text
    await harness.press(EN, "Rent for 1.25")
    assert gotsms.balance(GOTSMS_TOKEN) == pytest.approx(97.75)
    assert rent_posts(gotsms)[-1] == {"plan_id": plan_id}


async def test_rent_again_of_a_plan_not_offered_any_more(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    await connect(harness, EN)
    await rent_through_bot(harness, EN, "telegram", "USA · 1 day · 1.00")
    card = await finished_card(harness, gotsms, EN)
    gotsms.withdraw_plan(gotsms.rents_of(GOTSMS_TOKEN)[0]["plan"]["id"])
    await harness.press(EN, "Rent again")
    gone = harness.tg.message(EN, card.message_id)
    assert gone.text == "This plan is not offered any more. Send /rent to choose again."
    assert len(rent_posts(gotsms)) == 1
    await harness.press(EN, "Rent a number")
    assert harness.last(EN).text.startswith("📲 Rent a number: choose the service.")


async def test_rent_again_with_too_little_money(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await rent_through_bot(harness, EN, "telegram", "USA · 1 day · 1.00")
    await finished_card(harness, gotsms, EN)
    gotsms.set_balance(GOTSMS_TOKEN, 0.4)
    await harness.press(EN, "Rent again")
    low = harness.last(EN)
    assert "Not enough money: the plan costs 1.00, your balance is 0.40" in low.text
    assert not [t for t in low.button_texts() if "Rent for" in t]
    assert len(rent_posts(gotsms)) == 1


async def test_no_rent_again_on_an_active_rent(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await rent_through_bot(harness, EN, "telegram", "USA · 1 day · 1.00")
    await harness.press(EN, "Rental card")
    assert "🔁 Rent again" not in harness.last(EN).button_texts()


async def test_in_russian(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, RU, "ru")
    await harness.send(RU, "/rent telegram")
    await harness.press(RU, "USA · 1 день · 1,00")
    await harness.press(RU, "Любой код")
    await harness.press(RU, "Арендовать за 1,00")
    await harness.send(RU, "/rent whatsapp")
    answer = await harness.press(RU, "⭐ Закрепить")
    assert answer.text == "⭐ Закреплено: в /rent этот сервис теперь показывается первым."
    await harness.press(RU, "‹ Сервисы")
    menu = harness.last(RU)
    assert "Сначала — ⭐ закреплённые вами сервисы и 🕘 те, что вы недавно арендовали." in menu.text
    assert service_buttons(menu)[:2] == ["⭐ WhatsApp", "🕘 Telegram"]
    await harness.press(RU, "⭐ WhatsApp")
    answer = await harness.press(RU, "☆ Открепить")
    assert answer.text == "Откреплено: в /rent этот сервис больше не показывается первым."

    rent = gotsms.rents_of(GOTSMS_TOKEN)[0]
    gotsms.set_rent_end(rent["id"], gotsms.now() - timedelta(minutes=1))
    await harness.send(RU, "/rents")
    await harness.press(RU, "Завершённые")
    await harness.press(RU, rent["phone"])
    await harness.press(RU, "🔁 Арендовать снова")
    question = harness.last(RU)
    assert "Арендовать номер?" in question.text
    assert "Ваш баланс: 99,00" in question.text
    gotsms.withdraw_plan(rent["plan"]["id"])
    await harness.send(RU, "/rents")
    await harness.press(RU, "Завершённые")
    await harness.press(RU, rent["phone"])
    await harness.press(RU, "🔁 Арендовать снова")
    assert "Этого тарифа больше нет." in harness.last(RU).text
    assert "📲 Арендовать номер" in harness.last(RU).button_texts()


async def test_two_pins_at_once_leave_one_star(harness: Harness) -> None:
    await connect(harness, EN)
    factory = harness.deps.session_factory
    async with factory() as first, factory() as second:
        await ServicePickRepo(first).pin(EN, "s-1", "Telegram", True)
        late = asyncio.create_task(ServicePickRepo(second).pin(EN, "s-1", "", True))
        await asyncio.sleep(0.05)  # the second press reaches the database first's row unseen
        await first.commit()
        await late
        await second.commit()
    async with factory() as session:
        picks = (await session.scalars(select(ServicePick))).all()
    assert [(p.service_id, p.name, p.pinned) for p in picks] == [("s-1", "Telegram", True)]


async def test_two_rentals_of_one_new_service_at_once_record_it_once(harness: Harness) -> None:
    await connect(harness, EN)
    factory = harness.deps.session_factory
    async with factory() as first, factory() as second:
        await ServicePickRepo(first).used(EN, "s-2", "WhatsApp")
        late = asyncio.create_task(ServicePickRepo(second).used(EN, "s-2", "WhatsApp"))
        await asyncio.sleep(0.05)  # the second one reaches the database before the first commits
        await first.commit()
        await late
        await second.commit()
    async with factory() as session:
        picks = (await session.scalars(select(ServicePick))).all()
    assert [(p.service_id, p.name) for p in picks] == [("s-2", "WhatsApp")]
    assert picks[0].used_at is not None
