"""Numbers that say when they are awake: the wake job, its pushes, the rent card's countdown."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bot.db.models import RentWatch, WakeState, utcnow
from bot.db.outbox import PollState
from bot.db.outbox_repo import PollStateRepo
from bot.poller import create_poller
from bot.poller.alerts import RentsJob
from bot.poller.codes import JOB as CODES_JOB
from bot.poller.sender import OutboxSender, Pace
from bot.poller.wake import JOB, WakeJob
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.shapes import Shape
from tests.fakes.telegram import StoredMessage


@pytest.fixture(autouse=True, params=list(Shape))
def shape(request: pytest.FixtureRequest, gotsms: FakeGotSMS) -> Shape:
    """Every test runs once per answer shape of the fake."""
    gotsms.shape = request.param
    return Shape(request.param)


EN, RU = 7401, 7402
QUEUE = 5 * 60  # the fake's wake-up queue, seconds
ONLINE = 30 * 60  # ...and how long the number is online after it


class Rig:
    def __init__(self, harness: Harness, gotsms: FakeGotSMS, user: int = EN) -> None:
        self.harness = harness
        self.gotsms = gotsms
        self.user = user
        self.job = self.new_job()
        pace = Pace(chat_rate=100, chat_burst=100)
        deps = harness.deps
        self.sender = OutboxSender(harness.bot, deps.session_factory, deps.i18n, pace=pace)

    def new_job(self) -> WakeJob:
        """A wake job as a fresh process would make it (nothing kept in memory)."""
        deps = self.harness.deps
        return WakeJob(deps.session_factory, deps.cipher, deps.clients)

    async def connect(self, language: str = "en") -> None:
        self.harness.tg.user(self.user, language_code=language)
        await self.harness.send(self.user, f"/token gotsms {GOTSMS_TOKEN}")

    def rent(self) -> dict[str, Any]:
        plan = self.gotsms.plan_by("Telegram", "day", 1)
        return self.gotsms.create_rent(GOTSMS_TOKEN, plan["id"])

    async def open_card(self, phone: str) -> StoredMessage:
        await self.harness.send(self.user, "/rents")
        await self.harness.press(self.user, phone)
        return self.harness.last(self.user)

    async def wake_from_card(self, phone: str) -> StoredMessage:
        card = await self.open_card(phone)
        await self.harness.press(self.user, "Wake up")
        return self.harness.tg.message(self.user, card.message_id)

    def status_reads(self) -> int:
        return sum(1 for r in self.gotsms.requests if r.path.endswith("/status"))

    async def cycle(self, job: WakeJob | None = None) -> list[StoredMessage]:
        """One poll of the user's wake job now, and the pushes it queued, sent."""
        before = len(self.harness.tg.bot_messages(self.user))
        await (job or self.job).poll(self.user)
        while await self.sender.drain_once():
            pass
        return self.harness.tg.bot_messages(self.user)[before:]

    async def watch(self, rent_id: str) -> RentWatch:
        async with self.harness.deps.session_factory() as session:
            found = await session.get(RentWatch, rent_id)
            assert found is not None
            return found


