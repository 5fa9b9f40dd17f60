"""Restart safety: SIGKILL `python -m bot` in the middle of dialogs, of a rent and of a push
delivery, then start it again on the same database. Dialogs go on where they were, a rent runs
once per confirmation and a cut-off rent is reported, a push in flight arrives (at most twice)."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import func, select, update

from bot.db.fsm import FsmRecord, SqlStorage
from bot.db.models import Credential, utcnow
from bot.db.repo import ConfirmationRepo
from bot.keyboards.gosms import SEND
from bot.keyboards.gotsms import RENT
from bot.poller.recovery import Recovery
from bot.poller.sender import OutboxSender
from tests.backends import Backend, Place, stored_bytes
from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, BotProcess, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import FakeTelegram
from tests.test_gotsms_catalog import connect as connect_gotsms

SENDER, TEXTER, TOKEN_USER, RENTER, NOTIFIED = 9101, 9102, 9103, 9104, 9105
UUID = "5f0c3c1e-8a7b-4c2d-9e1f-0a1b2c3d4e5f"
EN, RU = 9201, 9202
RENT_YES = "Rent for 1.00"
ALREADY_USED = "already used"
WAIT = 20.0
# s from a restart to the push the killed process had in flight: the only instance (SQLite)
# takes over from the process before it at once; instances sharing PostgreSQL wait until the
# dead one's beat is dead_after old (15 s, then up to one beat of 5 s): issue 12's "within 30 s"
TAKEOVER = {Backend.SQLITE: 15.0, Backend.POSTGRES: 30.0}


async def started(env: dict[str, str], tmp_path: Path, tg: FakeTelegram) -> BotProcess:
    """A new `python -m bot`, once it polls Telegram for updates."""
    calls = len(tg.calls_of("getUpdates"))
    bot = BotProcess(env, tmp_path)
    await bot.start()
    await tg.wait_for(lambda: len(tg.calls_of("getUpdates")) > calls, timeout=60)
    return bot


async def killed(bot: BotProcess) -> None:
    assert bot.process is not None
    bot.process.send_signal(signal.SIGKILL)
    assert await bot.stop() == -signal.SIGKILL
    assert "Traceback" not in bot.log, bot.log


async def says(tg: FakeTelegram, user_id: int, text: str) -> None:
    await tg.wait_for_bot_message(user_id, text, timeout=WAIT)


async def answer_of(tg: FakeTelegram, update: dict[str, object]) -> str:
    query = update["callback_query"]
    assert isinstance(query, dict)
    record_id = str(query["id"])
    await tg.wait_for(lambda: tg.callback_queries[record_id].answered, timeout=WAIT)
    return tg.callback_queries[record_id].text or ""


async def connect(tg: FakeTelegram, user_id: int, service: str) -> None:
    token = GOTSMS_TOKEN if service == "gotsms" else GOSMS_TOKEN
    tg.user(user_id, language_code="en")
    tg.send_text(user_id, f"/token {service} {token}")
    await says(tg, user_id, "is connected")


async def test_dialogs_go_on_after_sigkill_and_a_rent_runs_once(
    bot_env: dict[str, str],
    tmp_path: Path,
    tg: FakeTelegram,
    gotsms: FakeGotSMS,
    gosms: FakeGoSMS,
    backend: Place,
) -> None:
    gosms.add_device(GOSMS_TOKEN, device_id=UUID, name="Pixel")
    bot = await started(bot_env, tmp_path, tg)
    # /send, waiting for the device (SENDER) and for the text (TEXTER)
    await connect(tg, SENDER, "gosms")
    tg.send_text(SENDER, f"/devices add {UUID}")
    await says(tg, SENDER, "Saved")
    tg.send_text(SENDER, "/send +7 999 123-45-67 Hello from the dialog")
    await says(tg, SENDER, "Which device should send it?")
    await connect(tg, TEXTER, "gosms")
    tg.send_text(TEXTER, "/send")
    await says(tg, TEXTER, "Who should I send the SMS to?")
    tg.send_text(TEXTER, "8 (912) 000-11-22")
    await says(tg, TEXTER, "Now send the text of the SMS")
    # /token, waiting for the token
    tg.user(TOKEN_USER, language_code="en")
    tg.send_text(TOKEN_USER, "/token")
    await says(tg, TOKEN_USER, "Which service is the token for?")
    tg.press_button(TOKEN_USER, "GotSMS")
    await says(tg, TOKEN_USER, "Send your GotSMS API token now.")
    # /rent, waiting for the area code
    await connect(tg, RENTER, "gotsms")
    tg.send_text(RENTER, "/rent telegram")
    await says(tg, RENTER, "Plans of Telegram")
    tg.press_button(RENTER, "USA · 1 day · 1.00")
    await says(tg, RENTER, "area code")
    # /notify, waiting for the threshold
    tg.user(NOTIFIED, language_code="en")
    tg.send_text(NOTIFIED, "/notify")
    await says(tg, NOTIFIED, "Notifications")
    tg.press_button(NOTIFIED, "Set threshold")
    await says(
        tg, NOTIFIED, "Send the amount: I'll warn you when your GotSMS balance drops below it."
    )

    await killed(bot)
    bot = await started(bot_env, tmp_path, tg)

    tg.press_button(SENDER, "Pixel")
    await says(tg, SENDER, "Which SIM card of Pixel should send it?")
    tg.press_button(SENDER, "SIM 2")
    await says(tg, SENDER, "Send this SMS?")
    tg.press_button(SENDER, "Send")
    await says(tg, SENDER, "Status:")
    tg.send_text(TEXTER, "Hello after a restart")
    await says(tg, TEXTER, "Send this SMS?")
    tg.press_button(TEXTER, "Send")
    await says(tg, TEXTER, "Status:")
    sent = {r.json["message"]: r.json for r in gosms.requests_for(GOSMS_TOKEN, "/sms/send")}
    assert sent["Hello from the dialog"]["device_id"] == UUID
    assert sent["Hello from the dialog"]["to_sim"] == 1
    assert sent["Hello after a restart"]["phone_number"] == "89120001122"
    assert len(sent) == 2

    token_message = tg.send_text(TOKEN_USER, GOTSMS_TOKEN)
    await says(tg, TOKEN_USER, "GotSMS is connected. Balance: 100.00.")
    message_id = token_message["message"]["message_id"]
    assert message_id not in {m.message_id for m in tg.chat(TOKEN_USER)}, "token deleted"

    tg.send_text(NOTIFIED, "2.50")
    await says(tg, NOTIFIED, "I'll warn you when your GotSMS balance drops below 2.50")

    tg.send_text(RENTER, "212")
    await says(tg, RENTER, "Area code: 212")
    yes = tg.press_button(RENTER, RENT_YES)
    await says(tg, RENTER, "Your number:")
    await killed(bot)  # right after the rent was confirmed and made
    bot = await started(bot_env, tmp_path, tg)
    callback = yes["callback_query"]
    again = tg.press(RENTER, callback["message"]["message_id"], callback["data"])
    assert ALREADY_USED in await answer_of(tg, again)
    await asyncio.sleep(1.5)  # time for a wrong "I was restarted" push to show up
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log, bot.log

    assert len(gotsms.rents_of(GOTSMS_TOKEN)) == 1
    assert gotsms.balance(GOTSMS_TOKEN) == 99.0
    # killed before the update's end was committed, the rent is reported once more: truthfully
    for report in [m for m in tg.bot_messages(RENTER) if "restarted" in m.text]:
        assert "The rental went through" in report.text
        assert gotsms.rents_of(GOTSMS_TOKEN)[0]["phone"] in report.text
    stored = await stored_bytes(backend, tmp_path / "state")
    assert GOTSMS_TOKEN.encode() not in stored
    assert GOSMS_TOKEN.encode() not in stored


async def test_rent_and_push_in_flight_when_killed(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram, gotsms: FakeGotSMS, backend: Place
) -> None:
    """Killed while Telegram is slow to answer the push of a code (it is in the chat, the bot
    does not know) and while GotSMS works on a confirmed rent (it rents the number, nobody gets
    the answer). After the restart: the push goes again (at once on SQLite, once the dead
    instance's beat is old on a shared database; twice at most, never lost), a code that came
    meanwhile arrives once, the user is told the rent went through and which number it is, its
    codes come, and the Yes button does not rent again."""
    takeover = TAKEOVER[backend.backend]
    env = bot_env | {"POLL_INTERVAL": "1"}
    bot = await started(env, tmp_path, tg)
    await connect(tg, RENTER, "gotsms")
    first = gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "day", 1)["id"])
    tg.send_text(RENTER, "/rent telegram")
    await says(tg, RENTER, "Plans of Telegram")
    tg.press_button(RENTER, "USA · 1 day · 1.00")
    await says(tg, RENTER, "area code")
    tg.press_button(RENTER, "Any area code")
    await says(tg, RENTER, "Rent a number?")
    tg.set_slow_answers({"sendMessage"}, 30.0)
    gotsms.inject_message(first["id"], "Your code is 111111", code="111111")
    await says(tg, RENTER, "111111")
    gotsms.set_latency(2.0)
    yes = tg.press_button(RENTER, RENT_YES)

    def rent_posted() -> bool:
        return any(r.method == "POST" and r.path == "/rents" for r in gotsms.requests)

    await tg.wait_for(rent_posted, timeout=WAIT)
    await killed(bot)
    tg.set_slow_answers(set(), 0)
    await asyncio.sleep(2.5)  # GotSMS finishes the rent nobody waits for any more
    gotsms.set_latency(0)
    gotsms.inject_message(first["id"], "Your code is 222222", code="222222")
    rents = gotsms.rents_of(GOTSMS_TOKEN)
    assert len(rents) == 2
    [second] = [r for r in rents if r["id"] != first["id"]]

    restarted_at = time.monotonic()
    bot = await started(env, tmp_path, tg)

    def count(text: str) -> int:
        return sum(1 for m in tg.bot_messages(RENTER) if text in m.text)

    await tg.wait_for(lambda: count("\n111111\n") == 2 and count("\n222222\n") == 1, takeover)
    redelivered_in = time.monotonic() - restarted_at
    report = await tg.wait_for_bot_message(RENTER, "I was restarted while renting", timeout=WAIT)
    assert "The rental went through" in report.text
    assert second["phone"] in report.text
    callback = yes["callback_query"]
    again = tg.press(RENTER, callback["message"]["message_id"], callback["data"])
    assert ALREADY_USED in await answer_of(tg, again)
    gotsms.inject_message(second["id"], "Your code is 333333", code="333333")
    await says(tg, RENTER, "333333")
    await asyncio.sleep(1.5)  # a third copy or a second report would show up now
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log, bot.log
    assert len(gotsms.rents_of(GOTSMS_TOKEN)) == 2
    assert count("I was restarted") == 1
    assert (count("\n111111\n"), count("\n222222\n"), count("\n333333\n")) == (2, 1, 1)
    assert redelivered_in < takeover, "the dead process's claim is not waited out longer"


async def cut_off(harness: Harness, user_id: int, action: str, payload: dict[str, object]) -> None:
    """A confirmed action whose update never ended: what a SIGKILL leaves in the database."""
    async with harness.deps.session_factory() as session:
        repo = ConfirmationRepo(session)
        confirmation = await repo.create(user_id, action, payload)
        assert await repo.consume(confirmation, user_id, timedelta(minutes=5)) is not None


async def recover(harness: Harness) -> int:
    deps = harness.deps
    found = await Recovery(deps.session_factory, deps.cipher, deps.clients).take_over([None])
    await OutboxSender(harness.bot, deps.session_factory, deps.i18n).drain_once()
    return found


async def test_cut_off_rent_that_gotsms_did_not_make(harness: Harness, gotsms: FakeGotSMS) -> None:
    await connect_gotsms(harness, EN)
    await connect_gotsms(harness, RU, "ru")
    plan_id = gotsms.plan_by("Telegram", "day", 1)["id"]
    await cut_off(harness, EN, RENT, {"plan_id": plan_id, "area_code": None, "price": "1.00"})
    gotsms.create_rent(GOTSMS_TOKEN, plan_id, created_at=utcnow() - timedelta(hours=1))
    await cut_off(harness, RU, RENT, {"plan_id": plan_id, "area_code": None, "price": "1.00"})
    assert await recover(harness) == 2
    assert harness.last(EN).text == (
        "⚠️ I was restarted while renting your number, and the rental did not go through: "
        "nothing was charged. Send /rent to try again."
    )
    assert harness.last(RU).text.startswith("⚠️ Я перезапустился, пока арендовал для вас номер")
    assert await recover(harness) == 0, "told once"
    assert len(gotsms.rents_of(GOTSMS_TOKEN)) == 1, "an older rent of the plan is not this one"


async def test_cut_off_actions_that_cannot_be_checked_say_where_to_look(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    await connect_gotsms(harness, EN)
    gotsms.set_down()
    await cut_off(harness, EN, RENT, {"plan_id": "p", "area_code": None, "price": "1.00"})
    await recover(harness)
    assert "check whether the rental went through. Look at /rents" in harness.last(EN).text
    await cut_off(harness, EN, SEND, {"phone": "79991234567", "text": "<b>hi</b>"})
    await recover(harness)
    assert "sending your SMS to 79991234567" in harness.last(EN).text
    assert "Look at /sms before sending it again." in harness.last(EN).text
    await cut_off(harness, EN, "logout", {"services": ["gotsms"]})
    await recover(harness)
    assert "send /logout again if needed" in harness.last(EN).text


async def test_cut_off_rent_of_an_unreadable_token_is_reported_not_raised(
    harness: Harness,
) -> None:
    await connect_gotsms(harness, EN)
    await cut_off(harness, EN, RENT, {"plan_id": "p", "area_code": None, "price": "1.00"})
    async with harness.deps.session_factory() as session:
        await session.execute(
            update(Credential).where(Credential.user_id == EN).values(token_encrypted=b"damaged")
        )
        await session.commit()
    assert await recover(harness) == 1
    assert "check whether the rental went through. Look at /rents" in harness.last(EN).text


@pytest.mark.sqlite_only
async def test_dialog_storage_round_trip(harness: Harness) -> None:
    storage = harness.dp.storage
    assert isinstance(storage, SqlStorage)
    key = StorageKey(bot_id=1, chat_id=EN, user_id=EN)
    side = StorageKey(bot_id=1, chat_id=EN, user_id=EN, destiny="gotsms")
    await storage.set_state(key, "SendFlow:text")
    await storage.update_data(key, {"send_phone": "79991234567", "note": "ünï <b>"})
    await storage.set_data(side, {"searches": {"ab12cd34": "telegram"}})
    assert await storage.get_state(key) == "SendFlow:text"
    assert await storage.get_data(key) == {"send_phone": "79991234567", "note": "ünï <b>"}
    assert await storage.get_data(side) == {"searches": {"ab12cd34": "telegram"}}
    assert await storage.get_state(side) is None
    await storage.set_state(key, None)
    await storage.set_data(key, {})
    assert (await storage.get_state(key), await storage.get_data(key)) == (None, {})
    async with harness.deps.session_factory() as session:
        rows = await session.scalar(select(func.count()).select_from(FsmRecord))
    assert rows == 1, "an empty dialog leaves no row"
