"""The daily retention: old history goes, what deduplication needs stays; once per deployment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from bot.db.fsm import FsmRecord
from bot.db.models import (
    AccessRefusal,
    Campaign,
    CampaignRow,
    Confirmation,
    Instance,
    JobRun,
    RentWatch,
    SentSms,
    utcnow,
)
from bot.db.outbox import OutboxItem
from bot.db.repo import DeviceRepo
from bot.poller.alerts import DevicesJob
from bot.poller.codes import CodesJob, CodesTiming
from bot.poller.retention import CODE_KEYS_KEPT, EMPTY, JOB, Retention, claim
from bot.poller.sender import OutboxSender, Pace
from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS

USER, OTHER = 7401, 7402
DAYS = 30


def retention(harness: Harness, owner: str = "a") -> Retention:
    return Retention(harness.deps.session_factory, DAYS, owner=owner)


async def age(harness: Harness, days: float, *, kind: str | None = None) -> None:
    """Every outbox row (of `kind`) as if queued and sent `days` ago."""
    then = utcnow() - timedelta(days=days)
    query = update(OutboxItem).values(created_at=then, not_before=then)
    query = query if kind is None else query.where(OutboxItem.kind == kind)
    async with harness.deps.session_factory() as session:
        await session.execute(query)
        await session.execute(query.where(OutboxItem.sent_at.is_not(None)).values(sent_at=then))
        await session.commit()


async def outbox(harness: Harness, kind: str) -> list[OutboxItem]:
    async with harness.deps.session_factory() as session:
        query = select(OutboxItem).where(OutboxItem.kind == kind).order_by(OutboxItem.id)
        return list((await session.scalars(query)).all())


class Pushes:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        deps = harness.deps
        pace = Pace(chat_rate=100, chat_burst=100)
        self.sender = OutboxSender(harness.bot, deps.session_factory, deps.i18n, pace=pace)

    def codes(self) -> CodesJob:
        """A fresh job, as after a restart: it remembers nothing of the pages it saw."""
        deps = self.harness.deps
        timing = CodesTiming(hot_interval=3, cold_interval=50)
        return CodesJob(deps.session_factory, deps.cipher, deps.clients, timing=timing)

    async def cycle(self, job: CodesJob | DevicesJob) -> list[str]:
        before = len(self.harness.tg.bot_messages(USER))
        await job.poll(USER)
        while await self.sender.drain_once():
            pass
        return [m.text for m in self.harness.tg.bot_messages(USER)[before:]]


async def connect_gotsms(harness: Harness, gotsms: FakeGotSMS) -> str:
    harness.tg.user(USER, language_code="en")
    await harness.send(USER, f"/token gotsms {GOTSMS_TOKEN}")
    plan = gotsms.plan_by("Telegram", "month", 1)
    rent_id: str = gotsms.create_rent(GOTSMS_TOKEN, plan["id"])["id"]
    return rent_id


async def test_a_code_of_40_days_ago_still_on_the_first_page_is_not_pushed_again(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    pushes = Pushes(harness)
    rent_id = await connect_gotsms(harness, gotsms)
    assert await pushes.cycle(pushes.codes()) == []
    gotsms.inject_message(rent_id, "Your code is 404040", code="404040")
    [pushed] = await pushes.cycle(pushes.codes())
    assert "404040" in pushed
    await age(harness, 40)

    pruned = await retention(harness).prune()
    [kept] = await outbox(harness, "code")
    assert kept.payload == EMPTY, "kept for its key only: the code's text is gone"
    assert pruned.counts["outbox compacted"] >= 1
    assert await pushes.cycle(pushes.codes()) == [], "never twice, even after a restart"
    gotsms.inject_message(rent_id, "Your code is 515151", code="515151")
    [new] = await pushes.cycle(pushes.codes())
    assert "515151" in new

    async with harness.deps.session_factory() as session:  # what the key is there for
        forgotten = update(OutboxItem).where(OutboxItem.id == kept.id)
        await session.execute(forgotten.values(dedupe_key="elsewhere"))
        await session.commit()
    again = await pushes.cycle(pushes.codes())
    assert any("404040" in text for text in again), "without its key the code would come again"


async def test_code_keys_past_what_the_job_can_read_go(harness: Harness) -> None:
    harness.tg.user(USER, language_code="en")
    harness.tg.user(OTHER, language_code="en")
    for user_id in (USER, OTHER):
        await harness.send(user_id, "/start")
    now = utcnow()
    async with harness.deps.session_factory() as session:
        for n in range(CODE_KEYS_KEPT + 30):
            session.add(
                OutboxItem(user_id=USER, kind="code", dedupe_key=f"m{n}", payload='{"code": "1"}')
            )
        session.add(OutboxItem(user_id=OTHER, kind="code", dedupe_key="o1", sent_at=now))
        await session.commit()
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.user_id == USER)
            .values(sent_at=now - timedelta(days=45), created_at=now - timedelta(days=45))
        )
        await session.commit()
    # the newest ten came yesterday
    async with harness.deps.session_factory() as session:
        newest = select(OutboxItem.id).where(OutboxItem.user_id == USER)
        ids = sorted((await session.scalars(newest)).all())[-10:]
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id.in_(ids))
            .values(sent_at=now - timedelta(days=1), created_at=now - timedelta(days=1))
        )
        await session.commit()

    pruned = await retention(harness).prune()
    assert pruned.counts["outbox codes"] == 30
    keys = [row.dedupe_key for row in await outbox(harness, "code") if row.user_id == USER]
    assert keys == [f"m{n}" for n in range(30, CODE_KEYS_KEPT + 30)], "the newest are kept"
    assert [row.dedupe_key for row in await outbox(harness, "code") if row.user_id == OTHER] == [
        "o1"
    ]
    assert (await retention(harness).prune()).total == 0, "a second run finds nothing"


async def test_a_device_episode_survives_the_pruning(harness: Harness, gosms: FakeGoSMS) -> None:
    pushes = Pushes(harness)
    harness.tg.user(USER, language_code="en")
    await harness.send(USER, f"/token gosms {GOSMS_TOKEN}")
    device = gosms.add_device(GOSMS_TOKEN, name="Pixel")
    async with harness.deps.session_factory() as session:
        await DeviceRepo(session).add(USER, device, "Pixel")
        await session.commit()
    deps = harness.deps
    job = DevicesJob(deps.session_factory, deps.cipher, deps.clients)
    for _ in range(2):  # two old episodes: off, back, off, back
        gosms.set_device(device, last_online=datetime.now(UTC) - timedelta(minutes=12))
        assert len(await pushes.cycle(job)) == 1
        gosms.set_device(device, last_online=datetime.now(UTC))
        assert len(await pushes.cycle(job)) == 1
    gosms.set_device(device, last_online=datetime.now(UTC) - timedelta(minutes=12))
    [offline] = await pushes.cycle(job)
    assert "offline" in offline
    await age(harness, 40)

    pruned = await retention(harness).prune()
    assert pruned.counts["outbox episodes"] == 4
    [kept] = await outbox(harness, "device_online")
    assert kept.dedupe_key == f"{device}:net:bad:0", "the state is kept, numbered again"
    assert await pushes.cycle(job) == [], "still offline: not said again"
    gosms.set_device(device, last_online=datetime.now(UTC))
    [back] = await pushes.cycle(job)
    assert "back online" in back
    gosms.set_device(device, last_online=datetime.now(UTC) - timedelta(minutes=12))
    [off_again] = await pushes.cycle(job)
    assert "offline" in off_again, "a new episode gets a key of its own"


async def test_old_history_goes_and_recent_and_pending_stay(harness: Harness) -> None:
    harness.tg.user(USER, language_code="en")
    await harness.send(USER, "/start")
    now = utcnow()
    old, recent = now - timedelta(days=DAYS + 1), now - timedelta(days=DAYS - 1)
    async with harness.deps.session_factory() as session:
        done = Campaign(user_id=USER, state="done", created_at=old, finished_at=old)
        running = Campaign(user_id=USER, state="running", created_at=old, started_at=old)
        fresh_done = Campaign(user_id=USER, state="done", created_at=old, finished_at=recent)
        session.add_all([done, running, fresh_done])
        await session.flush()
        session.add_all(
            [
                *(
                    CampaignRow(campaign_id=c.id, line=1, phone="+79990001122", text="hi")
                    for c in (done, running, fresh_done)
                ),
                OutboxItem(user_id=USER, kind="sms_card", dedupe_key="s:1", sent_at=old),
                OutboxItem(user_id=USER, kind="sms_card", dedupe_key="s:2", sent_at=recent),
                OutboxItem(user_id=USER, kind="sms_card", dedupe_key="s:3", created_at=old),
                OutboxItem(
                    user_id=USER, kind="wake", dedupe_key="w", dropped="over", created_at=old
                ),
                Confirmation(id="old", user_id=USER, action="rent", created_at=old),
                Confirmation(id="recent", user_id=USER, action="rent", created_at=recent),
                Confirmation(
                    id="running", user_id=USER, action="rent", created_at=old, running_since=old
                ),
                FsmRecord(key="1:1::1::default", state="x", updated_at=old),
                FsmRecord(key="1:2::2::default", state="x", updated_at=recent),
                SentSms(
                    user_id=USER,
                    sms_id="a",
                    chat_id=USER,
                    message_id=1,
                    phone="+7",
                    text="t",
                    updated_at=old,
                ),
                RentWatch(rent_id="ended", user_id=USER, started_at=old, updated_at=old),
                RentWatch(
                    rent_id="shared",
                    user_id=USER,
                    started_at=old,
                    updated_at=old,
                    group_chat_id=-100,
                ),
                AccessRefusal(user_id=99, refused_at=old),
                Instance(id="gone", role="all", beat_at=old),
            ]
        )
        await session.commit()
        ids = (done.id, running.id, fresh_done.id)

    await retention(harness).prune(now)
    async with harness.deps.session_factory() as session:
        campaigns = set((await session.scalars(select(Campaign.id))).all())
        assert campaigns == {ids[1], ids[2]}, "a running one and a recent report stay"
        rows = select(func.count()).select_from(CampaignRow)
        assert await session.scalar(rows) == 2
        keys = (await session.scalars(select(OutboxItem.dedupe_key))).all()
        assert sorted(keys) == ["s:2", "s:3"], "old sent and dropped go, pending stays"
        confirmations = set((await session.scalars(select(Confirmation.id))).all())
        assert confirmations == {"recent", "running"}
        dialogs = (await session.scalars(select(FsmRecord.key))).all()
        assert dialogs == ["1:2::2::default"]
        assert await session.scalar(select(func.count()).select_from(SentSms)) == 0
        watched = (await session.scalars(select(RentWatch.rent_id))).all()
        assert watched == ["shared"], "a rental shared with a group is still followed"
        assert await session.get(AccessRefusal, 99) is None
        assert await session.get(Instance, "gone") is None


async def test_the_daily_run_is_claimed_once_across_instances(harness: Harness) -> None:
    factory = harness.deps.session_factory
    now = utcnow()
    first = await asyncio.gather(claim(factory, "a", now), claim(factory, "b", now))
    assert sorted(first) == [False, True]
    assert await claim(factory, "a", now + timedelta(hours=23)) is False
    assert await claim(factory, "b", now + timedelta(hours=23)) is False
    later = now + timedelta(days=1, minutes=1)
    second = await asyncio.gather(claim(factory, "b", later), claim(factory, "a", later))
    assert sorted(second) == [False, True]
    async with factory() as session:
        row = await session.get(JobRun, JOB)
        assert row is not None
        assert row.ran_at == later


async def test_the_poller_task_prunes_once_started(harness: Harness) -> None:
    harness.tg.user(USER, language_code="en")
    await harness.send(USER, "/start")
    async with harness.deps.session_factory() as session:
        then = utcnow() - timedelta(days=DAYS + 5)
        session.add(OutboxItem(user_id=USER, kind="sms_card", dedupe_key="x", sent_at=then))
        await session.commit()
    stop = asyncio.Event()
    runs = [retention(harness, owner) for owner in ("a", "b")]
    tasks = [asyncio.create_task(run.run(stop)) for run in runs]
    for _ in range(200):
        if not await outbox(harness, "sms_card"):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*tasks)
    assert await outbox(harness, "sms_card") == []
    async with harness.deps.session_factory() as session:
        row = await session.get(JobRun, JOB)
        assert row is not None
        assert row.ran_by in ("a", "b")
