"""/sms through the real dispatcher: the list, paging and search in place, the card, delete."""

from __future__ import annotations

import asyncio
import re

from bot.keyboards.callbacks import MenuCb
from bot.keyboards.gosms import SmsCb, SmsPageCb
from tests.conftest import GOSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.test_gosms_send import OTHER_TOKEN, connect, forge, save_device

EN, RU, OTHER = 5001, 5002, 5003


def seed(gosms: FakeGoSMS, count: int, **kwargs: object) -> list[str]:
    base = int(gosms.now()) - 10_000
    return [
        gosms.add_sms(
            GOSMS_TOKEN,
            message=f"Message {n}",
            phone_number=f"7999000{n:04d}",
            time_create=base + n,
            **kwargs,  # type: ignore[arg-type]
        )
        for n in range(1, count + 1)
    ]


async def test_list_pages_in_place(harness: Harness, gosms: FakeGoSMS) -> None:
    seed(gosms, 25)
    await connect(harness, EN)
    await harness.send(EN, "/sms")
    page = harness.last(EN)
    assert page.text.startswith("📋 Your SMS: 25 · page 1 of 3")
    assert "1. ⏳ 79990000025 — Message 25" in page.text, "newest first"
    assert page.button_texts()[:10] == [f"{n} ⏳" for n in range(1, 11)]
    assert page.button_texts()[10:] == ["1/3", "›"]
    await harness.press(EN, "›")
    second = harness.tg.message(EN, page.message_id)
    assert second.text.startswith("📋 Your SMS: 25 · page 2 of 3")
    assert "11. ⏳ 79990000015 — Message 15" in second.text
    assert second.button_texts()[10:] == ["‹", "2/3", "›"]
    await harness.press(EN, "›")
    third = harness.tg.message(EN, page.message_id)
    assert third.button_texts() == ["21 ⏳", "22 ⏳", "23 ⏳", "24 ⏳", "25 ⏳", "‹", "3/3"]
    await harness.press(EN, "‹")
    assert "page 2 of 3" in harness.tg.message(EN, page.message_id).text
    assert len(harness.tg.bot_messages(EN)) == 2, "the /start greeting and one list"
    queries = [r.query for r in gosms.requests_for(GOSMS_TOKEN, "/sms")]
    assert queries == [
        {"limit": "10", "offset": "1"},
        {"limit": "10", "offset": "2"},
        {"limit": "10", "offset": "3"},
        {"limit": "10", "offset": "2"},
    ], "one request per page, never one per SMS"


async def test_search_and_paging_keep_the_search(harness: Harness, gosms: FakeGoSMS) -> None:
    seed(gosms, 12)
    for n in range(15):
        gosms.add_sms(GOSMS_TOKEN, message=f"Код <{n}> & more", phone_number="79111111111")
    await connect(harness, EN)
    await harness.send(EN, "/sms код <")
    page = harness.last(EN)
    assert page.text.startswith("🔎 SMS matching «код <»: 15 · page 1 of 2")
    assert page.html is not None
    assert "Код &lt;" in page.html
    await harness.press(EN, "›")
    assert "page 2 of 2" in harness.tg.message(EN, page.message_id).text
    searches = [r.query.get("search") for r in gosms.requests_for(GOSMS_TOKEN, "/sms")]
    assert searches == ["код <", "код <"]
    await harness.send(EN, "/sms nothing-like-this")
    assert "Nothing found for «nothing-like-this»" in harness.last(EN).text
    await harness.send(EN, "/sms " + "x" * 101)
    assert "search is too long" in harness.last(EN).text
    await harness.send(EN, "/cancel")
    answer = await forge(harness, EN, SmsPageCb(page=2, q="deadbeef").pack())
    assert answer.show_alert
    assert "search is out of date" in (answer.text or "")


async def test_empty_list_and_menu_button(harness: Harness, gosms: FakeGoSMS) -> None:
    await connect(harness, EN)
    await forge(harness, EN, MenuCb(action="sms").pack())
    assert harness.last(EN).text == "You have no SMS in GoSMS yet. Send one with /send."


