"""Webhook mode: the bot registers its URL with the secret and answers updates posted to it."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiohttp
from pydantic import SecretStr

from bot.app import run_webhook
from bot.config import Settings
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
