"""The general commands through the real dispatcher, against the test doubles."""

from __future__ import annotations

from aiogram.fsm.storage.base import StorageKey

from bot.app import set_commands
from bot.commands import COMMANDS
from bot.db.models import User
from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, Harness

EN, RU = 1001, 1002


async def test_start_in_english(harness: Harness) -> None:
    harness.tg.user(EN, first_name="Ann <&>", language_code="en")
    await harness.send(EN, "/start")
    reply = harness.last(EN)
    assert "Hi, Ann <&>!" in reply.text, "the name is shown, escaped"
    assert "GoSMS" in reply.text
    assert "GotSMS" in reply.text
    assert "connect a token with /token" in reply.text
    assert "Connect a token" in " ".join(reply.button_texts())
    assert "Disconnect a token" not in " ".join(reply.button_texts())


async def test_start_in_russian(harness: Harness) -> None:
    harness.tg.user(RU, first_name="Иван", language_code="ru")
    await harness.send(RU, "/start")
    reply = harness.last(RU)
    assert "Привет, Иван!" in reply.text
    assert "Подключить токен" in " ".join(reply.button_texts())


async def test_help_lists_every_command_one_line_each(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en-GB")
    await harness.send(EN, "/help")
    lines = harness.last(EN).text.splitlines()
    for command, _description in COMMANDS:
        assert sum(line.startswith(f"/{command} — ") for line in lines) == 1
    assert lines[-1] == "In a group: /link shares a rental's codes there, /unlink stops it."


async def test_help_button_of_the_main_menu(harness: Harness) -> None:
    harness.tg.user(RU, language_code="ru")
    await harness.send(RU, "/start")
    answer = await harness.press(RU, "Помощь")
    assert answer.answered
    assert "/token — подключить токен" in harness.last(RU).text


async def test_lang_switches_everything_after(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/lang")
    offer = harness.last(EN)
    assert offer.button_texts() == ["✅ English", "Русский"]
    answer = await harness.press(EN, "Русский")
    assert answer.answered
    assert answer.text == "Язык: Русский"
    edited = harness.tg.message(EN, offer.message_id)
    assert edited.text.startswith("Язык: Русский."), "the same message is edited in place"
    await harness.send(EN, "/help")
    assert "/lang — выбрать язык" in harness.last(EN).text
    async with harness.deps.session_factory() as session:
        user = await session.get(User, EN)
        assert user is not None
        assert user.language == "ru"
    await harness.send(EN, "/lang")
    await harness.press(EN, "English")
    await harness.send(EN, "/help")
    assert "/lang — choose the language" in harness.last(EN).text


async def test_lang_button_from_the_menu(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/start")
    await harness.press(EN, "Language")
    assert harness.last(EN).text == "Choose the language:"


async def test_unknown_commands_and_text_get_a_hint(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/frobnicate now")
    assert "I don't know that command. /help" in harness.last(EN).text
    await harness.send(EN, "hello there <b>")
    assert "/help lists what I can do" in harness.last(EN).text
    harness.tg.user(RU, language_code="ru")
    await harness.send(RU, "привет")
    assert "/help — что я умею" in harness.last(RU).text


async def test_cancel_without_and_with_a_dialog(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/cancel")
    assert harness.last(EN).text == "There is nothing to cancel."
    await harness.send(EN, "/token")
    await harness.press(EN, "GotSMS")
    await harness.send(EN, "/cancel")
    assert harness.last(EN).text.startswith("Cancelled.")
    key = StorageKey(bot_id=harness.bot.id, chat_id=EN, user_id=EN)
    assert await harness.dp.storage.get_state(key) is None
    await harness.send(EN, "just words")
    assert "/help lists what I can do" in harness.last(EN).text


async def test_stale_and_forged_buttons_are_refused_politely(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/start")
    message_id = harness.last(EN).message_id
    for data in ("nope:1", "lang:xx", "tok:unknown", "cf:logout", "menu"):
        update = harness.tg.callback_update(EN, message_id, data)
        await harness.feed(update)
        answer = harness.tg.callback_answers[update["callback_query"]["id"]]
        assert answer.answered
        assert answer.show_alert
        assert answer.text is not None
        assert "out of date" in answer.text


async def test_blocking_and_coming_back(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/start")
    await harness.feed(harness.tg.my_chat_member_update(EN, "kicked"))
    async with harness.deps.session_factory() as session:
        user = await session.get(User, EN)
        assert user is not None
        assert not user.is_active
    await harness.feed(harness.tg.my_chat_member_update(EN, "member"))
    await harness.feed(harness.tg.my_chat_member_update(EN, "kicked"))
    harness.tg.unblock(EN)
    await harness.send(EN, "/start")
    async with harness.deps.session_factory() as session:
        user = await session.get(User, EN)
        assert user is not None
        assert user.is_active


async def test_command_menus_in_both_languages(harness: Harness) -> None:
    await set_commands(harness.bot, harness.deps.i18n)
    english = {c["command"]: c["description"] for c in harness.tg.commands_for()}
    russian = {c["command"]: c["description"] for c in harness.tg.commands_for(language_code="ru")}
    assert set(english) == set(russian) == {name for name, _ in COMMANDS}
    assert english["token"] == "connect a GoSMS or GotSMS token"
    assert russian["token"] == "подключить токен GoSMS или GotSMS"


async def test_the_main_menu_opens_each_connected_service(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, f"/token gotsms {GOTSMS_TOKEN}")
    await harness.send(EN, f"/token gosms {GOSMS_TOKEN}")
    await harness.send(EN, "/start")
    labels = harness.last(EN).button_texts()
    for label in (
        "Rent a number",
        "My rentals",
        "Codes",
        "Balance",
        "Send SMS",
        "My SMS",
        "Devices",
    ):
        assert any(label in text for text in labels), label
        answer = await harness.press(EN, label)
        assert answer.answered
        assert not answer.show_alert, f"{label}: {answer.text}"
        await harness.send(EN, "/start")
