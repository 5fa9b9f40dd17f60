"""Whatever goes wrong, the user gets a short localized answer and the bot stays up."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from sqlalchemy import event

from bot.api.errors import ApiRejected
from bot.db.models import User
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
    assert answer.text == "This rental can't be refunded."


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


class LockedUsers:
    """While armed, the database answers "database is locked" to reads of the users table."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.armed and statement.lstrip().startswith("SELECT") and "FROM users" in statement:
            raise sqlite3.OperationalError("database is locked")


@pytest.fixture
def locked_users(harness: Harness) -> Iterator[LockedUsers]:
    hook = LockedUsers()
    engine = harness.deps.engine.sync_engine
    event.listen(engine, "before_cursor_execute", hook)
    yield hook
    event.remove(engine, "before_cursor_execute", hook)


async def test_a_failure_before_the_handler_is_answered(
    harness: Harness, locked_users: LockedUsers, caplog: pytest.LogCaptureFixture
) -> None:
    """The database fails in the middleware that loads the user: the command gets the
    localized apology, the press an alert, and the bot goes on once the database is back."""
    harness.tg.user(RU, language_code="ru")
    await harness.send(RU, "/start")
    locked_users.armed = True
    await harness.send(RU, "/help")
    assert harness.last(RU).text == "У меня что-то пошло не так. Попробуйте ещё раз."
    answer = await harness.press(RU, "Помощь")
    assert answer.answered
    assert answer.show_alert
    assert answer.text == "У меня что-то пошло не так. Попробуйте ещё раз."
    locked_users.armed = False
    await harness.send(RU, "/help")
    assert "/token" in harness.last(RU).text
    caplog.clear()  # the expected tracebacks are not a defect of this test


async def test_a_failed_handler_leaves_the_database_as_it_was(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    async def half_done(message: Message, user: User) -> None:
        user.language = "ru"
        raise ZeroDivisionError("bug")

    harness.dp.message.register(half_done, Command("boom"))
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/boom")
    assert harness.last(EN).text == "Something went wrong on my side. Please try again."
    async with harness.deps.session_factory() as session:
        user = await session.get(User, EN)
    assert user is not None
    assert user.language is None, "the half-done change was rolled back"
    caplog.clear()
