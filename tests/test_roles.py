"""ROLE=web|worker|all, the webhook and the command menu set once per deployment, and a second
polling instance refused instead of fought over (in-process runners against the fakes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import run_polling, run_webhook
from bot.config import Role, Settings
from bot.db.migrate import upgrade_to_head
from bot.polling import ANOTHER_POLLER, WEBHOOK_SET, ConflictGuard, PollingConflict
from tests.backends import REDIS_URL
from tests.conftest import GOTSMS_TOKEN
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import MSG_POLL_TERMINATED, FakeTelegram
from tests.test_webhook import free_port

USER = 6001
PUBLIC = "https://bot.example.test/telegram/hook"
SECRET = "webhook-secret-0123456789"
SCHEDULER_TASKS = {"scheduler", "outbox-sender"}


@contextlib.asynccontextmanager
async def running(main: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """One instance (run_webhook / run_polling) for the block, cancelled after it."""
    task = asyncio.create_task(main)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def instance(settings: Settings, tmp_path: Path, name: str, **changes: Any) -> Settings:
    """Settings of one instance: its own port (and database unless given)."""
    update: dict[str, Any] = {
        "web_host": "127.0.0.1",
        "web_port": free_port(),
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/{name}/bot.db",
    }
    return settings.model_copy(update=update | changes)


def webhook(settings: Settings, **changes: Any) -> Settings:
    update = {"webhook_url": PUBLIC, "webhook_secret": SecretStr(SECRET)}
    return settings.model_copy(update=update | changes)


async def health(port: int) -> tuple[int, dict[str, str]]:
    url = f"http://127.0.0.1:{port}/healthz"
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        return answer.status, await answer.json()


async def healthy(port: int) -> dict[str, str]:
    """Waits (up to 30 s) until the instance on `port` answers /healthz with 200."""
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                status, report = await health(port)
                if status == 200:
                    return report
            await asyncio.sleep(0.1)


async def metrics(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        assert answer.status == 200
        return await answer.text()


def scheduler_tasks() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks()} & SCHEDULER_TASKS


async def post_update(port: int, update: dict[str, Any]) -> int:
    async with aiohttp.ClientSession() as http:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        hook = f"http://127.0.0.1:{port}/telegram/hook"
        async with http.post(hook, json=update, headers=headers) as answer:
            return answer.status


async def instance_roles(db: Path) -> list[str]:
    def read() -> list[str]:
        with contextlib.closing(sqlite3.connect(db)) as connection:
            rows = connection.execute("SELECT role FROM instances ORDER BY role").fetchall()
            return [str(role) for (role,) in rows]

    return await asyncio.to_thread(read)


async def test_web_and_worker_split_the_work(
    settings: Settings, tmp_path: Path, tg: FakeTelegram, gotsms: FakeGotSMS
) -> None:
    """ROLE=web answers updates and runs no poller; ROLE=worker serves no update route, sets
    no webhook and sends the pushes."""
    shared = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/shared/bot.db", "poll_interval": 1}
    web = webhook(instance(settings, tmp_path, "web", role=Role.WEB, **shared))
    worker = webhook(instance(settings, tmp_path, "worker", role=Role.WORKER, **shared))
    async with running(run_webhook(web)):
        assert await healthy(web.web_port) == {"database": "ok", "redis": "unused", "poller": "off"}
        assert not scheduler_tasks(), "a web instance polls and sends nothing"
        async with running(run_webhook(worker)):
            report = await healthy(worker.web_port)
            assert report["poller"] == "ok"
            assert scheduler_tasks() == SCHEDULER_TASKS
            assert await instance_roles(tmp_path / "shared" / "bot.db") == ["web", "worker"], (
                "the worker did not take the live web instance for a dead one"
            )
            tg.user(USER, language_code="en")
            connect = tg.message_update(USER, f"/token gotsms {GOTSMS_TOKEN}")
            assert await post_update(worker.web_port, connect) == 404, "no update route"
            assert not tg.bot_messages(USER)
            assert await post_update(web.web_port, connect) == 200
            await tg.wait_for_bot_message(USER, "GotSMS is connected", timeout=15)
            rent = gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "day", 1)["id"])
            gotsms.inject_message(rent["id"], "Your code is 271828", code="271828")
            await tg.wait_for_bot_message(USER, "271828", timeout=20)
            counted = 'sms_desk_updates_total{kind="message",outcome="ok"} 1.0'
            assert counted in await metrics(web.web_port)
            worker_figures = await metrics(worker.web_port)
            assert "sms_desk_updates_total{" not in worker_figures
            assert 'sms_desk_polls_total{job="codes",outcome="ok"}' in worker_figures
    assert len(tg.calls_of("setWebhook")) == 1, "the worker set no webhook"
    assert len(tg.calls_of("getWebhookInfo")) == 1, "nor looked at it"


async def test_a_worker_in_polling_mode_takes_no_updates(
    settings: Settings, tmp_path: Path, tg: FakeTelegram
) -> None:
    worker = instance(settings, tmp_path, "worker", role=Role.WORKER)
    tg.user(USER, language_code="en")
    tg.send_text(USER, "/start")
    async with running(run_polling(worker)):
        assert (await healthy(worker.web_port))["poller"] == "ok"
        await asyncio.sleep(0.5)
        assert not tg.calls_of("getUpdates")
        assert not tg.calls_of("deleteWebhook"), "the webhook is the web instance's business"
        assert not tg.calls_of("setMyCommands")
    assert len(tg.pending_updates) == 1, "the update waits for an instance that takes updates"
    assert not tg.bot_messages(USER)


@pytest.fixture
async def redis_namespace() -> AsyncIterator[str]:
    """A namespace of this test's own in the real Redis, deleted afterwards."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} does not answer: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} does not answer: {exc}")
    namespace = f"test-{uuid.uuid4().hex}"
    try:
        yield namespace
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def one_migration_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alembic's context is global to a process: instances started together in one process
    (not in production, where each is a process of its own) migrate in turn."""
    turn = asyncio.Lock()

    async def in_turn(engine: AsyncEngine) -> None:
        async with turn:
            await upgrade_to_head(engine)

    monkeypatch.setattr("bot.app.upgrade_to_head", in_turn)


async def test_three_instances_set_webhook_and_menu_once(
    settings: Settings,
    tmp_path: Path,
    tg: FakeTelegram,
    redis_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_migration_at_a_time(monkeypatch)
    # reads answered late: instances that did not take turns would all find nothing set yet
    tg.set_slow_answers({"getWebhookInfo", "getMyCommands"}, 0.3)
    shared = {"redis_url": REDIS_URL, "redis_namespace": redis_namespace}
    three = [webhook(instance(settings, tmp_path, f"i{n}", **shared)) for n in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        for one in three:  # started together
            await stack.enter_async_context(running(run_webhook(one)))
        for one in three:
            await healthy(one.web_port)
        assert len(tg.calls_of("setWebhook")) == 1
        assert tg.webhook is not None
        assert tg.webhook["secret_token"] == SECRET
        menus = [call.params.get("language_code") for call in tg.calls_of("setMyCommands")]
        assert sorted(menus, key=str) == [None, "ru"], "one menu per language"
    restarted = three[0]
    async with running(run_webhook(restarted)):
        await healthy(restarted.web_port)
    assert len(tg.calls_of("setWebhook")) == 1, "a restart finds the webhook set"
    assert len(tg.calls_of("setMyCommands")) == 2
    new_secret = webhook(restarted, webhook_secret=SecretStr("another-secret-9876543210"))
    async with running(run_webhook(new_secret)):
        await healthy(new_secret.web_port)
    assert len(tg.calls_of("setWebhook")) == 2, "a new secret is set, though Telegram hides it"
    assert tg.webhook["secret_token"] == "another-secret-9876543210"


async def test_without_redis_only_a_differing_webhook_is_set(
    settings: Settings, tmp_path: Path, tg: FakeTelegram
) -> None:
    """One instance without Redis: no fingerprint of the secret, so a webhook with a secret is
    set at each start; one without a secret only when Telegram's differs."""
    plain = webhook(instance(settings, tmp_path, "one"), webhook_secret=None)
    for _ in range(2):
        async with running(run_webhook(plain)):
            await healthy(plain.web_port)
    assert len(tg.calls_of("setWebhook")) == 1
    assert len(tg.calls_of("setMyCommands")) == 2, "the menus are set once"
    with_secret = webhook(plain)
    for _ in range(2):
        async with running(run_webhook(with_secret)):
            await healthy(with_secret.web_port)
    assert len(tg.calls_of("setWebhook")) == 3


