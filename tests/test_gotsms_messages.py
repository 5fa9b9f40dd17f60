"""/codes and /messages against the fake GotSMS."""

from __future__ import annotations

from typing import Any

from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.test_gotsms_catalog import connect, copy_texts

EN, RU = 3401, 3402


def rent(gotsms: FakeGotSMS, service: str = "Telegram") -> dict[str, Any]:
    return gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by(service, "day", 1)["id"])


async def test_codes_copy_and_mark_read(harness: Harness, gotsms: FakeGotSMS) -> None:
    made = rent(gotsms)
    gotsms.inject_message(made["id"], "Your code is 123456 <script>")
    gotsms.inject_message(made["id"], "Login code: 777888")
    gotsms.inject_message(made["id"], "Hello without a code", code="")
    await connect(harness, EN)
    await harness.send(EN, "/codes")
    codes = harness.last(EN)
    assert codes.text.startswith("📬 Unread codes (3)")
    assert "Your code is 123456 <script>" in codes.text
    assert copy_texts(codes) == ["777888", "123456"]
    assert [r.query["mark_as_read"] for r in gotsms.requests_for(GOTSMS_TOKEN)] == ["0"]
    assert len(gotsms.unread_of(GOTSMS_TOKEN)) == 3, "listing marks nothing"
    await harness.press(EN, "Mark as read")
    done = harness.tg.message(EN, codes.message_id)
    assert done.text == "✅ Marked 3 messages as read."
    assert gotsms.requests_for(GOTSMS_TOKEN)[-1].query["mark_as_read"] == "1"
    assert gotsms.unread_of(GOTSMS_TOKEN) == []
    await harness.press(EN, "Check again")
    assert "No unread codes" in harness.tg.message(EN, codes.message_id).text


async def test_codes_that_arrive_meanwhile_are_shown_when_marked(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    made = rent(gotsms)
    gotsms.inject_message(made["id"], "Code 111111")
    await connect(harness, EN)
    await harness.send(EN, "/codes")
    gotsms.inject_message(made["id"], "Code 222222")
    await harness.press(EN, "Mark as read")
    text = harness.last(EN).text
    assert "Marked 2 messages as read." in text
    assert "New messages arrived in the meantime" in text
    assert "Code 222222" in text
    assert copy_texts(harness.last(EN)) == ["222222", "111111"]


async def test_codes_more_than_a_page(harness: Harness, gotsms: FakeGotSMS) -> None:
    made = rent(gotsms)
    for n in range(10):
        gotsms.inject_message(made["id"], f"Code {100000 + n}")
    await connect(harness, RU, "ru")
    await harness.send(RU, "/codes")
    assert "…и ещё 2." in harness.last(RU).text
    await harness.press(RU, "Отметить прочитанными")
    assert "Отмечено прочитанными: 8 сообщений." in harness.last(RU).text
    await harness.press(RU, "Следующие")
    assert "Непрочитанные коды (2)" in harness.last(RU).text


async def test_no_codes_in_russian(harness: Harness) -> None:
    await connect(harness, RU, "ru")
    await harness.send(RU, "/codes")
    assert "Непрочитанных кодов нет" in harness.last(RU).text


async def test_messages_pages_and_filters(harness: Harness, gotsms: FakeGotSMS) -> None:
    telegram = rent(gotsms)
    google = rent(gotsms, "Google")
    for n in range(9):
        gotsms.inject_message(telegram["id"], f"Telegram code {500000 + n}")
    gotsms.inject_message(google["id"], "G-654321 is your Google code")
    await connect(harness, EN)
    await harness.send(EN, "/messages")
    history = harness.last(EN)
    assert history.text.startswith("✉️ Messages (1/2)")
    assert "G-654321 is your Google code" in history.text
    await harness.press(EN, "›")
    assert "Telegram code 500000" in harness.tg.message(EN, history.message_id).text
    digits = "".join(ch for ch in google["phone"] if ch.isdigit())
    await harness.send(EN, f"/messages {google['phone']}")
    by_phone = harness.last(EN)
    assert gotsms.requests[-1].query["phone"] == digits
    assert "Telegram code" not in by_phone.text
    assert "Google code" in by_phone.text
    await harness.send(EN, "/messages telegram")
    by_service = harness.last(EN)
    assert "service: Telegram" in by_service.text
    assert "Google" not in by_service.text
    await harness.press(EN, "All messages")
    assert "Google code" in harness.tg.message(EN, by_service.message_id).text
    await harness.press(EN, "Service")
    await harness.press(EN, "Google")
    assert "service: Google" in harness.last(EN).text


async def test_messages_in_russian(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect(harness, RU, "ru")
    await harness.send(RU, "/messages")
    assert "Сообщений пока нет." in harness.last(RU).text
    await harness.send(RU, "/messages нетакого")
    assert "Сервис «нетакого» не найден." in harness.tg.bot_messages(RU)[-2].text
