"""Webhook mode: the bot registers its URL with the secret and answers updates posted to it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sqlite3
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from bot.app import run_webhook
from bot.config import Settings
from tests.conftest import GOTSMS_TOKEN, BotProcess
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import FakeTelegram

USER = 5001
SECRET = "webhook-secret-0123456789"


async def wait_listening(port: int) -> None:
    for _ in range(200):
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the webhook server never listened")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_mode(settings: Settings, tg: FakeTelegram) -> None:
    port = free_port()
    public = "https://bot.example.test/telegram/hook"  # TLS ends at a proxy in front of the bot
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    settings = settings.model_copy(
        update={
            "webhook_url": public,
            "webhook_secret": SecretStr(SECRET),
            "web_host": "127.0.0.1",
            "web_port": port,
        }
    )
    server = asyncio.create_task(run_webhook(settings))
    try:
        await tg.wait_for(lambda: bool(tg.calls_of("setWebhook")), timeout=30)
        registered = tg.calls_of("setWebhook")[0].params
        assert registered["url"] == public
        assert registered["secret_token"] == SECRET
        await wait_listening(port)
        tg.user(USER, language_code="ru")
        update = tg.message_update(USER, "/start")
        async with aiohttp.ClientSession() as http:
            wrong = await http.post(
                hook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
            )
            assert wrong.status == 401
            right = await http.post(
                hook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
            )
            assert right.status == 200
        reply = await tg.wait_for_bot_message(USER, "Привет", timeout=15)
        assert "SMS Desk" in reply.text
        assert len(tg.bot_messages(USER)) == 1, "the update with the wrong secret was ignored"
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


def claimed_pushes(tmp_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "bot.db")) as db:
        query = "SELECT count(*) FROM outbox WHERE claimed_until IS NOT NULL AND sent_at IS NULL"
        return int(db.execute(query).fetchone()[0])


async def test_webhook_process_stops_cleanly_on_sigterm(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram, gotsms: FakeGotSMS
) -> None:
    """`docker stop` sends SIGTERM: the dispatcher shuts down, the poller and the sender stop
    (a push Telegram is slow to answer is let go, not left claimed) and the exit code is 0."""
    port = free_port()
    env = bot_env | {
        "WEBHOOK_URL": "https://bot.example.test/telegram/hook",
        "WEBHOOK_SECRET": SECRET,
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "POLL_INTERVAL": "1",
    }
    bot = BotProcess(env, tmp_path)
    await bot.start()
    try:
        await tg.wait_for(lambda: bool(tg.calls_of("setWebhook")), timeout=60)
        await wait_listening(port)
        tg.user(USER, language_code="en")
        update = tg.message_update(USER, f"/token gotsms {GOTSMS_TOKEN}")
        async with aiohttp.ClientSession() as http:
            hook = f"http://127.0.0.1:{port}/telegram/hook"
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            assert (await http.post(hook, json=update, headers=headers)).status == 200
        await tg.wait_for_bot_message(USER, "GotSMS is connected", timeout=15)
        rent = gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "day", 1)["id"])
        tg.set_slow_answers({"sendMessage"}, 120.0)
        gotsms.inject_message(rent["id"], "Your code is 314159", code="314159")
        await tg.wait_for_bot_message(USER, "314159", timeout=20)
        assert claimed_pushes(tmp_path) == 1, "the push is under way"
    finally:
        assert bot.process is not None
        bot.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(bot.process.wait(), 30)
        await bot.stop()
    assert code == 0, bot.log
    assert "stopped cleanly" in bot.log, bot.log
    assert "Traceback" not in bot.log, bot.log
    assert claimed_pushes(tmp_path) == 0, "the cut-off push goes again at the next start"


async def test_an_update_under_way_at_sigterm_is_answered(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram, gotsms: FakeGotSMS
) -> None:
    port = free_port()
    env = bot_env | {
        "WEBHOOK_URL": "https://bot.example.test/telegram/hook",
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
    }
    bot = BotProcess(env, tmp_path)
    await bot.start()
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    try:
        await tg.wait_for(lambda: bool(tg.calls_of("setWebhook")), timeout=60)
        await wait_listening(port)
        tg.user(USER, language_code="en")
        async with aiohttp.ClientSession() as http:
            connect = tg.message_update(USER, f"/token gotsms {GOTSMS_TOKEN}")
            assert (await http.post(hook, json=connect)).status == 200
            await tg.wait_for_bot_message(USER, "GotSMS is connected", timeout=15)
            asked = len(gotsms.requests)
            gotsms.set_latency(2.0)
            balance = asyncio.create_task(http.post(hook, json=tg.message_update(USER, "/balance")))
            await tg.wait_for(lambda: len(gotsms.requests) > asked, timeout=15)
            assert bot.process is not None
            bot.process.send_signal(signal.SIGTERM)
            assert (await balance).status == 200
        await tg.wait_for_bot_message(USER, "Your GotSMS balance", timeout=15)
        code = await asyncio.wait_for(bot.process.wait(), 30)
    finally:
        await bot.stop()
    assert code == 0, bot.log
    assert "Traceback" not in bot.log, bot.log
