"""No code yet: the push at a rent's no-code deadline, its buttons, the opt-in automatic refund
(once, across a crash, never after a code), and a code that comes after a refund."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bot.db.models import RefundState, RentWatch, utcnow
from bot.db.outbox_repo import PollStateRepo
from bot.db.rent_watch import RentWatchRepo
from bot.db.repo import NotificationRepo
from bot.poller.codes import CodesJob, CodesTiming
from bot.poller.nocode import JOB, NoCodeJob
from bot.poller.scheduler import Scheduler
from bot.poller.sender import OutboxSender, Pace
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.shapes import Shape
from tests.test_gotsms_catalog import connect

USER = 7401
NO_CODE = "after 15 minutes."


class Rig:
    def __init__(self, harness: Harness, gotsms: FakeGotSMS) -> None:
        self.harness = harness
        self.gotsms = gotsms
        self.job = self.fresh_job()
        deps = harness.deps
        self.codes = CodesJob(
            deps.session_factory, deps.cipher, deps.clients, timing=CodesTiming(3, 50)
        )
        pace = Pace(chat_rate=100, chat_burst=100)
        self.sender = OutboxSender(harness.bot, deps.session_factory, deps.i18n, pace=pace)

    def fresh_job(self, kind: type[NoCodeJob] = NoCodeJob) -> NoCodeJob:
        """A job as a restarted process has it: nothing in memory, the same database."""
        deps = self.harness.deps
        return kind(deps.session_factory, deps.cipher, deps.clients)

    async def connect(self) -> None:
        await connect(self.harness, USER)
        async with self.harness.deps.session_factory() as session:
            await PollStateRepo(session).start(USER, CodesJob.name)
            await session.commit()
        await self.codes.poll(USER)  # the first look: nothing there before counts as new

    async def rent(self) -> dict[str, Any]:
        """A rent made through the bot, as a user makes it."""
        await self.harness.send(USER, "/rent telegram")
        await self.harness.press(USER, "USA · 1 day · 1.00")
        await self.harness.press(USER, "Any area code")
        await self.harness.press(USER, "Rent for 1.00")
        return self.gotsms.rents_of(GOTSMS_TOKEN)[0]

    async def deadline_passes(self, rent_id: str) -> None:
        """As if the rent's no-code minutes went by: its start and deadline move back."""
        async with self.harness.deps.session_factory() as session:
            watch = await session.get(RentWatch, rent_id)
            assert watch is not None
            assert watch.remind_at is not None
            gone = watch.remind_at - utcnow() + timedelta(seconds=1)
            await session.execute(
                update(RentWatch)
                .where(RentWatch.rent_id == rent_id)
                .values(remind_at=watch.remind_at - gone, started_at=watch.started_at - gone)
            )
            await session.commit()

    async def set(self, **values: Any) -> None:
        async with self.harness.deps.session_factory() as session:
            settings = await NotificationRepo(session).get(USER)
            for name, value in values.items():
                setattr(settings, name, value)
            await session.commit()

    async def cycle(self, job: NoCodeJob | None = None) -> list[str]:
        """One poll of the no-code job and a full delivery; the texts the user got."""
        before = len(self.harness.tg.bot_messages(USER))
        await (job or self.job).poll(USER)
        await self.deliver()
        return [m.text for m in self.harness.tg.bot_messages(USER)[before:]]

    async def deliver(self) -> None:
        while await self.sender.drain_once():
            pass

    async def watch(self, rent_id: str) -> RentWatch:
        async with self.harness.deps.session_factory() as session:
            watch = await RentWatchRepo(session).get(USER, rent_id)
            assert watch is not None
            return watch

    def refunds(self) -> int:
        return sum(
            1 for r in self.gotsms.requests if r.method == "POST" and r.path.endswith("/refund")
        )

    def requests(self) -> int:
        return len(self.gotsms.requests_for(GOTSMS_TOKEN))


@pytest.fixture(autouse=True, params=list(Shape))
def shape(request: pytest.FixtureRequest, gotsms: FakeGotSMS) -> Shape:
    """Every test runs once per answer shape of the fakes."""
    gotsms.shape = request.param
    return Shape(request.param)


@pytest.fixture
async def rig(harness: Harness, gotsms: FakeGotSMS) -> Rig:
    made = Rig(harness, gotsms)
    await made.connect()
    return made


