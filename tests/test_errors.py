"""Whatever goes wrong, the user gets a short localized answer and the bot stays up."""

from __future__ import annotations

import logging

import pytest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.api.errors import ApiRejected
from tests.conftest import Harness

EN, RU = 4001, 4002


async def test_an_unexpected_error_is_logged_once_and_answered(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(message: Message) -> None:
        raise ZeroDivisionError("bug")

    harness.dp.message.register(boom, Command("boom"))
    harness.tg.user(RU, language_code="ru")
    await harness.send(RU, "/boom")
    assert harness.last(RU).text == "У меня что-то пошло не так. Попробуйте ещё раз."
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 1
    assert "failed" in failures[0].getMessage()
    caplog.clear()  # the expected traceback is not a defect of this test


async def test_an_api_error_in_a_button_becomes_an_alert(harness: Harness) -> None:
    async def refuse(query: CallbackQuery) -> None:
        raise ApiRejected(
            "gotsms", "Refund not available for this rent.", status=422, code="refund_unavailable"
        )

    harness.dp.callback_query.register(refuse)
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/start")
    answer = await harness.press(EN, "Help")
    assert answer.answered
    assert answer.show_alert
    assert answer.text == "This rent can't be refunded."


async def test_telegram_429_and_5xx_on_a_reply_are_retried(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    harness.tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    harness.tg.fail_next("sendMessage", 502, "Bad Gateway")
    await harness.send(EN, "/help")
    assert "/token" in harness.last(EN).text
    assert [c.http_status for c in harness.tg.calls_of("sendMessage")] == [429, 502, 200]


async def test_a_refused_reply_is_logged_without_a_traceback(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.tg.user(EN, language_code="en")
    harness.tg.fail_next("sendMessage", 400, "Bad Request: chat not found", times=2)
    await harness.send(EN, "/help")
    refused = [
        r for r in caplog.records if "refused" in r.getMessage() or "could not" in r.getMessage()
    ]
    assert len(refused) == 2, "the refusal and the failed notice are logged as warnings"
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in refused)
    await harness.send(EN, "/help")
    assert "/token" in harness.last(EN).text, "the bot is still up"
