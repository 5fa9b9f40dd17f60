"""The GotSMS codes job: new codes pushed once, old ones never; hot and cold users; faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.db.models import utcnow
from bot.db.outbox import PollState
from bot.db.outbox_repo import PollStateRepo
from bot.db.repo import NotificationRepo, UserRepo
from bot.poller.alerts import RentsJob
from bot.poller.codes import JOB, CodesJob, CodesTiming
from bot.poller.sender import OutboxSender, Pace
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.shapes import Shape


@pytest.fixture(autouse=True, params=list(Shape))
def shape(request: pytest.FixtureRequest, gotsms: FakeGotSMS) -> Shape:
    """Every test runs once per answer shape of the fakes."""
    gotsms.shape = request.param
    return Shape(request.param)


USER = 7001
TIMING = CodesTiming(hot_interval=3, cold_interval=50)


class Rig:
    def __init__(self, harness: Harness, gotsms: FakeGotSMS) -> None:
        self.harness = harness
        self.gotsms = gotsms
        deps = harness.deps
        self.job = CodesJob(deps.session_factory, deps.cipher, deps.clients, timing=TIMING)
        pace = Pace(chat_rate=100, chat_burst=100)
        self.sender = OutboxSender(harness.bot, deps.session_factory, deps.i18n, pace=pace)

    async def connect(self, user_id: int = USER) -> None:
        self.harness.tg.user(user_id, language_code="en")
        await self.harness.send(user_id, f"/token gotsms {GOTSMS_TOKEN}")

    def rent(self) -> dict[str, Any]:
        plan = self.gotsms.plan_by("Telegram", "day", 1)
        return self.gotsms.create_rent(GOTSMS_TOKEN, plan["id"])

    async def cycle(self, user_id: int = USER) -> list[str]:
        """One poll and a full delivery; returns the texts the user got."""
        before = len(self.harness.tg.bot_messages(user_id))
        await self.job.poll(user_id)
        while await self.sender.drain_once():
            pass
        return [m.text for m in self.harness.tg.bot_messages(user_id)[before:]]

    async def state(self, user_id: int = USER) -> PollState:
        async with self.harness.deps.session_factory() as session:
            state = await PollStateRepo(session).get(user_id, JOB)
            assert state is not None
            return state

    def message_requests(self) -> int:
        return len(self.gotsms.requests_for(GOTSMS_TOKEN, "/messages"))


async def test_old_codes_are_summed_up_and_new_ones_pushed_once(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    rent = rig.rent()
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    gotsms.inject_message(rent["id"], "Your code is 111111", received_at=earlier)
    gotsms.inject_message(rent["id"], "Your code is 222222", received_at=earlier)
    await rig.connect()
    assert await rig.cycle() == [
        "📥 You have 2 unread codes in GotSMS — see /codes. New codes will come here automatically."
    ]
    assert await rig.cycle() == []
    gotsms.inject_message(rent["id"], "Telegram code 333333. Do not share <it>!", code="333333")
    [pushed] = await rig.cycle()
    assert pushed.startswith("🔑 New code from Telegram on ")
    assert "333333" in pushed
    assert "Do not share <it>!" in pushed
    assert await rig.cycle() == [], "never twice"
    assert gotsms.unread_of(GOTSMS_TOKEN), "polling does not mark messages as read"


async def test_a_code_between_connecting_and_the_first_poll_is_pushed(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    rent = rig.rent()
    await rig.connect()
    gotsms.inject_message(rent["id"], "Your code is 616161", code="616161")
    [pushed] = await rig.cycle()
    assert "616161" in pushed, "pushed, and not counted as an old unread code"


async def test_a_burst_larger_than_a_page_arrives_whole_and_in_order(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    await rig.cycle()
    rent = rig.rent()
    for n in range(25):
        gotsms.inject_message(rent["id"], f"code {100000 + n}", code=str(100000 + n))
    pushed = await rig.cycle()
    assert [text.splitlines()[1] for text in pushed] == [str(100000 + n) for n in range(25)]


async def test_hot_users_are_polled_every_interval_and_cold_ones_rarely(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    await rig.cycle()
    now = utcnow()
    state = await rig.state()
    assert timedelta(seconds=39) < state.next_at - now <= timedelta(seconds=50)
    async with harness.deps.session_factory() as session:
        await PollStateRepo(session).heat(USER, JOB, now + timedelta(minutes=30))
        await session.commit()
    await rig.cycle()
    state = await rig.state()
    assert state.next_at - utcnow() < timedelta(seconds=3.5)


async def test_api_failures_back_off_per_user_and_recover(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    await rig.cycle()
    rent = rig.rent()
    gotsms.set_down(True)
    await rig.cycle()
    await rig.cycle()
    state = await rig.state()
    assert state.failures == 2
    assert state.next_at - utcnow() <= timedelta(seconds=61), "a code is at most a minute late"
    gotsms.set_down(False)
    gotsms.inject_message(rent["id"], "code 424242", code="424242")
    [pushed] = await rig.cycle()
    assert "424242" in pushed
    assert (await rig.state()).failures == 0


async def test_429_is_honoured(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    await rig.cycle()
    gotsms.fail_next("/messages", 429, retry_after=20, times=3)
    await rig.cycle()
    wait = (await rig.state()).next_at - utcnow()
    assert timedelta(seconds=15) < wait <= timedelta(seconds=21)


async def test_the_users_reserve_is_kept(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    await rig.cycle()
    client = harness.deps.clients.gotsms(GOTSMS_TOKEN)
    while (client.quota().remaining or 30) > TIMING.reserve:
        await client.account()  # the user's own commands use up the budget
    sent = rig.message_requests()
    await rig.cycle()
    assert rig.message_requests() == sent, "the poller leaves the rest to the user"
    assert (await rig.state()).next_at > utcnow() + timedelta(seconds=30)


async def test_switched_off_codes_cost_nothing(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    async with harness.deps.session_factory() as session:
        (await NotificationRepo(session).get(USER)).codes = False
        await session.commit()
    await rig.cycle()
    assert rig.message_requests() == 0


async def test_a_revoked_token_is_retried_rarely(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    await rig.cycle()
    gotsms.fail_next("/messages", 401, body={"success": False, "message": "Unauthenticated."})
    await rig.cycle()
    assert (await rig.state()).next_at > utcnow() + timedelta(minutes=50)


async def test_logout_stops_watching(harness: Harness, gotsms: FakeGotSMS) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    await harness.send(USER, "/logout")
    await harness.press(USER, "GotSMS")
    await harness.press(USER, "Yes, disconnect")
    async with harness.deps.session_factory() as session:
        assert await PollStateRepo(session).get(USER, JOB) is None


async def test_a_user_without_active_rents_costs_no_request(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    await rig.connect()
    await rig.cycle()
    deps = harness.deps
    rents = RentsJob(deps.session_factory, deps.cipher, deps.clients)
    await rents.poll(USER)
    before = rig.message_requests()
    await rig.cycle()
    assert rig.message_requests() == before, "no rent, no polling of messages"
    rent = rig.rent()
    await rents.poll(USER)  # sees the new rent (and makes the user hot)
    gotsms.inject_message(rent["id"], "code 909090", code="909090")
    [pushed] = await rig.cycle()
    assert "909090" in pushed


async def test_hot_users_are_taken_first_when_many_are_due(harness: Harness) -> None:
    now = utcnow()
    users = (7601, 7602, 7603)
    async with harness.deps.session_factory() as session:
        repo = PollStateRepo(session)
        for user_id in users:
            await UserRepo(session).upsert_seen(user_id, user_id, "en")
            await repo.start(user_id, JOB)
        await repo.heat(7601, JOB, now + timedelta(minutes=30))
        for user_id in users:  # 7603 is the most overdue, 7601 the least (but hot)
            state = await repo.get(user_id, JOB)
            assert state is not None
            state.next_at = now - timedelta(seconds=user_id - 7600)
        await session.commit()
        due = await repo.due(JOB, now, 2)
    assert [s.user_id for s in due] == [7601, 7603]


def test_cold_intervals_are_spread_so_users_polled_together_drift_apart(
    harness: Harness,
) -> None:
    deps = harness.deps
    job = CodesJob(deps.session_factory, deps.cipher, deps.clients, timing=TIMING)
    cold = [job.spread(50.0) for _ in range(200)]
    assert all(40.0 <= s <= 50.0 for s in cold), "never later than the cold interval"
    assert max(cold) - min(cold) > 5.0, "spread, not bunched"
    assert job.spread(3.0) == 3.0, "hot users keep POLL_INTERVAL exactly"


NOTE_OF_3 = (
    "📥 You have 3 unread codes in GotSMS — see /codes. New codes will come here automatically."
)


async def test_codes_switched_on_again_are_summed_up_not_flooded(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    rig = Rig(harness, gotsms)
    rent = rig.rent()
    await rig.connect()
    assert await rig.cycle() == []
    await harness.send(USER, "/notify")
    assert (await harness.press(USER, "New codes")).text == "Off"
    earlier = datetime.now(UTC) - timedelta(minutes=2)
    for n in range(3):
        gotsms.inject_message(rent["id"], f"Your code is 00000{n}", received_at=earlier)
    assert await rig.cycle() == [], "switched off"
    assert (await harness.press(USER, "New codes")).text == "On"
    assert await rig.cycle() == [NOTE_OF_3], "one note, none of the three codes"
    assert await rig.cycle() == []
    gotsms.inject_message(rent["id"], "Your code is 444444", code="444444")
    [pushed] = await rig.cycle()
    assert "444444" in pushed, "new codes come one by one again"


@pytest.mark.parametrize("told", [False, True], ids=["start only", "unblocked, then start"])
async def test_a_user_back_after_blocking_gets_one_note_for_what_came_meanwhile(
    harness: Harness, gotsms: FakeGotSMS, told: bool
) -> None:
    rig = Rig(harness, gotsms)
    rent = rig.rent()
    await rig.connect()
    assert await rig.cycle() == []
    harness.tg.block(USER)
    gotsms.inject_message(rent["id"], "Your code is 999999", code="999999")
    assert await rig.cycle() == [], "the push finds the bot blocked"
    earlier = datetime.now(UTC) - timedelta(minutes=2)
    for n in range(3):
        gotsms.inject_message(rent["id"], f"Your code is 00000{n}", received_at=earlier)
    async with harness.deps.session_factory() as session:
        due = await PollStateRepo(session).due(JOB, utcnow() + timedelta(days=1), 10)
    assert not due, "a blocked user is not polled"
    unblocked = harness.tg.unblock(USER)
    if told:  # Telegram's my_chat_member update, before the user's /start
        assert unblocked is not None
        await harness.feed(unblocked)
    await harness.send(USER, "/start")
    assert await rig.cycle() == [NOTE_OF_3]
    assert await rig.cycle() == []
