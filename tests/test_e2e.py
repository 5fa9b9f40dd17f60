"""`python -m bot` started as a user would, talking to the test doubles over loopback."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, BotProcess
from tests.fakes.telegram import FakeTelegram
from tests.test_webhook import free_port

EN, RU = 3001, 3002


async def test_start_token_reply_restart(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram
) -> None:
    bot = BotProcess(bot_env, tmp_path)
    await bot.start()
    try:
        await tg.wait_for(lambda: bool(tg.calls_of("getUpdates")), timeout=60)
        tg.user(EN, first_name="Eve", language_code="en")
        tg.send_text(EN, "/start")
        await tg.wait_for_bot_message(EN, "Hi, Eve!", timeout=15)
        tg.send_text(EN, f"/token gotsms {GOTSMS_TOKEN}")
        await tg.wait_for_bot_message(EN, "GotSMS is connected. Balance: 100.00.", timeout=15)
        assert not any(GOTSMS_TOKEN in m.text for m in tg.chat(EN)), "the token message is deleted"
        tg.user(RU, first_name="Оля", language_code="ru")
        tg.send_text(RU, "/token")
        await tg.wait_for_bot_message(RU, "Для какого сервиса токен?", timeout=15)
        tg.press_button(RU, "GoSMS")
        await tg.wait_for_bot_message(RU, "Пришлите API-токен GoSMS.", timeout=15)
        tg.send_text(RU, GOSMS_TOKEN)
        await tg.wait_for_bot_message(RU, "GoSMS подключён", timeout=15)
        assert tg.commands_for(language_code="ru"), "the Russian command menu is set"
    finally:
        code = await bot.stop()
    assert code == 0, bot.log
    state = tmp_path / "state"
    key_file = state / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    raw = b"".join(p.read_bytes() for p in state.glob("bot.db*"))
    for secret in (GOTSMS_TOKEN, GOSMS_TOKEN, tg.bot_token):
        assert secret.encode() not in raw
        assert secret not in bot.log
    assert "Traceback" not in bot.log

    again = BotProcess(bot_env, tmp_path)
    await again.start()
    try:
        tg.send_text(EN, "/start")
        reply = await tg.wait_for_bot_message(EN, "Hi, Eve!", timeout=60)
        assert "GotSMS ✅" in reply.text, "the stored token survives a restart"
    finally:
        assert await again.stop() == 0, again.log
    assert "Traceback" not in again.log


async def logged(bot: BotProcess, text: str) -> None:
    """Waits (up to 30 s) until the running bot logged `text`."""
    async with asyncio.timeout(30):
        while text not in bot.log:
            assert bot.process is not None
            assert bot.process.returncode is None, bot.log
            await asyncio.sleep(0.1)


async def test_waits_for_telegram_to_come_up(bot_env: dict[str, str], tmp_path: Path) -> None:
    """A container that starts before its network: one line says what cannot be reached, the
    bot keeps trying (with backoff) and serves as soon as Telegram answers."""
    port = free_port()
    env = bot_env | {"TELEGRAM_API_URL": f"http://127.0.0.1:{port}/", "LOG_LEVEL": "INFO"}
    bot = BotProcess(env, tmp_path)
    late = FakeTelegram()
    await bot.start()
    try:
        await logged(bot, f"Telegram cannot be reached at http://127.0.0.1:{port}")
        await asyncio.sleep(2)  # a few more tries fail
        await late.start(port)
        await late.wait_for(lambda: bool(late.calls_of("getUpdates")), timeout=60)
        late.user(EN, first_name="Eve", language_code="en")
        late.send_text(EN, "/start")
        await late.wait_for_bot_message(EN, "Hi, Eve!", timeout=15)
    finally:
        code = await bot.stop()
        await late.close()
    assert code == 0, bot.log
    assert "Traceback" not in bot.log, bot.log
    assert bot.log.count("Telegram cannot be reached") == 1, bot.log
    assert "Telegram reached" in bot.log, bot.log


async def test_a_wrong_bot_token_stops_at_once(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram
) -> None:
    env = bot_env | {"BOT_TOKEN": "42:not-the-token-of-this-bot"}
    bot = BotProcess(env, tmp_path)
    await bot.start()
    assert bot.process is not None
    code = await asyncio.wait_for(bot.process.wait(), 30)
    await bot.stop()
    assert code == 2, bot.log
    assert "Telegram refused BOT_TOKEN" in bot.log, bot.log
    assert "Traceback" not in bot.log, bot.log
    assert not tg.calls_of("getUpdates")


async def test_a_second_instance_in_polling_mode_is_refused(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram
) -> None:
    """Two `python -m bot` polling one token: one stops with one line and exit code 2 (the
    second getUpdates conflicts), the other serves on, instead of both fighting for updates."""
    bots = [
        BotProcess(bot_env | {"WEB_HOST": "127.0.0.1", "WEB_PORT": str(free_port())}, tmp_path)
        for _ in range(2)
    ]
    await bots[0].start()
    try:
        await tg.wait_for(lambda: bool(tg.calls_of("getUpdates")), timeout=60)
        await bots[1].start()
        processes = [bot.process for bot in bots if bot.process is not None]
        waits = [asyncio.create_task(process.wait()) for process in processes]
        done, _ = await asyncio.wait(waits, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1, [bot.log for bot in bots]
        stopped = bots[waits.index(done.pop())]
        serving = bots[1 - bots.index(stopped)]
        tg.user(EN, first_name="Eve", language_code="en")
        tg.send_text(EN, "/start")
        await tg.wait_for_bot_message(EN, "Hi, Eve!", timeout=15)
        assert serving.process is not None
        assert serving.process.returncode is None
    finally:
        codes = [await bot.stop() for bot in bots]
    assert codes[bots.index(stopped)] == 2, stopped.log
    assert codes[bots.index(serving)] == 0, serving.log
    line = "another instance is polling this bot token: run one instance in polling mode"
    assert stopped.log.count(line) == 1, stopped.log
    assert "stopped cleanly" in stopped.log, stopped.log
    for bot in bots:
        assert "Traceback" not in bot.log, bot.log
        assert "Failed to fetch updates" not in bot.log, bot.log
