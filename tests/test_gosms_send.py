"""/send through the real dispatcher against the GoSMS double: validation, one-liner, guided."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.db.models import SentSms, Service
from bot.db.repo import CredentialRepo, DeviceRepo
from bot.keyboards.callbacks import MenuCb
from bot.keyboards.gosms import SendDeviceCb
from bot.poller.sender import OutboxSender, Pace
from bot.poller.sms import SmsJob
from tests.conftest import GOSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.telegram import CallbackQueryRecord

EN, RU, OTHER = 4001, 4002, 4003
UUID = "0F8FAD5B-D9CB-469F-A165-70867728950E"
OTHER_TOKEN = "gosms-other-key-77aa11bb22cc"


async def connect(
    harness: Harness, user_id: int, language: str = "en", token: str = GOSMS_TOKEN
) -> None:
    """A user with the GoSMS token stored, without any request to GoSMS."""
    harness.tg.user(user_id, language_code=language)
    await harness.send(user_id, "/start")
    async with harness.deps.session_factory() as session:
        await CredentialRepo(session, harness.deps.cipher).save(user_id, Service.GOSMS, token)
        await session.commit()


async def save_device(harness: Harness, user_id: int, device_id: str, name: str) -> int:
    async with harness.deps.session_factory() as session:
        device = await DeviceRepo(session).add(user_id, device_id, name)
        await session.commit()
        return device.id


async def forge(harness: Harness, user_id: int, data: str) -> CallbackQueryRecord:
    """A press with arbitrary callback data on the newest bot message."""
    update = harness.tg.callback_update(user_id, harness.last(user_id).message_id, data)
    await harness.feed(update)
    return harness.tg.callback_answers[update["callback_query"]["id"]]


async def sent_rows(harness: Harness) -> list[SentSms]:
    async with harness.deps.session_factory() as session:
        return list((await session.execute(select(SentSms))).scalars())


async def test_one_liner_asks_then_sends_once_and_shows_the_card(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await harness.send(EN, "/send +7 (999) 123-45-67 Hello <there> & you")
    question = harness.last(EN)
    assert question.text.startswith("Send this SMS?")
    assert "To: 79991234567" in question.text
    assert "Device: any device" in question.text
    assert "Hello <there> & you" in question.text, "escaped, shown literally"
    assert "It counts towards your GoSMS plan." in question.text
    assert not gosms.requests, "nothing is sent before the confirmation"
    answer = await harness.press(EN, "Send")
    assert answer.answered
    card = harness.tg.message(EN, question.message_id)
    assert card.text.startswith("📤 SMS "), "the question became the card, in place"
    assert "Status: ⏳ waiting" in card.text
    assert card.button_texts() == ["🔄 Refresh", "🗑 Delete"]
    [request] = gosms.requests_for(GOSMS_TOKEN, "/sms/send")
    assert request.json == {"message": "Hello <there> & you", "phone_number": "79991234567"}
    [sms] = gosms.sms_of(GOSMS_TOKEN)
    assert sms["id"] in card.text
    [row] = await sent_rows(harness)
    assert (row.user_id, row.sms_id, row.chat_id, row.message_id) == (
        EN,
        sms["id"],
        EN,
        question.message_id,
    )
    assert (row.phone, row.text, row.device_id, row.to_sim, row.status) == (
        "79991234567",
        "Hello <there> & you",
        "",
        None,
        0,
    )


async def test_guided_flow_with_a_device_and_sim_slot_2(harness: Harness, gosms: FakeGoSMS) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN, device_id=UUID, name="Pixel <7>")
    await connect(harness, EN)
    await save_device(harness, EN, device_id, "Pixel <7>")
    await harness.send(EN, "/send")
    assert "Send the phone number" in harness.last(EN).text
    await harness.send(EN, "8 (912) 000-11-22")
    assert "send the text of the SMS" in harness.last(EN).text
    await harness.send(EN, "Your code: 1234")
    assert harness.last(EN).button_texts() == ["🎲 Any device", "📱 Pixel <7>"]
    await harness.press(EN, "Pixel")
    assert harness.last(EN).button_texts() == ["Default SIM", "SIM 1", "SIM 2"]
    await harness.press(EN, "SIM 2")
    question = harness.last(EN)
    assert "Device: Pixel <7>" in question.text
    assert "SIM: 2" in question.text
    await harness.press(EN, "Send")
    [request] = gosms.requests_for(GOSMS_TOKEN, "/sms/send")
    assert request.json == {
        "message": "Your code: 1234",
        "phone_number": "89120001122",
        "device_id": UUID.lower(),
        "to_sim": 1,
    }
    card = harness.last(EN)
    assert "Device: Pixel <7>" in card.text
    assert "SIM: 2" in card.text
    assert card.html is not None
    assert "Pixel &lt;7&gt;" in card.html
    [row] = await sent_rows(harness)
    assert (row.device_id, row.device_name, row.to_sim) == (UUID.lower(), "Pixel <7>", 1)
    await harness.send(EN, "hello")
    assert "/help lists what I can do" in harness.last(EN).text, "the dialog is over"


async def test_guided_flow_in_russian_with_default_sim_and_slot_1(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN, name="Poco")
    await connect(harness, RU, "ru")
    await save_device(harness, RU, device_id, "Poco")
    await harness.send(RU, "/send 79991234567 Привет")
    assert harness.last(RU).text == "📱 Какое устройство отправит SMS?"
    await harness.press(RU, "Poco")
    await harness.press(RU, "SIM по умолчанию")
    question = harness.last(RU)
    assert question.text.startswith("Отправить это SMS?")
    assert "\nSIM: по умолчанию\n" in question.text
    await harness.press(RU, "Отправить")
    assert "Статус: ⏳ ждёт отправки" in harness.last(RU).text
    await harness.send(RU, "/send 79991234567 Ещё")
    await harness.press(RU, "Poco")
    await harness.press(RU, "SIM 1")
    await harness.press(RU, "Отправить")
    bodies = [r.json for r in gosms.requests_for(GOSMS_TOKEN, "/sms/send")]
    assert bodies == [
        {"message": "Привет", "phone_number": "79991234567", "device_id": device_id},
        {"message": "Ещё", "phone_number": "79991234567", "device_id": device_id, "to_sim": 0},
    ]


async def test_any_device_from_the_picker(harness: Harness, gosms: FakeGoSMS) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await save_device(harness, EN, device_id, "Poco")
    await harness.send(EN, "/send 79991234567 Hi")
    await harness.press(EN, "Any device")
    assert "Device: any device" in harness.last(EN).text
    assert "SIM:" not in harness.last(EN).text, "a SIM slot only with a device"
    await harness.press(EN, "Send")
    [request] = gosms.requests_for(GOSMS_TOKEN, "/sms/send")
    assert request.json == {"message": "Hi", "phone_number": "79991234567"}


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        ("/send +7999abc1234 Hello", "must not contain letters"),
        ("/send hello world", "must not contain letters"),
        ("/send 12 Hello", "too short: it needs 3 to 30 digits but has 2"),
        ("/send " + "1" * 31 + " Hello", "too long: it needs 3 to 30 digits but has 31"),
        ("/send 7999*123 Hello", "may contain only digits"),
        (
            "/send 79991234567 " + "x" * 301,
            "the limit is 300 characters, and it has 301. Shorten it by 1 character.",
        ),
        ("/send 79991234567 Use `code`", "backtick"),
    ],
)
async def test_one_liner_refusals_never_reach_the_api(
    harness: Harness, gosms: FakeGoSMS, command: str, refusal: str
) -> None:
    await connect(harness, EN)
    await harness.send(EN, command)
    assert refusal in harness.last(EN).text
    assert harness.last(EN).text.startswith("❌")
    assert not gosms.requests


async def test_guided_refusals_say_what_to_fix_and_keep_the_step(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await harness.send(EN, "/send")
    await harness.send(EN, "call me")
    assert "must not contain letters" in harness.last(EN).text
    assert "Send the number again" in harness.last(EN).text
    await harness.send(EN, "1 2")
    assert "too short" in harness.last(EN).text
    await harness.send(EN, "+44 20 7946 0958")
    await harness.send(EN, "   ")
    assert "The text is empty" in harness.last(EN).text
    await harness.send(EN, "y" * 305)
    assert "Shorten it by 5 characters." in harness.last(EN).text
    await harness.send(EN, "a ` b")
    assert "backtick" in harness.last(EN).text
    assert not gosms.requests
    await harness.send(EN, "a ' b")
    assert "To: 442079460958" in harness.last(EN).text


async def test_one_liner_with_a_bad_text_keeps_the_phone(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await harness.send(EN, "/send 79991234567 `oops`")
    assert "Send the corrected text" in harness.last(EN).text
    await harness.send(EN, "fixed")
    assert "To: 79991234567" in harness.last(EN).text
    await harness.send(EN, "/send 79991234567")
    assert "send the text of the SMS" in harness.last(EN).text
    await harness.send(EN, "/send +79991234567\n123 is your code")
    assert "123 is your code" in harness.last(EN).text, "a text starting with digits on its line"
    assert not gosms.requests


async def test_cancel_leaves_the_flow_at_any_step(harness: Harness, gosms: FakeGoSMS) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await save_device(harness, EN, device_id, "Poco")
    await harness.send(EN, "/send")
    await harness.send(EN, "/cancel")
    assert harness.last(EN).text.startswith("Cancelled")
    await harness.send(EN, "79991234567")
    assert "/help lists what I can do" in harness.last(EN).text
    await harness.send(EN, "/send 79991234567 Hi")
    await harness.send(EN, "typing instead of pressing")
    assert "choose with the buttons" in harness.last(EN).text
    await harness.press(EN, "Poco")
    await harness.send(EN, "/cancel")
    assert harness.last(EN).text.startswith("Cancelled")
    answer = await harness.press(EN, "SIM 1")
    assert answer.show_alert
    assert "out of date" in (answer.text or "")
    await harness.send(EN, "/send 79991234567 Hi")
    await harness.press(EN, "Any device")
    question = harness.last(EN)
    await harness.send(EN, "/cancel")
    answer = await harness.press(EN, "Send")
    assert answer.show_alert
    assert "cancelled" in (answer.text or ""), "/cancel closes the open question too"
    assert harness.tg.message(EN, question.message_id).text.startswith("Send this SMS?")
    assert not gosms.requests


async def test_cancel_button_sends_nothing(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await harness.send(EN, "/send 79991234567 Hi")
    answer = await harness.press(EN, "Cancel")
    assert answer.text == "Cancelled"
    assert harness.last(EN).text == "Not sent: nothing was charged."
    assert not gosms.requests


async def test_send_button_sends_at_most_once(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await harness.send(EN, "/send 79991234567 Once")
    first = harness.press_update(EN, "Send")
    again = harness.press_update(EN, "Send")
    await harness.feed(first)
    await harness.feed(again)
    answer = harness.tg.callback_answers[again["callback_query"]["id"]]
    assert answer.show_alert
    assert "already used" in (answer.text or "")
    await harness.send(EN, "/send 79991234567 Twice at once")
    one = harness.press_update(EN, "Send")
    two = harness.press_update(EN, "Send")
    await asyncio.gather(harness.feed(one), harness.feed(two))
    assert len(gosms.requests_for(GOSMS_TOKEN, "/sms/send")) == 2, "one per confirmation"
    assert len(gosms.sms_of(GOSMS_TOKEN)) == 2
    assert len(await sent_rows(harness)) == 2


async def test_api_refusals_are_explained(harness: Harness, gosms: FakeGoSMS) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/send 79991234567 Hi")
    await harness.press(EN, "Send")
    assert "Not sent." in harness.last(EN).text
    assert "no devices in GoSMS yet" in harness.last(EN).text
    device_id = gosms.add_device(GOSMS_TOKEN, sims=1, name="One SIM")
    await save_device(harness, EN, device_id, "One SIM")
    await harness.send(EN, "/send 79991234567 Hi")
    await harness.press(EN, "One SIM")
    await harness.press(EN, "SIM 2")
    await harness.press(EN, "Send")
    assert "has no SIM 2" in harness.last(EN).text
    gosms.set_device(device_id, active=False)
    await harness.send(EN, "/send 79991234567 Hi")
    await harness.press(EN, "One SIM")
    await harness.press(EN, "SIM 1")
    await harness.press(EN, "Send")
    assert "None of your GoSMS devices is turned on" in harness.last(EN).text
    gosms.set_device(device_id, active=True)
    gosms.set_monthly_limit(GOSMS_TOKEN, 0)
    await harness.send(EN, "/send 79991234567 Hi")
    await harness.press(EN, "Any device")
    await harness.press(EN, "Send")
    assert "monthly limit of your GoSMS plan" in harness.last(EN).text
    assert not await sent_rows(harness)


async def test_refresh_updates_the_card_and_the_stored_status(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await harness.send(EN, "/send 79991234567 Hi")
    await harness.press(EN, "Send")
    card = harness.last(EN)
    [sms] = gosms.sms_of(GOSMS_TOKEN)
    gosms.advance(sms["id"])
    gosms.advance(sms["id"])
    await harness.press(EN, "Refresh")
    refreshed = harness.tg.message(EN, card.message_id)
    assert "Status: 📨 sent" in refreshed.text
    [row] = await sent_rows(harness)
    assert row.status == 2
    await harness.press(EN, "Refresh")  # unchanged: "message is not modified" is no error
    assert harness.tg.message(EN, card.message_id).text == refreshed.text


async def test_menu_button_and_no_token(harness: Harness, gosms: FakeGoSMS) -> None:
    harness.tg.user(OTHER, language_code="en")
    await harness.send(OTHER, "/send 79991234567 Hi")
    assert "Connect your GoSMS token first" in harness.last(OTHER).text
    answer = await forge(harness, OTHER, MenuCb(action="send").pack())
    assert answer.show_alert
    assert "Connect your GoSMS token first" in (answer.text or "")
    await connect(harness, EN)
    answer = await forge(harness, EN, MenuCb(action="send").pack())
    assert answer.answered
    assert not answer.show_alert
    assert "Send the phone number" in harness.last(EN).text
    assert not gosms.requests


async def test_foreign_and_forged_device_buttons_are_refused(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_account(OTHER_TOKEN)
    theirs = gosms.add_device(OTHER_TOKEN, name="Theirs")
    mine = gosms.add_device(GOSMS_TOKEN, name="Mine")
    await connect(harness, OTHER, token=OTHER_TOKEN)
    their_row = await save_device(harness, OTHER, theirs, "Theirs")
    await connect(harness, EN)
    await save_device(harness, EN, mine, "Mine")
    await harness.send(EN, "/send 79991234567 Hi")
    answer = await forge(harness, EN, SendDeviceCb(row=their_row).pack())
    assert answer.show_alert
    assert "not in your list" in (answer.text or "")
    answer = await forge(harness, EN, "sv:not-a-number")
    assert answer.show_alert
    assert "out of date" in (answer.text or "")
    assert not gosms.requests


async def test_a_send_that_may_have_gone_through_is_not_called_failed(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await harness.send(EN, "/send 79991234567 Hi")
    gosms.fail_next("/sms/send", 502)
    await harness.press(EN, "Send")
    text = harness.last(EN).text
    assert text.startswith("⚠️ GoSMS is not answering right now.")
    assert "may have gone through" in text
    assert "Look at /sms before sending it again." in text
    assert len(gosms.requests_for(GOSMS_TOKEN, "/sms/send")) == 1, "a send is never retried"


async def test_a_sent_sms_is_tracked_even_when_the_card_edit_fails(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, f"/token gosms {GOSMS_TOKEN}")  # as a user connects: pushes on
    await harness.send(EN, "/send 79991234567 Hi")
    question = harness.last(EN)
    # The first edit ("Sending…") passes; Telegram refuses the one that shows the card.
    harness.tg.fail_next("editMessageText", 400, "Bad Request: MESSAGE_EDIT_REFUSED", skip=1)
    await harness.press(EN, "Send")
    [sms] = gosms.sms_of(GOSMS_TOKEN)
    edits = harness.tg.calls_of("editMessageText")
    assert [c.http_status for c in edits[-2:]] == [200, 400], "the card edit was refused"
    assert sms["id"] in str(edits[-1].params.get("text")), "refused after the SMS went out"
    [row] = await sent_rows(harness)
    assert (row.sms_id, row.chat_id, row.message_id) == (sms["id"], EN, question.message_id)
    deps = harness.deps
    job = SmsJob(deps.session_factory, deps.cipher, deps.clients)
    sender = OutboxSender(harness.bot, deps.session_factory, deps.i18n, pace=Pace(100, 100))
    gosms.set_status(str(sms["id"]), 4)
    before = len(harness.tg.bot_messages(EN))
    await job.poll(EN)
    while await sender.drain_once():
        pass
    pushed = [m.text for m in harness.tg.bot_messages(EN)[before:]]
    assert "✅ Your SMS to 79991234567 was delivered." in pushed
    assert "delivered" in harness.tg.message(EN, question.message_id).text, "the card caught up"


async def test_a_card_sent_anew_is_the_one_tracked(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await harness.send(EN, "/send 79991234567 Hi")
    question = harness.last(EN)
    harness.tg.fail_next("editMessageText", 400, "Bad Request: message can't be edited", skip=1)
    await harness.press(EN, "Send")
    card = harness.last(EN)
    assert card.message_id != question.message_id
    assert card.text.startswith("📤 SMS ")
    [row] = await sent_rows(harness)
    assert (row.chat_id, row.message_id) == (EN, card.message_id)