async def test_card_refresh_and_delete_after_five_minutes(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN, name="Poco & Co")
    await connect(harness, EN)
    await save_device(harness, EN, device_id, "Poco & Co")
    seed(gosms, 3)
    sms_id = gosms.add_sms(
        GOSMS_TOKEN, message="Fresh <one>", device_id=device_id, to_sim=1, status=4
    )
    await harness.send(EN, "/sms")
    listing = harness.last(EN)
    await harness.press(EN, "1 ✅")
    card = harness.tg.message(EN, listing.message_id)
    assert card.text.startswith(f"📤 SMS {sms_id}"), "the card opens in place of the list"
    assert "Device: Poco & Co" in card.text
    assert "SIM: 2" in card.text
    assert "Status: ✅ delivered" in card.text
    assert "Fresh <one>" in card.text
    assert card.button_texts() == ["🔄 Refresh", "🗑 Delete", "‹ Back to the list"]
    gosms.set_status(sms_id, 5)
    await harness.press(EN, "Refresh")
    assert "not delivered" in harness.tg.message(EN, listing.message_id).text
    await harness.press(EN, "Delete")
    assert "Delete the SMS" in harness.last(EN).text
    assert not gosms.requests_for(GOSMS_TOKEN, "/sms/del"), "nothing before yes"
    await harness.press(EN, "Yes, delete")
    early = harness.tg.message(EN, listing.message_id).text
    assert re.search(
        r"only 5 minutes after it was created: try again in (4 min \d+ s|5 min)\.", early
    )
    assert gosms.sms(sms_id)
    gosms.advance_clock(300)
    await harness.press(EN, "Delete")
    await harness.press(EN, "Yes, delete")
    assert harness.tg.message(EN, listing.message_id).text == "🗑 The SMS is deleted."
    assert sms_id not in [s["id"] for s in gosms.sms_of(GOSMS_TOKEN)]
    await harness.press(EN, "Back to the list")
    assert harness.tg.message(EN, listing.message_id).text.startswith("📋 Your SMS: 3")


async def test_delete_cancel_and_double_press(harness: Harness, gosms: FakeGoSMS) -> None:
    [sms_id] = seed(gosms, 1)
    await connect(harness, EN)
    await harness.send(EN, "/sms")
    await harness.press(EN, "1")
    await harness.press(EN, "Delete")
    answer = await harness.press(EN, "Cancel")
    assert answer.text == "Cancelled"
    assert harness.last(EN).text.startswith(f"📤 SMS {sms_id}"), "back to the card"
    await harness.press(EN, "Delete")
    one = harness.press_update(EN, "Yes, delete")
    two = harness.press_update(EN, "Yes, delete")
    await asyncio.gather(harness.feed(one), harness.feed(two))
    assert len(gosms.requests_for(GOSMS_TOKEN, "/sms/del")) == 1
    assert not gosms.sms_of(GOSMS_TOKEN)
    answers = [harness.tg.callback_answers[u["callback_query"]["id"]] for u in (one, two)]
    assert sum("already used" in (a.text or "") for a in answers) == 1


async def test_another_users_sms_does_not_act(harness: Harness, gosms: FakeGoSMS) -> None:
    [sms_id] = seed(gosms, 1)
    gosms.add_account(OTHER_TOKEN)
    await connect(harness, OTHER, token=OTHER_TOKEN)
    await harness.send(OTHER, "/sms")
    answer = await forge(harness, OTHER, SmsCb(action="o", id=sms_id).pack())
    assert answer.answered
    assert "GoSMS has no such SMS" in harness.last(OTHER).text
    answer = await forge(harness, OTHER, SmsCb(action="o", id="../../etc").pack())
    assert answer.show_alert
    assert "out of date" in (answer.text or "")
    answer = await forge(harness, OTHER, "sc:o")
    assert answer.show_alert
    assert "out of date" in (answer.text or "")
    assert gosms.sms(sms_id), "untouched"


async def test_list_and_card_in_russian(harness: Harness, gosms: FakeGoSMS) -> None:
    seed(gosms, 2, status=2)
    await connect(harness, RU, "ru")
    await harness.send(RU, "/sms")
    assert harness.last(RU).text.startswith("📋 Ваши SMS: 2")
    await harness.press(RU, "1")
    card = harness.last(RU)
    assert "Статус: 📨 отправлено" in card.text
    assert card.button_texts() == ["🔄 Обновить", "🗑 Удалить", "‹ К списку"]
    await harness.press(RU, "Удалить")
    await harness.press(RU, "Да, удалить")
    assert "🗑 SMS удалено." in harness.last(RU).text


async def test_back_to_a_page_that_is_gone_shows_the_last_one(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    ids = seed(gosms, 21)
    await connect(harness, EN)
    await harness.send(EN, "/sms")
    listing = harness.last(EN)
    await harness.press(EN, "›")
    await harness.press(EN, "›")
    await harness.press(EN, "21")
    assert ids[0] in harness.tg.message(EN, listing.message_id).text
    gosms.advance_clock(300)
    await harness.press(EN, "Delete")
    await harness.press(EN, "Yes, delete")
    await harness.press(EN, "Back to the list")
    assert "page 2 of 2" in harness.tg.message(EN, listing.message_id).text


async def test_a_new_command_leaves_the_send_dialog(harness: Harness, gosms: FakeGoSMS) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/send")
    await harness.send(EN, "/sms")
    await harness.send(EN, "79991234567")
    assert "/help lists what I can do" in harness.last(EN).text
    assert not gosms.requests_for(GOSMS_TOKEN, "/sms/send")