async def test_one_push_at_the_deadline_and_keep_waiting(rig: Rig) -> None:
    rent = await rig.rent()
    watch = await rig.watch(rent["id"])
    assert watch.made_here
    assert watch.remind_at is not None
    assert timedelta(minutes=14) < watch.remind_at - utcnow() <= timedelta(minutes=15)
    async with rig.harness.deps.session_factory() as session:
        state = await PollStateRepo(session).get(USER, JOB)
    assert state is not None
    assert state.next_at == watch.remind_at, "due at the deadline"
    spent = rig.requests()
    assert await rig.cycle() == [], "before the deadline: nothing"
    assert rig.requests() == spent, "and not a single request"

    await rig.deadline_passes(rent["id"])
    texts = await rig.cycle()
    assert len(texts) == 1
    assert texts[0].startswith(f"⌛ No code on {rent['phone']} (Telegram) {NO_CODE}")
    push = rig.harness.last(USER)
    assert push.button_texts() == ["↩️ Refund", "⏰ Wake up", "⏳ Keep waiting"]
    assert await rig.cycle() == [], "one push per rent"

    spent = rig.requests()
    answer = await rig.harness.press(USER, "Keep waiting")
    assert answer.text == "OK, I'll keep waiting: the code will arrive here automatically."
    after = rig.harness.tg.message(USER, push.message_id)
    assert after.button_texts() == []
    assert "Still waiting: the code will arrive here automatically." in after.text
    assert rig.requests() == spent, "Keep waiting asks nothing of GotSMS"


async def test_the_scheduler_runs_it_at_the_deadline(rig: Rig) -> None:
    """Through the scheduler, as the poller runs it: the poll is due when the deadline is."""
    rent = await rig.rent()
    scheduler = Scheduler(rig.harness.deps.session_factory, [rig.job], writes=rig.job.writes)
    assert await scheduler.round(utcnow()) == 0, "not due before the deadline"
    await rig.deadline_passes(rent["id"])
    async with rig.harness.deps.session_factory() as session:
        await PollStateRepo(session).poke(USER, JOB, utcnow())
        await session.commit()
    assert await scheduler.round(utcnow()) == 1
    await scheduler.idle()
    await rig.deliver()
    assert NO_CODE in rig.harness.last(USER).text
    async with rig.harness.deps.session_factory() as session:
        state = await PollStateRepo(session).get(USER, JOB)
    assert state is not None
    assert state.next_at > utcnow() + timedelta(hours=1), "nothing due"


async def test_the_push_refunds_through_the_confirmation_once(rig: Rig) -> None:
    rent = await rig.rent()
    await rig.deadline_passes(rent["id"])
    await rig.cycle()
    await rig.harness.press(USER, "Refund")
    assert "Refund the rental of" in rig.harness.last(USER).text
    assert rig.refunds() == 0
    presses = [rig.harness.press_update(USER, "Yes, refund") for _ in range(2)]
    for press in presses:
        await rig.harness.feed(press)
    assert rig.refunds() == 1
    assert "Refunded: 1.00 is back on your balance." in rig.harness.last(USER).text
    assert (await rig.watch(rent["id"])).refund_state == RefundState.REFUNDED


async def test_wake_up_from_the_push(rig: Rig) -> None:
    rent = await rig.rent()
    await rig.deadline_passes(rent["id"])
    await rig.cycle()
    await rig.harness.press(USER, "Wake up")
    wakes = [r for r in rig.gotsms.requests if r.path.endswith("/wake-up")]
    assert len(wakes) == 1
    assert "Wake-up request sent:" in rig.harness.last(USER).text


async def test_no_push_for_a_rental_refunded_elsewhere(rig: Rig) -> None:
    rent = await rig.rent()
    refunded = await rig.harness.deps.clients.gotsms(GOTSMS_TOKEN).refund(rent["id"])
    assert refunded.status == "finished"
    await rig.deadline_passes(rent["id"])
    assert await rig.cycle() == []
    assert (await rig.watch(rent["id"])).remind_at is None


async def test_no_reminder_when_switched_off_since(rig: Rig) -> None:
    rent = await rig.rent()
    await rig.set(no_code_minutes=0)
    await rig.deadline_passes(rent["id"])
    assert await rig.cycle() == []
    assert (await rig.watch(rent["id"])).remind_at is None


async def test_no_push_when_a_message_came(rig: Rig) -> None:
    rent = await rig.rent()
    rig.gotsms.inject_message(rent["id"], "Your code is 515151")
    await rig.deadline_passes(rent["id"])
    assert await rig.cycle() == []
    watch = await rig.watch(rent["id"])
    assert watch.got_message
    assert watch.remind_at is None


async def test_the_codes_job_marks_the_rent(rig: Rig) -> None:
    rent = await rig.rent()
    rig.gotsms.inject_message(rent["id"], "Your code is 616161")
    await rig.codes.poll(USER)
    watch = await rig.watch(rent["id"])
    assert watch.got_message
    assert watch.remind_at is None
    await rig.deliver()
    spent = rig.requests()
    await rig.job.poll(USER)
    assert rig.requests() == spent, "nothing left to look at"


