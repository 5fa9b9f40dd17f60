"""GotSMS /balance, /prices, /services, /plans and the menu entry points, through the dispatcher."""

from __future__ import annotations

import pytest

from bot.db.models import Service
from bot.db.repo import CredentialRepo
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.shapes import Shape
from tests.fakes.telegram import StoredMessage


@pytest.fixture(autouse=True, params=list(Shape))
def shape(request: pytest.FixtureRequest, gotsms: FakeGotSMS) -> Shape:
    """Every test runs once per answer shape of the fakes."""
    gotsms.shape = request.param
    return Shape(request.param)


EN, RU, NEW = 3101, 3102, 3103


async def connect(harness: Harness, user_id: int, language: str = "en") -> None:
    """A user with the GotSMS token stored (no API call spent on checking it)."""
    harness.tg.user(user_id, language_code=language)
    await harness.send(user_id, "/help")  # creates the user row
    async with harness.deps.session_factory() as session:
        await CredentialRepo(session, harness.deps.cipher).save(
            user_id, Service.GOTSMS, GOTSMS_TOKEN
        )
        await session.commit()


def copy_texts(message: StoredMessage) -> list[str]:
    return [
        b.raw["copy_text"]["text"] for row in message.buttons for b in row if "copy_text" in b.raw
    ]


async def test_prices_work_without_a_token_and_page_in_place(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    harness.tg.user(NEW, language_code="en")
    await harness.send(NEW, "/prices")
    first = harness.last(NEW)
    assert first.text.startswith("💲 GotSMS prices (1/2)")
    assert "Telegram" in first.text
    assert "USA · 1 day · by time · 1.00" in first.text
    assert [r.token for r in gotsms.requests] == [None], "public: no token sent"
    answer = await harness.press(NEW, "›")
    assert answer.answered
    second = harness.tg.message(NEW, first.message_id)
    assert second.text.startswith("💲 GotSMS prices (2/2)"), "edited in place"
    assert "OpenAI" in second.text
    assert all(len(m.text) <= 4096 for m in harness.tg.bot_messages(NEW))


async def test_prices_in_russian(harness: Harness) -> None:
    harness.tg.user(RU, language_code="ru")
    await harness.send(RU, "/prices")
    text = harness.last(RU).text
    assert text.startswith("💲 Цены GotSMS")
    assert "USA · 1 день · по времени · 1,00" in text
    assert "7 дней" in text


async def test_balance_with_and_without_a_token(harness: Harness, gotsms: FakeGotSMS) -> None:
    harness.tg.user(NEW, language_code="en")
    await harness.send(NEW, "/balance")
    assert "Connect your GotSMS token first" in harness.last(NEW).text
    assert not gotsms.requests
    await connect(harness, EN)
    await harness.send(EN, "/balance")
    reply = harness.last(EN)
    assert reply.text == "💰 Your GotSMS balance: 100.00"
    assert reply.button_texts() == ["📲 Rent a number", "📋 My rentals"]
    await connect(harness, RU, "ru")
    gotsms.set_balance(GOTSMS_TOKEN, 1234.5)
    await harness.send(RU, "/balance")
    assert harness.last(RU).text == "💰 Ваш баланс GotSMS: 1\u00a0234,50"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "💰 Your GotSMS balance: 1,234.50"),
        ("ru", "💰 Ваш баланс GotSMS: 1\u00a0234,50"),
    ],
)
async def test_balance_is_formatted_for_the_locale(
    harness: Harness, gotsms: FakeGotSMS, language: str, expected: str
) -> None:
    await connect(harness, EN, language)
    gotsms.set_balance(GOTSMS_TOKEN, 1234.5)
    await harness.send(EN, "/balance")
    assert harness.last(EN).text == expected


async def test_menu_entry_points(harness: Harness) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/help")
    message_id = harness.last(EN).message_id
    expected = {
        "balance": "Your GotSMS balance",
        "rent": "Rent a number",
        "rents": "Your active rentals",
        "codes": "No unread codes",
    }
    for action, text in expected.items():
        update = harness.tg.callback_update(EN, message_id, f"menu:{action}")
        await harness.feed(update)
        assert harness.tg.callback_answers[update["callback_query"]["id"]].answered
        assert text in harness.last(EN).text, action


async def test_menu_button_without_a_token_says_connect(harness: Harness) -> None:
    harness.tg.user(NEW, language_code="en")
    await harness.send(NEW, "/start")
    update = harness.tg.callback_update(NEW, harness.last(NEW).message_id, "menu:rents")
    await harness.feed(update)
    answer = harness.tg.callback_answers[update["callback_query"]["id"]]
    assert answer.show_alert
    assert answer.text is not None
    assert "Connect your GotSMS token first" in answer.text


