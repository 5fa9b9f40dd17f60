"""Rent, device and balance alerts: each once per event, and only when wanted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.db.models import utcnow
from bot.db.outbox_repo import PollStateRepo
from bot.db.repo import DeviceRepo, NotificationRepo
from bot.poller.alerts import BalanceJob, DevicesJob, RentsJob
from bot.poller.codes import JOB as CODES_JOB
from bot.poller.jobs import Job
from bot.poller.sender import OutboxSender, Pace
from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.shapes import Shape


@pytest.fixture(autouse=True, params=list(Shape))
def shape(request: pytest.FixtureRequest, gosms: FakeGoSMS, gotsms: FakeGotSMS) -> Shape:
    """Every test runs once per answer shape of the fakes."""
    gosms.shape = gotsms.shape = request.param
    return Shape(request.param)


USER = 7201


class Rig:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        deps = harness.deps
        shared = (deps.session_factory, deps.cipher, deps.clients)
        self.rents = RentsJob(*shared)
        self.devices = DevicesJob(*shared)
        self.balance = BalanceJob(*shared)
        pace = Pace(chat_rate=100, chat_burst=100)
        self.sender = OutboxSender(harness.bot, deps.session_factory, deps.i18n, pace=pace)

    async def connect(self, service: str, token: str, language: str = "en") -> None:
        self.harness.tg.user(USER, language_code=language)
        await self.harness.send(USER, f"/token {service} {token}")

    async def cycle(self, job: Job) -> list[str]:
        before = len(self.harness.tg.bot_messages(USER))
        await job.poll(USER)
        while await self.sender.drain_once():
            pass
        return [m.text for m in self.harness.tg.bot_messages(USER)[before:]]

    async def settings(self, **values: Any) -> None:
        async with self.harness.deps.session_factory() as session:
            settings = await NotificationRepo(session).get(USER)
            for name, value in values.items():
                setattr(settings, name, value)
            await session.commit()


def month_rent(gotsms: FakeGotSMS) -> dict[str, Any]:
    return gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "month", 1)["id"])


async def test_a_rent_ending_is_announced_at_24h_and_1h_once(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness)
    await rig.connect("gotsms", GOTSMS_TOKEN)
    rent = month_rent(gotsms)
    assert await rig.cycle(rig.rents) == [], "a month away: nothing yet"
    gotsms.set_rent_end(rent["id"], datetime.now(UTC) + timedelta(hours=20))
    [first] = await rig.cycle(rig.rents)
    assert "ends soon: 20 hours left" in first
    assert "Auto-renew is off" in first
    assert await rig.cycle(rig.rents) == []
    gotsms.set_rent_end(rent["id"], datetime.now(UTC) + timedelta(minutes=40))
    [second] = await rig.cycle(rig.rents)
    assert "39 minutes left" in second or "40 minutes left" in second
    assert await rig.cycle(rig.rents) == []


async def test_the_alert_can_switch_auto_renew_on(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness)
    await rig.connect("gotsms", GOTSMS_TOKEN)
    rent = month_rent(gotsms)
    gotsms.set_rent_end(rent["id"], datetime.now(UTC) + timedelta(hours=3))
    await rig.cycle(rig.rents)
    alert = harness.last(USER)
    assert alert.button_texts() == ["⏫ Longer plan", "🔁 Turn on auto-renew", "📋 Open rental"]
    answer = await harness.press(USER, "Turn on auto-renew")
    assert answer.answered
    toggles = gotsms.requests_for(GOTSMS_TOKEN, f"/rents/{rent['id']}/renewal/toggle")
    assert len(toggles) == 1
    assert gotsms.rents_of(GOTSMS_TOKEN)[0]["is_included_for_next_renewal"]
    assert "Auto-renew" in harness.tg.message(USER, alert.message_id).text, (
        "the alert became the card"
    )


async def test_a_rent_first_seen_close_to_its_end_gets_one_alert(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness)
    await rig.connect("gotsms", GOTSMS_TOKEN, language="ru")
    rent = month_rent(gotsms)
    gotsms.set_rent_end(rent["id"], datetime.now(UTC) + timedelta(minutes=30))
    [alert] = await rig.cycle(rig.rents)
    assert alert.startswith("⏳ Аренда номера ")
    assert "скоро закончится, осталось: 29 минут." in alert or "осталось: 30 минут." in alert
    assert await rig.cycle(rig.rents) == []


async def test_a_daily_rent_gets_only_the_last_hour_alert(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness)
    await rig.connect("gotsms", GOTSMS_TOKEN)
    rent = gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "day", 1)["id"])
    assert await rig.cycle(rig.rents) == [], "just rented for a day: no 24 h alert"
    gotsms.set_rent_end(rent["id"], datetime.now(UTC) + timedelta(minutes=50))
    [alert] = await rig.cycle(rig.rents)
    assert "49 minutes left" in alert or "50 minutes left" in alert


async def test_auto_renewed_rents_are_not_announced(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness)
    await rig.connect("gotsms", GOTSMS_TOKEN)
    rent = month_rent(gotsms)
    await harness.deps.clients.gotsms(GOTSMS_TOKEN).toggle_renewal(rent["id"])
    gotsms.set_rent_end(rent["id"], datetime.now(UTC) + timedelta(minutes=30))
    assert await rig.cycle(rig.rents) == []


async def test_a_fresh_rent_makes_the_codes_job_hot(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness)
    await rig.connect("gotsms", GOTSMS_TOKEN)
    month_rent(gotsms)
    await rig.cycle(rig.rents)
    async with harness.deps.session_factory() as session:
        state = await PollStateRepo(session).get(USER, CODES_JOB)
        assert state is not None
        assert state.hot_until is not None
        assert state.hot_until > utcnow() + timedelta(minutes=29)


async def save_device(harness: Harness, gosms: FakeGoSMS, **fields: Any) -> str:
    device_id = gosms.add_device(GOSMS_TOKEN, name="Pixel <7>", **fields)
    async with harness.deps.session_factory() as session:
        await DeviceRepo(session).add(USER, device_id, "Pixel <7>")
        await session.commit()
    return device_id


async def test_a_device_offline_and_back_once_each(harness: Harness, gosms: FakeGoSMS) -> None:
    rig = Rig(harness)
    await rig.connect("gosms", GOSMS_TOKEN)
    device = await save_device(harness, gosms)
    assert await rig.cycle(rig.devices) == [], "online: nothing to say"
    gosms.set_device(device, last_online=datetime.now(UTC) - timedelta(minutes=12))
    [offline] = await rig.cycle(rig.devices)
    assert offline == "📴 Your device Pixel <7> is offline: last online 12 minutes ago."
    assert await rig.cycle(rig.devices) == []
    gosms.set_device(device, last_online=datetime.now(UTC))
    [back] = await rig.cycle(rig.devices)
    assert back == "📶 Your device Pixel <7> is back online."
    assert await rig.cycle(rig.devices) == []


async def test_a_low_battery_once_per_episode(harness: Harness, gosms: FakeGoSMS) -> None:
    rig = Rig(harness)
    await rig.connect("gosms", GOSMS_TOKEN)
    device = await save_device(harness, gosms, battery=10, charging=False)
    [low] = await rig.cycle(rig.devices)
    assert "battery at 10 % and not charging" in low
    assert await rig.cycle(rig.devices) == []
    gosms.set_device(device, charging=True)
    assert await rig.cycle(rig.devices) == [], "recovery is noted, not announced"
    gosms.set_device(device, charging=False, battery=9)
    [again] = await rig.cycle(rig.devices)
    assert "battery at 9 %" in again


async def test_switched_off_device_alerts_cost_nothing(harness: Harness, gosms: FakeGoSMS) -> None:
    rig = Rig(harness)
    await rig.connect("gosms", GOSMS_TOKEN)
    await save_device(harness, gosms, battery=5, charging=False)
    await rig.settings(devices=False)
    assert await rig.cycle(rig.devices) == []
    assert not gosms.requests_for(GOSMS_TOKEN, "/devices")


async def test_low_balance_once_until_it_recovers(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness)
    await rig.connect("gotsms", GOTSMS_TOKEN)
    assert await rig.cycle(rig.balance) == []
    assert not gotsms.requests_for(GOTSMS_TOKEN, "/account")[1:], "off by default: no polling"
    await rig.settings(low_balance=True, balance_threshold=Decimal("50"))
    assert await rig.cycle(rig.balance) == []
    gotsms.set_balance(GOTSMS_TOKEN, 20)
    [alert] = await rig.cycle(rig.balance)
    assert alert == "💸 Your GotSMS balance has dropped below 50.00: it is 20.00 now."
    assert await rig.cycle(rig.balance) == []
    gotsms.set_balance(GOTSMS_TOKEN, 60)
    assert await rig.cycle(rig.balance) == []
    gotsms.set_balance(GOTSMS_TOKEN, 10)
    [again] = await rig.cycle(rig.balance)
    assert "10.00" in again


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "💸 Your GotSMS balance has dropped below 5,000.00: it is 1,234.50 now."),
        ("ru", "💸 Баланс GotSMS опустился ниже 5\u00a0000,00: сейчас на нём 1\u00a0234,50."),
    ],
)
async def test_the_low_balance_push_uses_the_users_locale(
    harness: Harness, gotsms: FakeGotSMS, language: str, expected: str
) -> None:
    rig = Rig(harness)
    await rig.connect("gotsms", GOTSMS_TOKEN, language)
    await rig.settings(low_balance=True, balance_threshold=Decimal("5000"))
    gotsms.set_balance(GOTSMS_TOKEN, 1234.5)
    assert await rig.cycle(rig.balance) == [expected]
