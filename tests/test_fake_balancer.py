"""The doubles of a deployment of several instances: the round-robin proxy, the fake Telegram's
webhook delivery and per-second count, a port per client on the fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.balancer import Balancer
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import Call, FakeTelegram, WebhookDelivery
from tests.test_webhook import free_port

Backend = tuple[str, list[dict[str, Any]]]


@pytest.fixture
async def backends() -> AsyncIterator[Callable[..., Awaitable[Backend]]]:
    """Starts small webhook servers: each answers its name and records what it got."""
    runners: list[web.AppRunner] = []

    async def start(name: str, statuses: list[int] | None = None) -> Backend:
        seen: list[dict[str, Any]] = []
        answers = list(statuses or [])

        async def hook(request: web.Request) -> web.Response:
            seen.append({"body": await request.json(), "headers": dict(request.headers)})
            return web.Response(status=answers.pop(0) if answers else 200, text=name)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}", seen

    yield start
    for runner in runners:
        await runner.cleanup()


async def _post(url: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body or {}) as answer:
        return answer.status, await answer.text()


async def test_the_balancer_takes_turns_and_skips_a_dead_backend(
    backends: Callable[..., Awaitable[Backend]],
) -> None:
    (one, _), (two, _) = await backends("one"), await backends("two")
    dead = f"http://127.0.0.1:{free_port()}"
    async with Balancer([one, dead, two]) as balancer:
        names = [(await _post(balancer.url + "/hook"))[1] for _ in range(6)]
        assert names == ["one", "two", "two", "one", "two", "two"]
        assert balancer.skipped[dead] == 2
        assert balancer.served == {one: 2, two: 4}
    async with Balancer([dead]) as nobody:
        assert (await _post(nobody.url + "/hook"))[0] == 502
        assert nobody.failed == 1


async def test_updates_are_posted_to_the_webhook_with_its_secret_and_retried(
    backends: Callable[..., Awaitable[Backend]], tg: FakeTelegram
) -> None:
    target, seen = await backends("bot", statuses=[500])
    status, _ = await _post(
        f"{tg.url}/bot{tg.bot_token}/setWebhook",
        {"url": "https://bot.example.test/hook", "secret_token": "s3cret"},
    )
    assert status == 200
    delivery = WebhookDelivery(tg, target + "/hook", retry=0.05)
    await delivery.start()
    try:
        tg.send_text(7, "first")
        tg.send_text(7, "second")
        tg.send_text(8, "other chat")
        await tg.wait_for(lambda: len(delivery.delivered) == 3, timeout=5)
    finally:
        await delivery.close()
    texts = [s["body"]["message"]["text"] for s in seen]
    assert texts.count("first") == 2, "the update answered 500 came again"
    assert texts.index("first") < texts.index("second"), "in order within a chat"
    assert {s["headers"]["X-Telegram-Bot-Api-Secret-Token"] for s in seen} == {"s3cret"}
    assert not tg.pending_updates


def test_most_calls_in_one_second(tg: FakeTelegram) -> None:
    for at in (0.0, 0.3, 0.9, 1.0, 1.05, 1.95, 5.0):
        tg.calls.append(Call("sendMessage", {}, 200, {}, 100.0 + at))
    tg.calls.append(Call("editMessageText", {}, 200, {}, 100.95))
    assert tg.most_in_one_second() == 4  # 0.3, 0.9, 1.0 and 1.05
    assert tg.most_in_one_second("sendMessage", "editMessageText") == 5
    assert tg.most_in_one_second(after=101.0) == 3


async def test_a_port_per_client_tells_them_apart(gotsms: FakeGotSMS, tg: FakeTelegram) -> None:
    other_gotsms, other_tg = await gotsms.listen_also(), await tg.listen_also()
    gotsms.add_account("token-of-a-user-0001")
    async with aiohttp.ClientSession() as http:
        for url in (gotsms.url, other_gotsms, other_gotsms):
            headers = {"Authorization": "Bearer token-of-a-user-0001"}
            async with http.get(url + "/account", headers=headers) as answer:
                assert answer.status == 200
        async with http.get(f"{other_tg}/bot{tg.bot_token}/getMe") as answer:
            assert answer.status == 200
    hosts = [r.headers["Host"] for r in gotsms.requests]
    assert hosts[1] == hosts[2] != hosts[0]
    assert gotsms.max_calls_per_token()["token-of-a-user-0001"] == 3
    assert tg.calls_of("getMe")[0].host == other_tg.removeprefix("http://")