async def test_the_switch_on_the_card(rig: Rig) -> None:
    rent = await rig.rent()
    await rig.harness.press(USER, "Rental card")
    assert "Auto-refund if no code: off" in rig.harness.last(USER).text
    await rig.harness.press(USER, "Turn on auto-refund")
    card = rig.harness.last(USER)
    assert "Auto-refund is on: if no code comes within 15 minutes" in card.text
    assert "Auto-refund if no code: on" in card.text
    assert "🤖 Turn off auto-refund" in card.button_texts()
    assert (await rig.watch(rent["id"])).auto_refund
    await rig.harness.press(USER, "Turn off auto-refund")
    assert "Auto-refund is off for this rental." in rig.harness.last(USER).text
    assert not (await rig.watch(rent["id"])).auto_refund

    await rig.deadline_passes(rent["id"])
    await rig.harness.press(USER, "auto-renew")  # any button that shows the card again
    card = rig.harness.last(USER)
    assert "auto-refund" not in " ".join(card.button_texts()), "past the deadline: no switch"
    assert "Auto-refund if no code" not in card.text


async def test_the_notify_settings(rig: Rig) -> None:
    await rig.harness.send(USER, "/notify")
    assert "No-code reminder for rentals made here: after 15 minutes" in rig.harness.last(USER).text
    answer = await rig.harness.press(USER, "10")
    assert answer.text == "No-code reminder for rentals made here: after 10 minutes without a code."
    assert "✅ 10" in rig.harness.last(USER).button_texts()
    await rig.harness.press(USER, "Refund a rental automatically if no code arrives")
    assert "✅ Refund a rental automatically" in " ".join(rig.harness.last(USER).button_texts())

    rent = await rig.rent()
    watch = await rig.watch(rent["id"])
    assert watch.auto_refund
    assert watch.remind_at is not None
    assert timedelta(minutes=9) < watch.remind_at - utcnow() <= timedelta(minutes=10)

    await rig.harness.send(USER, "/notify")
    await rig.harness.press(USER, "Off")
    assert "No-code reminder for rentals made here: off." in rig.harness.last(USER).text
    second = await rig.rent()
    assert (await rig.watch(second["id"])).remind_at is None


async def test_the_automatic_refund_exactly_once(rig: Rig) -> None:
    await rig.set(no_code_refund=True)
    rent = await rig.rent()
    assert rig.gotsms.balance(GOTSMS_TOKEN) == 99.0
    await rig.deadline_passes(rent["id"])
    texts = await rig.cycle()
    assert texts == [
        f"↩️ No code came on {rent['phone']} (Telegram), so I refunded the rental: 1.00 is back "
        "on your balance."
    ]
    assert rig.refunds() == 1
    assert rig.gotsms.balance(GOTSMS_TOKEN) == 100.0
    watch = await rig.watch(rent["id"])
    assert watch.refund_state == RefundState.REFUNDED
    assert watch.refunded_at is not None
    assert await rig.cycle() == []
    assert await rig.cycle(rig.fresh_job()) == []
    assert rig.refunds() == 1


async def test_a_code_in_the_same_second_is_never_refunded(rig: Rig) -> None:
    await rig.set(no_code_refund=True)
    rent = await rig.rent()
    rig.gotsms.inject_message(rent["id"], "Your code is 717171")
    await rig.deadline_passes(rent["id"])
    assert await rig.cycle() == []
    assert rig.refunds() == 0
    assert (await rig.watch(rent["id"])).refund_state is None


async def test_a_code_between_the_last_read_and_the_refund(rig: Rig) -> None:
    """The messages were read (none), then a code comes and the codes job marks the rent: the
    claim of the refund, guarded on no message, gets nothing."""
    await rig.set(no_code_refund=True)
    rent = await rig.rent()
    gotsms, codes = rig.gotsms, rig.codes

    class Racing(NoCodeJob):
        async def _claim(self, rent_id: str) -> bool:
            gotsms.inject_message(rent_id, "Your code is 818181")
            await codes.poll(USER)
            return await super()._claim(rent_id)

    await rig.deadline_passes(rent["id"])
    texts = await rig.cycle(rig.fresh_job(Racing))
    assert rig.refunds() == 0
    assert [t for t in texts if "818181" in t], "the code itself is pushed"
    assert not [t for t in texts if "refund" in t.lower()]
    watch = await rig.watch(rent["id"])
    assert watch.got_message
    assert watch.refund_state is None