async def test_the_fake_ends_a_waiting_poll_with_telegrams_conflict(tg: FakeTelegram) -> None:
    """As Telegram: a getUpdates for the same token ends the one that waits with 409."""
    url = f"{tg.url}/bot{tg.bot_token}/getUpdates"
    async with aiohttp.ClientSession() as http:
        first = asyncio.create_task(http.post(url, json={"timeout": 10}))
        await tg.wait_for(lambda: bool(tg.calls_of("getUpdates")), timeout=5)
        second = await http.post(url, json={"timeout": 0})
        ended = await asyncio.wait_for(first, 5)
        assert second.status == 200
        assert ended.status == 409
        body = await ended.json()
    assert body == {"ok": False, "error_code": 409, "description": MSG_POLL_TERMINATED}
    assert MSG_POLL_TERMINATED == (
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running"
    )


async def test_a_second_polling_instance_stops_and_the_first_serves_on(
    settings: Settings, tmp_path: Path, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ConflictGuard, "settled", 3.0)
    first = instance(settings, tmp_path, "first")
    second = instance(settings, tmp_path, "second")
    async with running(run_polling(first)) as serving:
        await tg.wait_for(lambda: bool(tg.calls_of("getUpdates")), timeout=30)
        await asyncio.sleep(3.5)  # the first has polled alone for longer than `settled`
        with pytest.raises(PollingConflict) as stopped:
            await asyncio.wait_for(run_polling(second), 30)
        assert str(stopped.value) == ANOTHER_POLLER
        assert not serving.done()
        tg.user(USER, first_name="Eve", language_code="en")
        tg.send_text(USER, "/start")
        await tg.wait_for_bot_message(USER, "Hi, Eve!", timeout=15)


async def test_a_webhook_set_while_polling_stops_the_poller(
    settings: Settings, tmp_path: Path, tg: FakeTelegram
) -> None:
    """An instance in webhook mode took the token over: polling stops with one line instead of
    trying getUpdates forever."""
    polling = instance(settings, tmp_path, "polling")
    task = asyncio.create_task(run_polling(polling))
    try:
        await tg.wait_for(lambda: bool(tg.calls_of("getUpdates")), timeout=30)
        async with aiohttp.ClientSession() as http:
            url = f"{tg.url}/bot{tg.bot_token}/setWebhook"
            async with http.post(url, json={"url": PUBLIC}) as answer:
                assert answer.status == 200
        tg.user(USER, first_name="Eve", language_code="en")
        tg.send_text(USER, "/start")  # ends the waiting poll; the next one conflicts
        with pytest.raises(PollingConflict) as stopped:
            await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, PollingConflict):
            await task
    assert str(stopped.value) == WEBHOOK_SET
