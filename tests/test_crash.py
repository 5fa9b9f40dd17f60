"""SIGKILL `python -m bot` again and again while codes arrive: nothing is lost, and a code is
doubled at most once per kill (the message that was in flight)."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path

from tests.conftest import GOTSMS_TOKEN, BotProcess
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import FakeTelegram

USER = 8001
KILLS = 4


async def running(bot: BotProcess, tg: FakeTelegram) -> None:
    calls = len(tg.calls_of("getUpdates"))
    await tg.wait_for(lambda: len(tg.calls_of("getUpdates")) > calls, timeout=60)


def kill(bot: BotProcess) -> None:
    assert bot.process is not None
    bot.process.send_signal(signal.SIGKILL)


async def test_codes_survive_repeated_sigkill(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram, gotsms: FakeGotSMS
) -> None:
    env = bot_env | {"POLL_INTERVAL": "1", "LOG_LEVEL": "INFO"}
    random.seed(7)
    bot = BotProcess(env, tmp_path)
    await bot.start()
    await running(bot, tg)
    tg.user(USER, language_code="en")
    tg.send_text(USER, f"/token gotsms {GOTSMS_TOKEN}")
    await tg.wait_for_bot_message(USER, "GotSMS is connected", timeout=20)
    rent = gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "day", 1)["id"])
    codes: list[str] = []
    for round_number in range(KILLS):
        for _ in range(3):
            code = str(500000 + len(codes))
            gotsms.inject_message(rent["id"], f"Your code is {code}", code=code)
            codes.append(code)
            await asyncio.sleep(random.uniform(0.2, 0.8))
        kill(bot)
        await bot.stop()
        assert "Traceback" not in bot.log, bot.log
        bot = BotProcess(env, tmp_path)
        await bot.start()
        if round_number < KILLS - 1:
            await running(bot, tg)

    def delivered() -> Counter[str]:
        texts = [m.text for m in tg.bot_messages(USER)]
        return Counter(code for code in codes for text in texts if f"\n{code}\n" in text)

    try:
        await tg.wait_for(lambda: set(delivered()) == set(codes), timeout=60)
    finally:
        exit_code = await bot.stop()
    counts = delivered()
    assert set(counts) == set(codes), f"lost: {set(codes) - set(counts)}"
    doubled = sum(n - 1 for n in counts.values())
    assert doubled <= KILLS, counts
    assert exit_code == 0
    assert "Traceback" not in bot.log, bot.log
