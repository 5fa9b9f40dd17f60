"""The outbox sender: once, in order, paced; Telegram's 429, 5xx, 403 and bad requests handled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramMigrateToChat, TelegramNetworkError
from aiogram.methods import SendMessage
from sqlalchemy import select, text, update

from bot.db.models import User, utcnow
from bot.db.outbox import OutboxItem
from bot.db.outbox_repo import OutboxRepo
from bot.db.repo import UserRepo
from bot.poller.pushes import RENDERERS, Push
from bot.poller.sender import MAX_ATTEMPTS, OutboxSender, Pace
from bot.telegram_retry import RetryRequests
from tests.conftest import Harness

U1, U2 = 6001, 6002
CODE = {
    "service": "Telegram",
    "phone": "+1 415 555 0100",
    "code": "123456",
    "body": "Code 123456 <b>&",
}


async def add_user(
    harness: Harness, user_id: int, language: str = "en", *, known_chat: bool = True
) -> None:
    if known_chat:  # an unknown chat is "chat not found" for the fake, as for Telegram
        harness.tg.user(user_id, language_code=language)
        harness.tg.register_chat(user_id)
    async with harness.deps.session_factory() as session:
        await UserRepo(session).upsert_seen(user_id, user_id, language)
        await session.commit()


async def enqueue(
    harness: Harness,
    user_id: int,
    key: str,
    payload: dict[str, Any] | None = None,
    kind: str = "code",
) -> bool:
    async with harness.deps.session_factory() as session:
        added = await OutboxRepo(session).enqueue(user_id, kind, key, payload or CODE)
        await session.commit()
        return added


async def rows(harness: Harness) -> list[OutboxItem]:
    async with harness.deps.session_factory() as session:
        return list((await session.scalars(select(OutboxItem).order_by(OutboxItem.id))).all())


def sender(harness: Harness, **kwargs: Any) -> OutboxSender:
    return OutboxSender(harness.bot, harness.deps.session_factory, harness.deps.i18n, **kwargs)


async def test_a_code_is_pushed_once_with_a_copy_button(harness: Harness) -> None:
    await add_user(harness, U1)
    assert await enqueue(harness, U1, "msg-1")
    assert not await enqueue(harness, U1, "msg-1"), "the same message is queued once"
    out = sender(harness)
    assert await out.drain_once() == 1
    assert await out.drain_once() == 0
    pushed = harness.last(U1)
    assert "New code from <b>Telegram</b>" in (pushed.html or "")
    assert "Code 123456 <b>&" in pushed.text, "the API's text is escaped, not interpreted"
    button = pushed.buttons[0][0]
    assert button.raw["copy_text"] == {"text": "123456"}
    [row] = await rows(harness)
    assert row.sent_at is not None
    assert row.message_id == pushed.message_id


async def test_pushes_are_localized_when_sent(harness: Harness) -> None:
    await add_user(harness, U1, "ru")
    await enqueue(harness, U1, "msg-1", {"code": None, "body": "Ваш код 4321", "phone": "+7"})
    await sender(harness).drain_once()
    pushed = harness.last(U1)
    assert pushed.text.startswith("🔑 Новый код")
    assert pushed.buttons[0][0].raw["copy_text"] == {"text": "4321"}, "found in the text"


async def test_a_users_pushes_keep_their_order(harness: Harness) -> None:
    await add_user(harness, U1)
    for n in range(4):
        await enqueue(harness, U1, f"msg-{n}", CODE | {"code": f"00000{n}"})
    out = sender(harness, pace=Pace(chat_rate=1000, chat_burst=1000))
    while await out.drain_once():
        pass
    codes = [m.buttons[0][0].raw["copy_text"]["text"] for m in harness.tg.bot_messages(U1)]
    assert codes == ["000000", "000001", "000002", "000003"]


async def test_pace_per_chat_and_in_all() -> None:
    pace = Pace(global_rate=5, chat_rate=1, chat_burst=2)
    assert [pace.allows(1, 0.0) for _ in range(3)] == [True, True, False]
    assert pace.allows(1, 1.0), "one more a second later"
    assert sum(pace.allows(chat, 1.0) for chat in range(10, 20)) == 4, "5 a second in all"


async def test_pace_forgets_chats_once_they_could_send_again() -> None:
    pace = Pace(global_rate=10_000, chat_rate=1, chat_burst=2, prune_every=10)
    for chat in range(1000):
        assert pace.allows(chat, 0.0)
    pace.pause(5, 100, 0.0)
    assert [pace.allows(7, 9.9), pace.allows(7, 9.9), pace.allows(7, 9.9)] == [True, True, False]
    assert pace.allows(8, 10.0), "a pruning call still answers"
    assert set(pace.chats) == {7, 8}, "chat 7 is still empty, chat 8 just sent"
    assert set(pace.paused) == {5}
    assert not pace.allows(7, 10.0), "its pace survives the pruning"
    assert not pace.allows(5, 50.0), "so does a pause"
    assert pace.allows(5, 101.0)
    assert set(pace.chats) == {5}
    assert not pace.paused


async def test_telegram_429_delays_without_losing(harness: Harness) -> None:
    await add_user(harness, U1)
    await enqueue(harness, U1, "msg-1")
    harness.tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 30", retry_after=30)
    out = sender(harness)
    assert await out.drain_once() == 0
    [row] = await rows(harness)
    assert row.sent_at is None
    assert row.attempts == 0
    assert row.not_before > utcnow() + timedelta(seconds=25)
    assert await out.drain_once() == 0, "not before Telegram said so"


async def test_telegram_5xx_is_retried_with_backoff(harness: Harness) -> None:
    await add_user(harness, U1)
    await enqueue(harness, U1, "msg-1")
    # every attempt of the inline retry fails, so the outbox takes over
    harness.tg.fail_next("sendMessage", 502, "Bad Gateway", times=RetryRequests().attempts)
    out = sender(harness)
    assert await out.drain_once() == 0
    [row] = await rows(harness)
    assert row.attempts == 1
    assert row.sent_at is None
    async with harness.deps.session_factory() as session:
        await OutboxRepo(session).retry_later(row.id, utcnow(), count=False)
    assert await out.drain_once() == 1
    assert len(harness.tg.bot_messages(U1)) == 1


@pytest.mark.parametrize("gone", ["blocked", "chat not found"])
async def test_a_blocked_user_is_no_longer_pushed_to(harness: Harness, gone: str) -> None:
    await add_user(harness, U1, known_chat=gone == "blocked")
    await add_user(harness, U2)
    await enqueue(harness, U1, "msg-1")
    await enqueue(harness, U1, "msg-2")
    await enqueue(harness, U2, "msg-1")
    if gone == "blocked":
        harness.tg.block(U1)
    await sender(harness).drain_once()
    async with harness.deps.session_factory() as session:
        user = await session.get(User, U1)
        assert user is not None
        assert not user.is_active
    dropped = [r.dropped for r in await rows(harness) if r.user_id == U1]
    assert dropped == [gone, gone]
    assert len(harness.tg.bot_messages(U2)) == 1, "other users are not held up"


async def test_a_refused_push_is_dropped_and_the_next_goes(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_payload: Any) -> Push:
        return Push("<b>unclosed")

    await add_user(harness, U1)
    await enqueue(harness, U1, "bad", kind="broken")
    await enqueue(harness, U1, "msg-1")
    out = sender(harness, renderers=RENDERERS | {"broken": broken})
    await out.drain_once()
    await out.drain_once()
    assert [r.dropped for r in await rows(harness)] == ["bad request", None]
    assert "New code" in harness.last(U1).text
    assert any("refused by Telegram" in r.getMessage() for r in caplog.records)


async def test_a_crashed_senders_claim_runs_out(harness: Harness) -> None:
    await add_user(harness, U1)
    await enqueue(harness, U1, "msg-1")
    [row] = await rows(harness)
    async with harness.deps.session_factory() as session:
        assert await OutboxRepo(session).claim(row.id, utcnow(), timedelta(seconds=0.3))
    out = sender(harness)
    assert await out.drain_once() == 0, "another sender holds it"
    await asyncio.sleep(0.4)
    assert await out.drain_once() == 1
    assert len(harness.tg.bot_messages(U1)) == 1


async def test_two_senders_send_each_push_once(harness: Harness) -> None:
    for user in (U1, U2):
        await add_user(harness, user)
        for n in range(3):
            await enqueue(harness, user, f"msg-{n}")
    first, second = sender(harness), sender(harness)
    for _ in range(4):
        await asyncio.gather(first.drain_once(), second.drain_once())
        await asyncio.sleep(0.05)
    assert len(harness.tg.bot_messages(U1)) == 3
    assert len(harness.tg.bot_messages(U2)) == 3


async def until(condition: Callable[[], object], seconds: float) -> float:
    """Waits for `condition`; returns how long it took (fails after `seconds`)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        if condition():
            return loop.time() - began
        assert loop.time() - began < seconds, "not in time"
        await asyncio.sleep(0.02)


