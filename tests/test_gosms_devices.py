"""/devices through the real dispatcher: add by id, the card, (de)activate, delete once, forget."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.db.models import Device
from bot.db.repo import DeviceRepo
from bot.keyboards.callbacks import MenuCb
from bot.keyboards.gosms import DeviceCb
from tests.conftest import GOSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.shapes import Shape
from tests.test_gosms_send import OTHER_TOKEN, UUID, connect, forge, save_device


@pytest.fixture(autouse=True, params=list(Shape))
def shape(request: pytest.FixtureRequest, gosms: FakeGoSMS) -> Shape:
    """Every test runs once per answer shape of the fakes."""
    gosms.shape = request.param
    return Shape(request.param)


EN, RU, OTHER = 6001, 6002, 6003


async def saved(harness: Harness, user_id: int) -> list[Device]:
    async with harness.deps.session_factory() as session:
        return list(await DeviceRepo(session).list(user_id))


async def test_add_a_device_by_id_with_the_guided_flow(harness: Harness, gosms: FakeGoSMS) -> None:
    device_id = gosms.add_device(
        GOSMS_TOKEN, name="Poco <M3>", battery=83, charging=False, console="boot & <ok>"
    )
    await connect(harness, EN)
    await harness.send(EN, "/devices")
    listing = harness.last(EN)
    assert listing.text.startswith("📱 You have no saved devices yet.")
    assert listing.button_texts() == ["➕ Add a device"]
    await harness.press(EN, "Add a device")
    assert harness.tg.message(EN, listing.message_id).text.startswith("➕ Send the device ID")
    await harness.send(EN, "not-an-id")
    assert "That's not a device ID" in harness.last(EN).text
    assert not gosms.requests, "a malformed id never reaches the API"
    await harness.send(EN, "6622a8bbd963898821ebf934")
    assert "GoSMS couldn't find this device" in harness.last(EN).text
    assert "Send the ID again" in harness.last(EN).text
    await harness.send(EN, f"  {device_id.upper()}  ")
    card = harness.last(EN)
    assert card.text.startswith("✅ Saved. You can now pick it in /send.")
    assert "📱 Poco <M3>" in card.text
    assert "Battery: 83 % (not charging)" in card.text
    assert "State: ✅ on" in card.text
    assert "🟢 Online: last seen just now" in card.text
    assert "boot & <ok>" in card.text
    assert card.html is not None
    assert "boot &amp; &lt;ok&gt;" in card.html
    assert card.button_texts() == [
        "🔄 Refresh",
        "⏸ Turn off",
        "🗑 Delete from GoSMS",
        "🧹 Remove from the bot",
        "‹ All devices",
    ]
    [row] = await saved(harness, EN)
    assert (row.device_id, row.name) == (device_id, "Poco <M3>")
    info = gosms.requests_for(GOSMS_TOKEN, "/devices/get/info")[-1]
    assert info.json == {"id": device_id, "device_id": device_id}
    await harness.send(EN, "hello")
    assert "/help lists what I can do" in harness.last(EN).text, "the dialog is over"
    await harness.press(EN, "All devices")
    assert harness.tg.message(EN, card.message_id).text.startswith("📱 Your devices: 1")


async def test_one_liner_add_with_a_uuid_and_the_send_picker(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN, device_id=UUID, name="Galaxy")
    await connect(harness, EN)
    await harness.send(EN, f"/devices add {UUID}")
    assert "📱 Galaxy" in harness.last(EN).text
    await harness.send(EN, f"/devices {UUID}")
    assert len(await saved(harness, EN)) == 1, "adding again keeps one row"
    await harness.send(EN, "/send 79991234567 Hi")
    assert harness.last(EN).button_texts() == ["🎲 Any device", "📱 Galaxy"]


async def test_online_minutes_offline_past_five_and_long_console(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    now = datetime.now(UTC)
    device_id = gosms.add_device(
        GOSMS_TOKEN, last_online=now - timedelta(minutes=3, seconds=10), console="x" * 2000 + "END"
    )
    await connect(harness, EN)
    await save_device(harness, EN, device_id, "Poco")
    await harness.send(EN, "/devices")
    await harness.press(EN, "Poco")
    card = harness.last(EN)
    assert "🟢 Online: last seen 3 min ago" in card.text
    assert "…" in card.text
    assert card.text.endswith("END")
    assert len(card.text) < 1200, "the console is shortened"
    gosms.set_device(device_id, last_online=now - timedelta(minutes=12))
    await harness.press(EN, "Refresh")
    assert "🔴 Offline for 12 min" in harness.tg.message(EN, card.message_id).text
    gosms.set_device(device_id, last_online=now - timedelta(hours=3, minutes=5))
    await harness.press(EN, "Refresh")
    assert "🔴 Offline for 3 h 5 min" in harness.tg.message(EN, card.message_id).text


async def test_deactivate_and_activate_always_send_is_active(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await save_device(harness, EN, device_id, "Poco")
    await harness.send(EN, "/devices")
    await harness.press(EN, "Poco")
    card = harness.last(EN)
    await harness.press(EN, "Turn off")
    assert gosms.device(device_id)["active"] is False
    updated = harness.tg.message(EN, card.message_id)
    assert "State: ⏸ off" in updated.text
    assert "▶️ Turn on" in updated.button_texts()
    await harness.press(EN, "Turn on")
    assert gosms.device(device_id)["active"] is True
    assert "State: ✅ on" in harness.tg.message(EN, card.message_id).text
    bodies = [r.json for r in gosms.requests_for(GOSMS_TOKEN, "/devices/edit")]
    assert bodies == [
        {"id": device_id, "device_id": device_id, "is_active": False},
        {"id": device_id, "device_id": device_id, "is_active": True},
    ]


async def test_delete_from_gosms_runs_once_under_double_presses(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    first = gosms.add_device(GOSMS_TOKEN, name="First")
    second = gosms.add_device(GOSMS_TOKEN, name="Second")
    await connect(harness, EN)
    await save_device(harness, EN, first, "First")
    await save_device(harness, EN, second, "Second")
    await harness.send(EN, "/devices")
    await harness.press(EN, "First")
    await harness.press(EN, "Delete from GoSMS")
    assert harness.last(EN).text.startswith("🗑 Delete the device First from your GoSMS account?")
    assert not gosms.requests_for(GOSMS_TOKEN, "/devices/del"), "nothing before yes"
    yes = harness.press_update(EN, "Yes, delete")
    again = harness.press_update(EN, "Yes, delete")
    await harness.feed(yes)
    await harness.feed(again)
    assert "already used" in (harness.tg.callback_answers[again["callback_query"]["id"]].text or "")
    assert (
        harness.last(EN).text
        == "🗑 The device First is deleted from GoSMS and removed from the bot."
    )
    assert not gosms.has_device(first)
    await harness.press(EN, "All devices")
    await harness.press(EN, "Second")
    await harness.press(EN, "Delete from GoSMS")
    one = harness.press_update(EN, "Yes, delete")
    two = harness.press_update(EN, "Yes, delete")
    await asyncio.gather(harness.feed(one), harness.feed(two))
    assert len(gosms.requests_for(GOSMS_TOKEN, "/devices/del")) == 2, "one per device"
    assert not gosms.has_device(second)
    assert await saved(harness, EN) == []


async def test_cancel_delete_and_forget_locally(harness: Harness, gosms: FakeGoSMS) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    await save_device(harness, EN, device_id, "Poco")
    await harness.send(EN, "/devices")
    await harness.press(EN, "Poco")
    await harness.press(EN, "Delete from GoSMS")
    await harness.press(EN, "Cancel")
    assert harness.last(EN).text.startswith("📱 Your devices: 1")
    await harness.press(EN, "Poco")
    requests = len(gosms.requests)
    answer = await harness.press(EN, "Remove from the bot")
    assert answer.text == "Removed from the bot; it is still in your GoSMS account."
    assert harness.last(EN).text.startswith("📱 You have no saved devices yet.")
    assert len(gosms.requests) == requests, "forgetting asks nothing of GoSMS"
    assert gosms.has_device(device_id)
    assert await saved(harness, EN) == []


async def test_device_deleted_in_the_panel(harness: Harness, gosms: FakeGoSMS) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN)
    await connect(harness, EN)
    row = await save_device(harness, EN, device_id, "Poco")
    gosms.fail_next("/devices/get/info", 404, code=1012)
    await harness.send(EN, "/devices")
    await harness.press(EN, "Poco")
    assert "GoSMS couldn't find this device" in harness.last(EN).text
    assert harness.last(EN).button_texts() == ["🧹 Remove from the bot", "‹ All devices"]
    await forge(harness, EN, DeviceCb(action="x", row=row).pack())
    gosms.fail_next("/devices/del", 404, code=1012)
    await harness.press(EN, "Yes, delete")
    assert "The device Poco was already gone from GoSMS" in harness.last(EN).text
    assert await saved(harness, EN) == []


async def test_another_users_device_row_is_refused(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_account(OTHER_TOKEN)
    theirs = gosms.add_device(OTHER_TOKEN)
    await connect(harness, OTHER, token=OTHER_TOKEN)
    their_row = await save_device(harness, OTHER, theirs, "Theirs")
    await connect(harness, EN)
    await harness.send(EN, "/devices")
    for action in ("o", "r", "off", "x", "f"):
        answer = await forge(harness, EN, DeviceCb(action=action, row=their_row).pack())
        assert answer.show_alert
        assert "not in your list" in (answer.text or "")
    answer = await forge(harness, EN, DeviceCb(action="zz", row=their_row).pack())
    assert "out of date" in (answer.text or "")
    assert not gosms.requests
    assert gosms.device(theirs)["active"] is True
    assert len(await saved(harness, OTHER)) == 1


async def test_devices_in_russian_from_the_menu(harness: Harness, gosms: FakeGoSMS) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN, charging=True, active=False)
    await connect(harness, RU, "ru")
    await save_device(harness, RU, device_id, "Поко")
    await forge(harness, RU, MenuCb(action="devices").pack())
    assert harness.last(RU).text.startswith("📱 Ваши устройства: 1")
    await harness.press(RU, "Поко")
    card = harness.last(RU)
    assert "Батарея: 57 % (заряжается)" in card.text
    assert "▶️ Включить" in card.button_texts()
    await harness.press(RU, "Включить")
    assert gosms.device(device_id)["active"] is True


async def test_one_liner_usage_and_the_device_limit(harness: Harness, gosms: FakeGoSMS) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/devices add one two")
    assert "Send one device ID" in harness.last(EN).text
    await harness.send(EN, "/devices add nonsense")
    assert "That's not a device ID" in harness.last(EN).text
    for n in range(20):
        await save_device(harness, EN, f"{n:024x}", f"Phone {n}")
    await harness.send(EN, f"/devices add {UUID}")
    assert "You already have 20 saved devices, the most I keep" in harness.last(EN).text
    assert not gosms.requests
    await harness.send(EN, "/devices")
    assert len(harness.last(EN).button_texts()) == 21


async def test_fields_that_cannot_be_read_show_a_dash_and_the_card_works(
    harness: Harness, gosms: FakeGoSMS, shape: Shape
) -> None:
    gosms.shape = Shape.DOCS  # the raw values below are sent as they are only in this shape
    device_id = gosms.add_device(GOSMS_TOKEN, name="Poco")
    gosms.set_device(device_id, battery="", charging="perhaps", active={"on": "?"})
    await connect(harness, EN)
    await save_device(harness, EN, device_id, "Poco")
    await harness.send(EN, "/devices")
    await harness.press(EN, "Poco")
    card = harness.last(EN)
    assert "Battery: — % (—)" in card.text
    assert "State: —" in card.text
    assert "🟢 Online: last seen just now" in card.text
    assert card.button_texts(), "the card keeps its buttons"
