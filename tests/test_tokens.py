"""/token and /logout through the real dispatcher, against the GoSMS and GotSMS doubles."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.db.models import Device, Service
from bot.db.repo import CredentialRepo, DeviceRepo
from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS

EN, RU, OTHER = 2001, 2002, 2003
GROUP = -100777


async def stored(harness: Harness, user_id: int, service: Service) -> str | None:
    async with harness.deps.session_factory() as session:
        return await CredentialRepo(session, harness.deps.cipher).token(user_id, service)


def user_message_deleted(harness: Harness, chat_id: int, text: str) -> bool:
    return not any(m.text == text and not m.from_bot for m in harness.tg.chat(chat_id))


def db_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (tmp_path / "data").glob("bot.db*"))


async def test_one_liner_gotsms_good_token(harness: Harness, tmp_path: Path) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, f"/token gotsms {GOTSMS_TOKEN}")
    reply = harness.last(EN).text
    assert "GotSMS is connected. Balance: 100.00." in reply
    assert "stored encrypted" in reply
    assert user_message_deleted(harness, EN, f"/token gotsms {GOTSMS_TOKEN}")
    assert await stored(harness, EN, Service.GOTSMS) == GOTSMS_TOKEN
    assert GOTSMS_TOKEN.encode() not in db_bytes(tmp_path)


async def test_one_liner_gosms_good_token_in_russian(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_sms(GOSMS_TOKEN)
    gosms.add_sms(GOSMS_TOKEN)
    harness.tg.user(RU, language_code="ru")
    await harness.send(RU, f"/token GoSMS {GOSMS_TOKEN}")
    assert "GoSMS подключён: в аккаунте 2 SMS." in harness.last(RU).text
    assert await stored(harness, RU, Service.GOSMS) == GOSMS_TOKEN
    assert [r.query.get("limit") for r in gosms.requests_for(GOSMS_TOKEN, "/sms")] == ["1"]


async def test_wrong_tokens_are_refused_and_not_stored(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/token gotsms wrong-token-123456")
    assert "GotSMS did not accept this token" in harness.last(EN).text
    assert "Nothing was saved" in harness.last(EN).text
    await harness.send(EN, "/token gosms wrong-key-123456")
    assert "GoSMS did not accept this token" in harness.last(EN).text
    assert await stored(harness, EN, Service.GOTSMS) is None
    assert await stored(harness, EN, Service.GOSMS) is None
    assert user_message_deleted(harness, EN, "/token gosms wrong-key-123456")


async def test_switched_off_gosms_key_says_so(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_account("switched-off-key-0001", active=False)
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/token gosms switched-off-key-0001")
    assert "turned off" in harness.last(EN).text
    assert await stored(harness, EN, Service.GOSMS) is None


async def test_gosms_key_without_list_permission_is_kept_with_a_warning(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_account("send-only-key-000001", permissions={"send", "get"})
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/token gosms send-only-key-000001")
    assert "may not read the SMS list" in harness.last(EN).text
    assert await stored(harness, EN, Service.GOSMS) == "send-only-key-000001"


async def test_garbage_is_not_sent_to_the_api(harness: Harness, gotsms: FakeGotSMS) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/token gotsms short")
    assert "doesn't look like a GotSMS token" in harness.last(EN).text
    await harness.send(EN, "/token telegram abcdefgh12345")
    assert "I couldn't read that." in harness.last(EN).text
    assert user_message_deleted(harness, EN, "/token telegram abcdefgh12345")
    await harness.send(EN, "/token gotsms two words")
    assert "I couldn't read that." in harness.last(EN).text
    assert not gotsms.requests


async def test_guided_flow(harness: Harness, gotsms: FakeGotSMS) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/token")
    question = harness.last(EN)
    assert question.text == "Which service is the token for?"
    answer = await harness.press(EN, "GotSMS")
    assert answer.answered
    prompt = harness.tg.message(EN, question.message_id)
    assert prompt.text.startswith("Send your GotSMS API token now."), (
        "the question is edited in place"
    )
    await harness.send(EN, f"  {GOTSMS_TOKEN}  ")
    assert user_message_deleted(harness, EN, f"  {GOTSMS_TOKEN}  ")
    assert "GotSMS is connected" in harness.last(EN).text
    assert await stored(harness, EN, Service.GOTSMS) == GOTSMS_TOKEN
    await harness.send(EN, "hello")
    assert "/help lists what I can do" in harness.last(EN).text, "the dialog is over"


async def test_guided_flow_by_service_word_and_from_the_menu(harness: Harness) -> None:
    harness.tg.user(RU, language_code="ru")
    await harness.send(RU, "/token gosms")
    assert harness.last(RU).text.startswith("Пришлите API-токен GoSMS.")
    await harness.send(RU, GOSMS_TOKEN)
    assert "GoSMS подключён" in harness.last(RU).text
    await harness.send(RU, "/start")
    await harness.press(RU, "Подключить токен")
    assert harness.last(RU).text == "Для какого сервиса токен?"


async def test_tokens_are_refused_in_groups(harness: Harness, gotsms: FakeGotSMS) -> None:
    harness.tg.user(EN, language_code="en")
    text = f"/token gotsms {GOTSMS_TOKEN}"
    await harness.send(EN, text, chat_id=GROUP, chat_type="supergroup")
    assert "only in a private chat" in harness.last(GROUP).text
    assert user_message_deleted(harness, GROUP, text)
    assert await stored(harness, EN, Service.GOTSMS) is None
    assert not gotsms.requests


async def test_pasted_token_outside_a_dialog_is_deleted(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, GOTSMS_TOKEN)
    assert user_message_deleted(harness, EN, GOTSMS_TOKEN)
    assert "looked like an API token" in harness.last(EN).text


async def test_service_down_answers_within_15_seconds(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS
) -> None:
    gotsms.set_down(True)
    gosms.set_latency(30)
    harness.tg.user(EN, language_code="en")
    started = time.monotonic()
    await harness.send(EN, f"/token gotsms {GOTSMS_TOKEN}")
    assert "GotSMS is not answering right now" in harness.last(EN).text
    await harness.send(EN, f"/token gosms {GOSMS_TOKEN}")
    assert time.monotonic() - started < 30, "each reply within 15 s"
    assert "GoSMS is not answering right now" in harness.last(EN).text
    assert "was not saved" in harness.last(EN).text
    assert await stored(harness, EN, Service.GOTSMS) is None
    assert "typing" in [c.params.get("action") for c in harness.tg.calls_of("sendChatAction")]


async def connect_both(harness: Harness, user_id: int) -> None:
    await harness.send(user_id, f"/token gotsms {GOTSMS_TOKEN}")
    await harness.send(user_id, f"/token gosms {GOSMS_TOKEN}")
    async with harness.deps.session_factory() as session:
        await DeviceRepo(session).add(user_id, "6622a8bbd963898821ebf934", "Poco")
        await session.commit()


async def test_logout_one_service_after_confirmation(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/logout")
    assert "nothing to disconnect" in harness.last(EN).text
    await connect_both(harness, EN)
    await harness.send(EN, "/logout")
    assert harness.last(EN).button_texts() == ["GotSMS", "GoSMS", "Both"]
    await harness.press(EN, "GoSMS")
    question = harness.last(EN)
    assert question.text.startswith("Disconnect your GoSMS token?")
    assert await stored(harness, EN, Service.GOSMS) == GOSMS_TOKEN, "nothing happens before yes"
    await harness.press(EN, "Yes, disconnect")
    assert "the GoSMS token is disconnected" in harness.tg.message(EN, question.message_id).text
    assert await stored(harness, EN, Service.GOSMS) is None
    assert await stored(harness, EN, Service.GOTSMS) == GOTSMS_TOKEN
    async with harness.deps.session_factory() as session:
        assert await session.get(Device, 1) is None, "its devices are forgotten too"


async def test_logout_both_from_the_menu_in_russian(harness: Harness) -> None:
    harness.tg.user(RU, language_code="ru")
    await connect_both(harness, RU)
    await harness.send(RU, "/start")
    await harness.press(RU, "Отключить токен")
    await harness.press(RU, "Оба")
    question = harness.last(RU)
    assert question.text.startswith("Отключить токены GoSMS и GotSMS?")
    await harness.press(RU, "Да, отключить")
    done = harness.tg.message(RU, question.message_id).text
    assert done.startswith("Готово: токены GoSMS и GotSMS отключены.")
    assert await stored(harness, RU, Service.GOSMS) is None
    assert await stored(harness, RU, Service.GOTSMS) is None


async def test_logout_cancel_changes_nothing(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await connect_both(harness, EN)
    await harness.send(EN, "/logout")
    await harness.press(EN, "GotSMS")
    confirm_update = harness.press_update(EN, "Yes, disconnect")
    answer = await harness.press(EN, "Cancel")
    assert answer.text == "Cancelled"
    assert harness.last(EN).text == "Nothing was changed."
    await harness.feed(confirm_update)  # the yes of a cancelled question is stale
    assert await stored(harness, EN, Service.GOTSMS) == GOTSMS_TOKEN


@pytest.mark.parametrize("concurrent", [False, True])
async def test_logout_runs_once_however_fast_it_is_pressed(
    harness: Harness, concurrent: bool
) -> None:
    harness.tg.user(EN, language_code="en")
    await connect_both(harness, EN)
    await harness.send(EN, "/logout")
    await harness.press(EN, "GotSMS")
    presses = [harness.press_update(EN, "Yes, disconnect") for _ in range(2)]
    if concurrent:
        await asyncio.gather(*(harness.feed(update) for update in presses))
    else:
        for update in presses:
            await harness.feed(update)
    answers = [harness.tg.callback_answers[u["callback_query"]["id"]] for u in presses]
    assert all(a.answered for a in answers)
    refused = [a for a in answers if a.text and "already used" in a.text]
    assert len(refused) == 1
    done = [m for m in harness.tg.bot_messages(EN) if "disconnected" in m.text]
    assert len(done) == 1


async def test_another_users_confirmation_does_nothing(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    harness.tg.user(OTHER, language_code="en")
    await connect_both(harness, EN)
    await harness.send(EN, "/logout")
    await harness.press(EN, "GotSMS")
    message_id, data = harness.find_button(EN, "Yes, disconnect")
    forged = harness.tg.callback_update(OTHER, message_id, data, chat_id=EN)
    await harness.feed(forged)
    answer = harness.tg.callback_answers[forged["callback_query"]["id"]]
    assert answer.text is not None
    assert "belongs to another user" in answer.text
    assert await stored(harness, EN, Service.GOTSMS) == GOTSMS_TOKEN
