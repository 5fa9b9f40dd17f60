"""SMS sent from the bot: the card follows the status in place, a final status is announced once."""

from __future__ import annotations

from datetime import timedelta

from bot.db.models import utcnow
from bot.db.outbox_repo import PollStateRepo
from bot.db.repo import NotificationRepo
from bot.poller.sender import OutboxSender, Pace
from bot.poller.sms import JOB, SmsJob
from tests.conftest import GOSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.telegram import StoredMessage

USER = 7401


class Rig:
    def __init__(self, harness: Harness, gosms: FakeGoSMS) -> None:
        self.harness = harness
        self.gosms = gosms
        deps = harness.deps
        self.job = SmsJob(deps.session_factory, deps.cipher, deps.clients)
        pace = Pace(chat_rate=100, chat_burst=100)
        self.sender = OutboxSender(harness.bot, deps.session_factory, deps.i18n, pace=pace)

    async def connect(self, language: str = "en") -> None:
        self.harness.tg.user(USER, language_code=language)
        await self.harness.send(USER, f"/token gosms {GOSMS_TOKEN}")

    async def send_sms(self, text: str, send_label: str = "Send") -> StoredMessage:
        await self.harness.send(USER, f"/send 79991234567 {text}")
        card = self.harness.last(USER)
        await self.harness.press(USER, send_label)
        return card

    async def cycle(self) -> list[str]:
        before = len(self.harness.tg.bot_messages(USER))
        await self.job.poll(USER)
        while await self.sender.drain_once():
            pass
        return [m.text for m in self.harness.tg.bot_messages(USER)[before:]]

    def last_sms_id(self) -> str:
        return str(self.gosms.sms_of(GOSMS_TOKEN)[0]["id"])


async def test_the_card_moves_to_delivered_by_itself(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    rig = Rig(harness, gosms)
    await rig.connect()
    card = await rig.send_sms("Hello")
    async with harness.deps.session_factory() as session:
        state = await PollStateRepo(session).get(USER, JOB)
        assert state is not None
        assert state.next_at <= utcnow() + timedelta(seconds=3), "/send starts the tracking"
    sms_id = rig.last_sms_id()
    assert await rig.cycle() == [], "still waiting: nothing changed"
    for status, label in ((1, "processing"), (2, "sent")):
        gosms.set_status(sms_id, status)
        assert await rig.cycle() == []
        assert (
            f"Status: {label}"
            in harness.tg.message(USER, card.message_id)
            .text.replace("⏳ ", "")
            .replace("📨 ", "")
            .replace("📤 ", "")
            or label in harness.tg.message(USER, card.message_id).text
        )
    gosms.set_status(sms_id, 4)
    assert await rig.cycle() == ["✅ Your SMS to 79991234567 was delivered."]
    final = harness.tg.message(USER, card.message_id)
    assert "delivered" in final.text
    assert final.button_texts()[:2] == ["🔄 Refresh", "🗑 Delete"], "the card keeps its buttons"
    requests = len(gosms.requests)
    assert await rig.cycle() == []
    assert len(gosms.requests) == requests, "a final SMS is not asked about again"


async def test_a_failed_sms_is_announced_in_russian(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    rig = Rig(harness, gosms)
    await rig.connect("ru")
    await rig.send_sms("Привет", "Отправить")
    gosms.set_status(rig.last_sms_id(), 5)
    [note] = await rig.cycle()
    assert note.startswith("❌ SMS на номер 79991234567 не прошло: ⚠️ не доставлено")


async def test_several_sms_are_read_in_one_page(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    rig = Rig(harness, gosms)
    await rig.connect()
    for n in range(4):
        await rig.send_sms(f"text {n}")
    for sms in gosms.sms_of(GOSMS_TOKEN):
        gosms.set_status(str(sms["id"]), 4)
    before = len(gosms.requests)
    notes = await rig.cycle()
    assert len(notes) == 4
    asked = [r.path for r in gosms.requests[before:]]
    assert asked == ["/sms"], "one list page instead of four /sms/get"


async def test_switched_off_tracking_costs_nothing(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    rig = Rig(harness, gosms)
    await rig.connect()
    await rig.send_sms("Hello")
    async with harness.deps.session_factory() as session:
        (await NotificationRepo(session).get(USER)).sms_status = False
        await session.commit()
    before = len(gosms.requests)
    gosms.set_status(rig.last_sms_id(), 4)
    assert await rig.cycle() == []
    assert len(gosms.requests) == before