async def test_a_restart_after_the_refund_went_out(rig: Rig) -> None:
    """The refund request went through, the process died before writing its outcome: the next
    process finds `trying`, never asks again, and learns from the rent list it was refunded."""
    await rig.set(no_code_refund=True)
    rent = await rig.rent()
    await rig.deadline_passes(rent["id"])
    dying = rig.fresh_job()
    dying.writes.add = lambda *args, **kwargs: None  # type: ignore[method-assign]
    await dying.poll(USER)
    assert rig.refunds() == 1
    assert (await rig.watch(rent["id"])).refund_state == RefundState.TRYING

    texts = await rig.cycle(rig.fresh_job())
    assert rig.refunds() == 1, "exactly one refund call"
    assert texts == [
        f"↩️ No code came on {rent['phone']} (Telegram), so I refunded the rental: 1.00 is back "
        "on your balance."
    ]
    assert (await rig.watch(rent["id"])).refund_state == RefundState.REFUNDED
    assert await rig.cycle(rig.fresh_job()) == []
    assert rig.refunds() == 1


async def test_a_crash_between_the_claim_and_the_request(rig: Rig) -> None:
    """Claimed, then the poll died before the request: it is not sent later either; the user
    learns the rental is still active and can refund it by hand."""
    await rig.set(no_code_refund=True)
    rent = await rig.rent()
    await rig.deadline_passes(rent["id"])

    class Crashing(NoCodeJob):
        async def _claim(self, rent_id: str) -> bool:
            await super()._claim(rent_id)
            raise RuntimeError("killed right after the claim")

    await rig.cycle(rig.fresh_job(Crashing))
    assert (await rig.watch(rent["id"])).refund_state == RefundState.TRYING
    texts = await rig.cycle(rig.fresh_job())
    assert rig.refunds() == 0
    assert len(texts) == 1
    assert "did not go through" in texts[0]
    assert (await rig.watch(rent["id"])).refund_state == RefundState.FAILED
    assert rig.gotsms.rents_of(GOTSMS_TOKEN)[0]["status"] == "active"

    await rig.harness.press(USER, "Open rental")
    await rig.harness.press(USER, "Refund")
    await rig.harness.press(USER, "Yes, refund")
    assert rig.refunds() == 1, "by hand, once"
    assert (await rig.watch(rent["id"])).refund_state == RefundState.REFUNDED


async def test_refund_not_available_in_plain_words(rig: Rig) -> None:
    await rig.set(no_code_refund=True)
    rent = await rig.rent()
    rig.gotsms.set_rent_created(rent["id"], rig.gotsms.now() - timedelta(minutes=30))
    await rig.deadline_passes(rent["id"])
    texts = await rig.cycle()
    assert rig.refunds() == 1
    assert texts == [
        f"⚠️ No code came on {rent['phone']} (Telegram), but GotSMS did not allow a refund of "
        "this rental (it may be too old for one, or a message has just come). The rental stays "
        "active and nothing was refunded."
    ]
    assert (await rig.watch(rent["id"])).refund_state == RefundState.UNAVAILABLE
    assert rig.gotsms.balance(GOTSMS_TOKEN) == 99.0


async def test_a_code_after_the_refund_says_so(rig: Rig) -> None:
    await rig.set(no_code_refund=True)
    rent = await rig.rent()
    await rig.deadline_passes(rent["id"])
    await rig.cycle()
    rig.gotsms.inject_message(rent["id"], "Your code is 919191")
    before = len(rig.harness.tg.bot_messages(USER))
    await rig.codes.poll(USER)
    await rig.deliver()
    texts = [m.text for m in rig.harness.tg.bot_messages(USER)[before:]]
    assert len(texts) == 1
    assert "919191" in texts[0]
    assert "This rental was refunded before this code came." in texts[0]


async def test_a_code_before_the_refund_is_not_marked(rig: Rig) -> None:
    rent = await rig.rent()
    rig.gotsms.inject_message(rent["id"], "Your code is 929292")
    before = len(rig.harness.tg.bot_messages(USER))
    await rig.codes.poll(USER)
    await rig.deliver()
    texts = [m.text for m in rig.harness.tg.bot_messages(USER)[before:]]
    assert len(texts) == 1
    assert "refunded" not in texts[0]


async def test_an_unknown_outcome_is_not_retried(rig: Rig) -> None:
    """GotSMS refunded, then answered 500: the request is not sent again and the user is told
    to look; a later poll does not touch it either."""
    await rig.set(no_code_refund=True)
    rent = await rig.rent()
    rig.gotsms.fail_next(f"/rents/{rent['id']}/refund", 500, after=True)
    await rig.deadline_passes(rent["id"])
    texts = await rig.cycle()
    assert rig.refunds() == 1
    assert len(texts) == 1
    assert "but I do not know whether it did. Look at /rents" in texts[0]
    assert (await rig.watch(rent["id"])).refund_state == RefundState.UNCERTAIN
    assert await rig.cycle(rig.fresh_job()) == []
    assert rig.refunds() == 1