async def test_services_search_and_pages(harness: Harness, gotsms: FakeGotSMS) -> None:
    for n in range(20):
        gotsms.add_service(f"Shop {n:02d}")
    await connect(harness, EN)
    await harness.send(EN, "/services")
    listing = harness.last(EN)
    assert "Found: 32" in listing.text
    assert "Amazon" in listing.button_texts()
    await harness.press(EN, "›")
    page2 = harness.tg.message(EN, listing.message_id)
    assert "2/3" in page2.button_texts()
    assert "Amazon" not in page2.button_texts()
    await harness.send(EN, "/services shop 1")
    found = harness.last(EN)
    assert "Search: shop 1" in found.text
    assert "Found: 10" in found.text
    assert gotsms.requests[-1].query["search"] == "shop 1"
    await harness.send(EN, "/services nothing-like-this")
    assert "Nothing found" in harness.last(EN).text


async def test_services_search_pages_keep_the_search(harness: Harness, gotsms: FakeGotSMS) -> None:
    for n in range(30):
        gotsms.add_service(f"Shop {n:02d}")
    await connect(harness, EN)
    await harness.send(EN, "/services shop")
    await harness.press(EN, "›")
    assert gotsms.requests[-1].query["search"] == "shop"
    assert gotsms.requests[-1].query["page"] == "2"
    assert "Shop 12" in harness.last(EN).button_texts()


async def test_plans_with_filters(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/plans telegram")
    view = harness.last(EN)
    assert view.text.startswith("📋 Plans of Telegram")
    assert "19 plans" in view.text
    assert "USA · 1 day · 1.00" in view.button_texts()
    assert "1/3" in view.button_texts()
    await harness.press(EN, "Months")
    months = harness.tg.message(EN, view.message_id)
    assert gotsms.requests[-1].query["duration_type"] == "month"
    assert "12 plans" in months.text
    assert "✅ Months" in months.button_texts()
    uk_button = next(b for row in months.buttons for b in row if b.text == "UK")
    assert uk_button.callback_data is not None
    await harness.feed(harness.tg.callback_update(EN, view.message_id, uk_button.callback_data))
    uk = harness.tg.message(EN, view.message_id)
    assert "4 plans" in uk.text
    assert "USA" not in uk.text.split("Plans of Telegram")[1].split("4 plans")[0]
    await harness.press(EN, "Any length")
    await harness.press(EN, "Per SMS")
    assert "No plans match these filters." in harness.tg.message(EN, view.message_id).text
    await harness.press(EN, "All countries")
    sms = harness.tg.message(EN, view.message_id)
    assert gotsms.requests[-1].query["billing_type"] == "sms"
    assert "20 minutes · per SMS · 0.50" in sms.text


async def test_plans_without_a_service_pick_one(harness: Harness) -> None:
    await connect(harness, RU, "ru")
    await harness.send(RU, "/plans")
    assert "Сервисы GotSMS" in harness.last(RU).text
    await harness.press(RU, "WhatsApp")
    view = harness.last(RU)
    assert view.text.startswith("📋 Тарифы WhatsApp")
    assert "USA · 1 день · 1,20" in view.button_texts()


async def test_forged_gotsms_buttons_are_refused(harness: Harness) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/plans telegram")
    message_id = harness.last(EN).message_id
    for data in (
        "gpl:p:not-an-id:::",
        "gpl:p:AAAAAAAAAAAAAAAAAAAAAA:q::",
        "gsv:p:1:deadbeef",
        "gpk:x:y",
        "grc:o:short:a:1",
        "grm:zz",
        "gms:1:bad:",
        "gcd:r:xyz",
        "gtr:a:b",
    ):
        update = harness.tg.callback_update(EN, message_id, data)
        await harness.feed(update)
        answer = harness.tg.callback_answers[update["callback_query"]["id"]]
        assert answer.answered, data
        assert answer.text is not None, data
        assert "out of date" in answer.text, data


async def test_api_texts_are_escaped_everywhere(harness: Harness, gotsms: FakeGotSMS) -> None:
    service_id = gotsms.add_service("Shop <b>&amp; Co")
    gotsms.add_plan(service_id, price=2.5)
    await connect(harness, EN)
    await harness.send(EN, "/prices")
    await harness.press(EN, "›")
    assert "Shop <b>&amp; Co" in harness.last(EN).text
    await harness.send(EN, "/plans shop")
    assert harness.last(EN).text.startswith("📋 Plans of Shop <b>&amp; Co")
    await harness.press(EN, "USA · 1 day · 2.50")
    await harness.press(EN, "Any area code")
    assert "Service: Shop <b>&amp; Co" in harness.last(EN).text
    await harness.press(EN, "Rent for 2.50")
    assert "Service: Shop <b>&amp; Co" in harness.last(EN).text
