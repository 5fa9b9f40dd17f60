"""`python -m bot` started as a user would, talking to the test doubles over loopback."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, BotProcess
from tests.fakes.telegram import FakeTelegram

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
        await tg.wait_for_bot_message(RU, "Пришлите ваш токен GoSMS.", timeout=15)
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