async def test_a_send_waiting_out_a_429_does_not_hold_up_other_chats(harness: Harness) -> None:
    await add_user(harness, U1)
    await add_user(harness, U2)
    harness.tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    await enqueue(harness, U1, "msg-1")
    out, stop = sender(harness), asyncio.Event()
    running = asyncio.create_task(out.run(stop))
    try:
        await until(lambda: harness.tg.calls_of("sendMessage"), 5)
        await enqueue(harness, U2, "msg-2")
        out.wake()
        assert await until(lambda: harness.tg.bot_messages(U2), 2) < 1.5
        assert not harness.tg.bot_messages(U1), "U1's send is still waiting out its 429"
        await until(lambda: harness.tg.bot_messages(U1), 8)
    finally:
        stop.set()
        await running
    assert [len(harness.tg.bot_messages(u)) for u in (U1, U2)] == [1, 1]


class Refuse:
    """Answers the next `times` sendMessage calls with `error` before they reach Telegram (a
    network failure or a client-side fault the loopback fake cannot produce)."""

    def __init__(self, error: Callable[[Any], Exception], times: int) -> None:
        self.error, self.times = error, times

    async def __call__(self, make_request: Any, bot: Bot, method: Any) -> Any:
        if isinstance(method, SendMessage) and self.times > 0:
            self.times -= 1
            raise self.error(method)
        return await make_request(bot, method)