async def test_awake_is_pushed_once_with_how_long_it_stays(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    await rig.wake_from_card(made["phone"])
    watch = await rig.watch(made["id"])
    assert watch.wake_state == WakeState.QUEUED
    assert not watch.made_here, "a rent made in the panel gets its record too"
    assert await rig.cycle() == [], "still in the queue"
    async with harness.deps.session_factory() as session:  # the card's 30 hot minutes are over
        await session.execute(update(PollState).values(hot_until=None))
        await session.commit()
    gotsms.advance(QUEUE + 18 * 60 - 30)  # online, 12½ minutes left
    [push] = await rig.cycle()
    awake = "is awake now: it is online and can receive an SMS."
    assert f"<b>{made['phone']}</b> (Telegram) {awake}" in (push.html or "")
    assert "It stays online for 12 more minutes." in push.text
    assert made["phone"] in [b.raw.get("copy_text", {}).get("text") for b in push.buttons[0]]
    assert "📋 Open rental" in push.button_texts()
    reads = rig.status_reads()
    assert await rig.cycle() == []
    assert rig.status_reads() == reads, "nothing followed any more: no request"
    assert (await rig.watch(made["id"])).wake_state == WakeState.AWAKE
    async with harness.deps.session_factory() as session:
        codes = await PollStateRepo(session).get(EN, CODES_JOB)
    assert codes is not None
    assert codes.hot_until is not None, "codes are polled often while the number is awake"
    left = codes.hot_until - utcnow()
    assert timedelta(minutes=12) < left <= timedelta(minutes=12, seconds=30)


async def test_the_push_is_not_repeated_after_a_restart(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    await rig.wake_from_card(made["phone"])
    assert await rig.cycle() == []
    gotsms.advance(QUEUE + 60)
    restarted = rig.new_job()  # the first process is gone; what it followed is in the DB
    [push] = await rig.cycle(restarted)
    assert "is awake now" in push.text
    assert await rig.cycle(rig.new_job()) == []
    async with harness.deps.session_factory() as session:  # as if the state had not been kept
        watch = await session.get(RentWatch, made["id"])
        assert watch is not None
        watch.wake_state = WakeState.QUEUED.value
        await session.commit()
    reads = rig.status_reads()
    assert await rig.cycle(rig.new_job()) == [], "the outbox remembers this wake-up"
    assert rig.status_reads() == reads + 1


async def test_a_new_wake_up_is_pushed_again(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    await rig.wake_from_card(made["phone"])
    gotsms.advance(QUEUE + 60)
    assert len(await rig.cycle()) == 1
    gotsms.advance(ONLINE)  # asleep again: GotSMS allows another wake-up
    card = await rig.open_card(made["phone"])
    assert "📶 Now: asleep" in card.text
    await harness.press(EN, "Wake up")
    gotsms.advance(QUEUE + 60)
    [push] = await rig.cycle()
    assert "is awake now" in push.text


async def test_an_expired_wake_up_says_so_once(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    await rig.wake_from_card(made["phone"])
    gotsms.wake_never_online(made["id"])
    assert await rig.cycle() == []
    gotsms.advance(QUEUE + 1)
    [push] = await rig.cycle()
    assert "has expired: the number did not come online" in push.text
    assert "awake now" not in push.text
    assert "⏰ Wake up again" in push.button_texts()
    assert await rig.cycle() == []
    assert (await rig.watch(made["id"])).wake_state == WakeState.OVER
    await harness.press(EN, "Wake up again")  # from the push: GotSMS allows it again
    assert sum(1 for r in gotsms.requests if r.path.endswith("/wake-up")) == 2
    assert (await rig.watch(made["id"])).wake_state == WakeState.QUEUED


async def test_a_failed_wake_up_says_so_once(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    await rig.wake_from_card(made["phone"])
    gotsms.wake_fail(made["id"])
    [push] = await rig.cycle()
    assert "could not be woken up: GotSMS cancelled the wake-up" in push.text
    assert await rig.cycle() == []
    assert (await rig.watch(made["id"])).wake_state == WakeState.FAILED


async def test_a_rental_that_ends_while_queued(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    await rig.wake_from_card(made["phone"])
    gotsms.set_rent_end(made["id"], gotsms.now() - timedelta(seconds=1))
    [push] = await rig.cycle()
    assert "is over: the rental has ended" in push.text
    assert await rig.cycle() == []


async def test_a_wake_up_in_the_panel_is_seen_by_the_rents_job(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    deps = harness.deps
    rents = RentsJob(deps.session_factory, deps.cipher, deps.clients)
    await rents.poll(EN)
    assert await rig.cycle() == []
    async with deps.session_factory() as session:
        state = await PollStateRepo(session).get(EN, JOB)
    assert state is None or state.cursor == "0", "nothing followed, nothing to poll"
    gotsms.wake_in_panel(made["id"])
    await rents.poll(EN)
    assert (await rig.watch(made["id"])).wake_state == WakeState.QUEUED
    await rents.poll(EN)  # the same wake-up seen again: still one
    gotsms.advance(QUEUE + 60)
    [push] = await rig.cycle()
    assert "is awake now" in push.text
    await rents.poll(EN)
    assert (await rig.watch(made["id"])).wake_state == WakeState.AWAKE, "not followed twice"


async def test_no_status_request_when_nothing_is_followed(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    rig.rent()
    async with harness.deps.session_factory() as session:
        await PollStateRepo(session).start(EN, JOB)
        await session.commit()
    before = len(gotsms.requests)
    assert await rig.cycle() == []
    assert len(gotsms.requests) == before, "not one request"
    async with harness.deps.session_factory() as session:
        state = await PollStateRepo(session).get(EN, JOB)
    assert state is not None
    assert state.next_at > utcnow() + timedelta(hours=1), "idle until a wake-up is followed"


async def test_number_awake_off_in_notify(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    await harness.send(EN, "/notify")
    menu = harness.last(EN)
    assert "✅ Number awake" in menu.button_texts()
    answer = await harness.press(EN, "Number awake")
    assert answer.text == "Off"
    assert "⬜ Number awake" in harness.tg.message(EN, menu.message_id).button_texts()
    made = rig.rent()
    await rig.wake_from_card(made["phone"])
    gotsms.advance(QUEUE + 60)
    reads = rig.status_reads()
    assert await rig.cycle() == []
    assert rig.status_reads() == reads, "not wanted: no request"
    await harness.send(EN, "/notify")
    await harness.press(EN, "Number awake")
    async with harness.deps.session_factory() as session:
        state = await PollStateRepo(session).get(EN, JOB)
    assert state is not None
    assert state.next_at <= utcnow(), "switched on again: looked at now, not when idle ends"
    [push] = await rig.cycle()
    assert "is awake now" in push.text


async def test_card_countdown_and_wake_up_only_when_allowed(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    card = await rig.open_card(made["phone"])
    assert "📶 Now: asleep" in card.text
    assert "Wake up" in " ".join(card.button_texts())
    woken = await rig.wake_from_card(made["phone"])
    assert "📶 Now: waking up, about 5 more minutes in the queue" in woken.text
    assert "Wake up" not in " ".join(woken.button_texts()), "GotSMS does not allow it now"
    gotsms.advance(4 * 60 + 30)
    card = await rig.open_card(made["phone"])
    assert "📶 Now: waking up, about 1 more minute in the queue" in card.text
    gotsms.advance(30 + 18 * 60 - 10)
    card = await rig.open_card(made["phone"])
    assert "📶 Now: awake, online for 12 more minutes" in card.text
    assert "Wake up" not in " ".join(card.button_texts())
    gotsms.advance(12 * 60)  # 10 s left
    card = await rig.open_card(made["phone"])
    assert "📶 Now: awake, online for less than a minute more" in card.text
    gotsms.advance(60)
    card = await rig.open_card(made["phone"])
    assert "📶 Now: asleep" in card.text
    assert "Wake up" in " ".join(card.button_texts()), "allowed again"


async def test_card_without_budget_reads_no_status(harness: Harness, gotsms: FakeGotSMS) -> None:
    """The card's status read is the first to go when the budget runs short."""
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    await rig.open_card(made["phone"])
    reads = rig.status_reads()
    client = harness.deps.clients.gotsms(GOTSMS_TOKEN)
    for _ in range(21):  # the user's other commands: 3 of the 30 a minute are left
        await client.account()
    card = await rig.open_card(made["phone"])
    assert rig.status_reads() == reads
    assert "📶 Now: asleep" in card.text, "what the rent itself says"


async def test_the_running_poller_pushes_once(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    made = rig.rent()
    deps = harness.deps
    poller = create_poller(
        harness.bot, deps.session_factory, deps.cipher, deps.clients, deps.i18n, 1.0
    )
    [job] = [job for job in poller.scheduler.jobs if job.name == JOB]
    job.every = 0.5  # CHECK_EVERY, shortened for the test
    poller.start()
    try:
        await rig.wake_from_card(made["phone"])
        deadline = time.monotonic() + 5
        while rig.status_reads() < 3:  # the card's read, then the job's
            assert time.monotonic() < deadline, "the job never looked"
            await asyncio.sleep(0.05)
        since = harness.tg.seq
        gotsms.advance(QUEUE + 60)
        await harness.tg.wait_for_bot_message(EN, "is awake now", timeout=5, since=since)
        await asyncio.sleep(1.5)
        assert sum("is awake now" in m.text for m in harness.tg.bot_messages(EN)) == 1
    finally:
        await poller.stop()


def russian(harness: Harness, msgid: str) -> bool:
    return harness.deps.i18n.gettext(msgid, locale="ru") != msgid


async def test_card_and_push_in_russian(harness: Harness, gotsms: FakeGotSMS) -> None:
    assert russian(harness, "awake, online for {n} more minute"), "the wake-up texts in Russian"
    rig = Rig(harness, gotsms, RU)
    await rig.connect("ru")
    made = rig.rent()
    await harness.send(RU, "/rents")
    await harness.press(RU, made["phone"])
    assert "📶 Сейчас: спит" in harness.last(RU).text
    await harness.press(RU, "Разбудить")
    assert "в очереди на пробуждение, ещё примерно 5 минут" in harness.last(RU).text
    gotsms.advance(QUEUE + 21 * 60 - 10)
    await harness.send(RU, "/rents")
    await harness.press(RU, made["phone"])
    assert "📶 Сейчас: в сети ещё 9 минут" in harness.last(RU).text
    [push] = await rig.cycle()
    assert "проснулся: он в сети и может принять SMS" in push.text
    assert "В сети он пробудет ещё 9 минут." in push.text
    await harness.send(RU, "/notify")
    assert "✅ Номер в сети" in harness.last(RU).button_texts()
