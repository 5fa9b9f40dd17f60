"""/healthz and /metrics: what a load balancer and Prometheus read from every instance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import Deps, build_deps, run_polling
from bot.config import Role, Settings
from bot.metrics import CONTENT_TYPE
from bot.poller import Poller, create_poller
from bot.web import STALLED_AFTER, add_routes
from tests.conftest import GOTSMS_TOKEN
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import FakeTelegram
from tests.test_roles import healthy, instance, running
from tests.test_webhook import free_port

USER = 6101


async def get(port: int, path: str) -> tuple[int, str, str]:
    """Status, content type and body."""
    url = f"http://127.0.0.1:{port}{path}"
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        return answer.status, answer.headers["Content-Type"], await answer.text()


async def test_polling_mode_serves_health_and_metrics(
    settings: Settings, tmp_path: Path, tg: FakeTelegram, gotsms: FakeGotSMS
) -> None:
    bot = instance(settings, tmp_path, "one", poll_interval=1)
    async with running(run_polling(bot)):
        assert await healthy(bot.web_port) == {
            "database": "ok",
            "redis": "unused",
            "poller": "ok",
        }
        tg.user(USER, language_code="en")
        tg.send_text(USER, f"/token gotsms {GOTSMS_TOKEN}")
        await tg.wait_for_bot_message(USER, "GotSMS is connected", timeout=15)
        rent = gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "day", 1)["id"])
        gotsms.inject_message(rent["id"], "Your code is 161803", code="161803")
        await tg.wait_for_bot_message(USER, "161803", timeout=20)
        status, kind, text = await get(bot.web_port, "/metrics")
        assert status == 200
        assert kind == CONTENT_TYPE
        assert 'sms_desk_updates_total{kind="message",outcome="ok"} 1.0' in text
        assert "sms_desk_update_seconds_count 1.0" in text
        assert 'sms_desk_polls_total{job="codes",outcome="ok"}' in text
        await backlog_is(bot.web_port, 0)  # the push is marked sent once Telegram answered
        tg.set_slow_answers({"sendMessage"}, 60.0)  # the next push stays unsent a while
        gotsms.inject_message(rent["id"], "Your code is 141421", code="141421")
        await tg.wait_for_bot_message(USER, "141421", timeout=20)
        _, _, text = await get(bot.web_port, "/metrics")
        assert "sms_desk_outbox_backlog 1.0" in text
        tg.set_slow_answers(set(), 0)


async def backlog_is(port: int, count: int) -> None:
    async with asyncio.timeout(10):
        while True:
            if f"sms_desk_outbox_backlog {count:.1f}" in (await get(port, "/metrics"))[2]:
                return
            await asyncio.sleep(0.1)


@pytest.fixture
async def deps(settings: Settings) -> AsyncIterator[Deps]:
    built = await build_deps(settings.model_copy(update={"role": Role.WEB}))
    yield built
    await built.close()


@pytest.fixture
async def served(deps: Deps) -> AsyncIterator[tuple[TestServer, list[Poller | None]]]:
    """The two routes on a server of their own; the list holds the poller /healthz looks at."""
    poller: list[Poller | None] = [None]
    app = web.Application()
    add_routes(app, deps, lambda: poller[0])
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    yield server, poller
    await server.close()


async def healthz(server: TestServer) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/healthz")) as answer:
        return answer.status, await answer.json()


async def test_a_web_instance_is_healthy_without_a_poller(
    served: tuple[TestServer, list[Poller | None]],
) -> None:
    server, _ = served
    assert await healthz(server) == (200, {"database": "ok", "redis": "unused", "poller": "off"})


async def test_an_unreachable_database_is_503(
    deps: Deps, served: tuple[TestServer, list[Poller | None]], tmp_path: Path
) -> None:
    server, _ = served
    working = deps.engine
    deps.engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/gone/nowhere/bot.db")
    try:
        status, report = await healthz(server)
    finally:
        await deps.engine.dispose()
        deps.engine = working
    assert status == 503
    assert report["database"] == "unreachable"


async def test_an_unreachable_redis_is_503(
    deps: Deps, served: tuple[TestServer, list[Poller | None]]
) -> None:
    server, _ = served
    deps.redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens
    status, report = await healthz(server)
    assert status == 503
    assert report == {"database": "ok", "redis": "unreachable", "poller": "off"}


async def test_a_stalled_or_stopped_poller_is_503(
    deps: Deps, served: tuple[TestServer, list[Poller | None]], tg: FakeTelegram
) -> None:
    from bot.app import create_bot

    server, holder = served
    deps.settings = deps.settings.model_copy(update={"role": Role.ALL})
    assert await healthz(server) == (
        503,
        {"database": "ok", "redis": "unused", "poller": "starting"},
    )
    bot = create_bot(deps.settings)
    poller = create_poller(bot, deps.session_factory, deps.cipher, deps.clients, deps.i18n, 3.0)
    holder[0] = poller
    poller.tasks = [asyncio.create_task(asyncio.sleep(60)) for _ in range(2)]
    try:
        assert (await healthz(server))[1]["poller"] == "ok"
        poller.scheduler.last_round -= STALLED_AFTER + 1
        assert await healthz(server) == (
            503,
            {"database": "ok", "redis": "unused", "poller": "stalled"},
        )
        poller.tasks[0].cancel()
        await asyncio.sleep(0)
        assert (await healthz(server))[1]["poller"] == "stopped"
    finally:
        for task in poller.tasks:
            task.cancel()
        await bot.session.close()