def plain_bot(harness: Harness) -> Bot:
    """A bot without the inline retry of 5xx and network errors: each send is one try."""
    api = TelegramAPIServer.from_base(harness.tg.url)
    return Bot(
        harness.bot.token,
        session=AiohttpSession(api=api),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


async def all_due_now(harness: Harness) -> None:
    async with harness.deps.session_factory() as session:
        await session.execute(update(OutboxItem).values(not_before=utcnow()))
        await session.commit()


REFUSALS: dict[str, tuple[int, str] | Callable[[Any], Exception]] = {
    "unauthorized": (401, "Unauthorized"),
    "not found": (404, "Not Found"),
    "conflict": (409, "Conflict: terminated by other getUpdates request"),
    "server error": (500, "Internal Server Error"),
    "bad request": (400, "Bad Request: can't parse entities"),
    "migrate": lambda m: TelegramMigrateToChat(m, "Bad Request: group migrated", -100777),
    "network": lambda m: TelegramNetworkError(m, "ClientConnectorError: connection reset"),
    "client bug": lambda m: RuntimeError("Session is closed"),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
async def test_a_push_telegram_keeps_refusing_is_parked_and_the_next_goes(
    harness: Harness, caplog: pytest.LogCaptureFixture, refusal: str
) -> None:
    await add_user(harness, U1)
    await enqueue(harness, U1, "poison")
    await enqueue(harness, U1, "msg-2", CODE | {"code": "222222"})
    bot = plain_bot(harness)
    error = REFUSALS[refusal]
    tries = 1 if refusal == "bad request" else MAX_ATTEMPTS  # a bad request is never repeated
    if isinstance(error, tuple):
        harness.tg.fail_next("sendMessage", *error, times=tries)
    else:
        bot.session.middleware(Refuse(error, MAX_ATTEMPTS))
    pace = Pace(chat_rate=1000, chat_burst=1000)
    out = OutboxSender(bot, harness.deps.session_factory, harness.deps.i18n, pace=pace)
    try:
        for _ in range(MAX_ATTEMPTS + 1):
            await all_due_now(harness)
            if await out.drain_once():
                break
    finally:
        await bot.session.close()
    poison, second = await rows(harness)
    assert poison.dropped is not None
    assert poison.sent_at is None
    assert poison.attempts == tries
    assert second.sent_at is not None, "the user's next push went"
    [pushed] = harness.tg.bot_messages(U1)
    assert pushed.buttons[0][0].raw["copy_text"] == {"text": "222222"}
    parked = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(parked) == 1, [r.getMessage() for r in parked]
    assert f"push {poison.id}" in parked[0].getMessage()
    assert parked[0].exc_info is None
    assert harness.bot.token not in caplog.text


async def fail_updates(harness: Harness, column: str, when: str, error: str) -> None:
    """A trigger makes the database refuse these updates of the outbox with this error."""
    if harness.deps.engine.dialect.name == "sqlite":
        statements = [
            f"CREATE TRIGGER poison BEFORE UPDATE OF {column} ON outbox WHEN {when}"
            f" BEGIN SELECT RAISE(ABORT, '{error}'); END"
        ]
    else:  # PostgreSQL; the emptying of the database after the test drops both
        statements = [
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN IF {when} THEN RAISE EXCEPTION '{error}'; END IF; RETURN NEW; END $$",
            f"CREATE TRIGGER poison BEFORE UPDATE OF {column} ON outbox"
            " FOR EACH ROW EXECUTE FUNCTION poison()",
        ]
    async with harness.deps.session_factory() as session:
        for statement in statements:
            await session.execute(text(statement))
        await session.commit()


async def test_a_database_error_after_a_send_does_not_block_the_user(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await add_user(harness, U1)
    await enqueue(harness, U1, "poison")
    await enqueue(harness, U1, "msg-2", CODE | {"code": "222222"})
    await fail_updates(
        harness,
        "sent_at",
        "NEW.dedupe_key = 'poison' AND NEW.sent_at IS NOT NULL",
        "disk I/O error",
    )
    out, stop = sender(harness, claim_hold=timedelta(seconds=0.2)), asyncio.Event()
    running = asyncio.create_task(out.run(stop))
    try:
        await until(lambda: len(harness.tg.bot_messages(U1)) >= 2, 10)
        await asyncio.sleep(0.5)  # time for a claim to run out and a duplicate to go
    finally:
        stop.set()
        await running
    pushed = harness.tg.bot_messages(U1)
    assert [m.buttons[0][0].raw["copy_text"]["text"] for m in pushed] == ["123456", "222222"]
    poison, second = await rows(harness)
    assert poison.dropped is not None, "sent, and parked since it cannot be marked sent"
    assert second.sent_at is not None
    assert "Task exception was never retrieved" not in caplog.text


async def test_tries_whose_failure_cannot_be_recorded_still_count(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await add_user(harness, U1)
    await enqueue(harness, U1, "poison")
    await enqueue(harness, U1, "msg-2", CODE | {"code": "222222"})
    await fail_updates(
        harness, "not_before", "NEW.dedupe_key = 'poison'", "database disk image is malformed"
    )
    harness.tg.fail_next("sendMessage", 500, "Internal Server Error", times=MAX_ATTEMPTS)
    bot = plain_bot(harness)
    pace = Pace(chat_rate=1000, chat_burst=1000)
    hold = timedelta(seconds=0.05)
    out = OutboxSender(
        bot, harness.deps.session_factory, harness.deps.i18n, pace=pace, claim_hold=hold
    )
    try:
        for _ in range(MAX_ATTEMPTS + 2):
            await asyncio.sleep(0.1)  # the claim of a try that could not be settled runs out
            if await out.drain_once():
                break
    finally:
        await bot.session.close()
    poison, second = await rows(harness)
    assert poison.dropped is not None
    assert poison.attempts == MAX_ATTEMPTS
    assert second.sent_at is not None, "the user's next push went"
    assert any("parked" in r.getMessage() for r in caplog.records)
