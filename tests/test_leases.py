"""One user polled by one instance at a time: schedulers of several instances on one real
PostgreSQL database lease disjoint users (SELECT ... FOR UPDATE SKIP LOCKED), and share them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.db.engine import create_engine, create_session_factory
from bot.db.migrate import upgrade_to_head
from bot.db.models import NotificationSettings, Service, User, utcnow
from bot.db.outbox import PollState
from bot.metrics import Metrics
from bot.poller.jobs import Client, Job, Poll, Target
from bot.poller.scheduler import Scheduler
from bot.poller.writes import Pending, Writes
from tests.backends import new_database

JOB = "fake"


@contextlib.asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """A new PostgreSQL database, migrated, dropped afterwards (others may share the server)."""
    async with new_database("leases") as url:
        engine = create_engine(url)
        try:
            await upgrade_to_head(engine)
            yield url
        finally:
            await engine.dispose()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres() as url:
        yield url


async def add_users(engine: AsyncEngine, count: int, job: str = JOB) -> list[int]:
    """`count` active users, each due for `job` now."""
    ids = list(range(1, count + 1))
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(insert(User), [{"id": i, "chat_id": i, "is_active": True} for i in ids])
        await conn.execute(
            insert(PollState),
            [{"user_id": i, "job": job, "next_at": now, "failures": 0} for i in ids],
        )
    return ids


class CountingJob(Job):
    """A poll that takes a few milliseconds, like an answered API call, and counts itself: which
    instance polled whom when, and whether two polls of one user ever ran at the same time."""

    name = JOB
    service = Service.GOTSMS

    def __init__(self, writes: Writes, instance: str, log: PollLog, every: float) -> None:
        self.writes = writes
        self.instance = instance
        self.log = log
        self.every = every
        self.on_queued = lambda: None
        self.rng = random.Random(instance)

    def wanted(self, settings: NotificationSettings) -> bool:
        return True

    async def work(self, poll: Poll, client: Client) -> None:  # pragma: no cover - run() instead
        raise NotImplementedError

    async def load(
        self, session: AsyncSession, states: Sequence[PollState], leases: Sequence[datetime]
    ) -> list[Target]:
        settings = NotificationSettings()
        return [Target(s, "", settings, leased) for s, leased in zip(states, leases, strict=True)]

    async def run(self, target: Target) -> None:
        user_id = target.state.user_id
        self.log.begin(user_id, self.instance)
        try:
            await asyncio.sleep(self.rng.uniform(0.002, 0.03))
        finally:
            self.log.end(user_id)
        target.state.next_at = utcnow() + timedelta(seconds=self.every)
        self.writes.add(target.state, target.leased, Pending())


class PollLog:
    def __init__(self) -> None:
        self.starts: dict[int, list[float]] = defaultdict(list)
        self.by_instance: Counter[str] = Counter()
        self.running: set[int] = set()
        self.overlaps: list[int] = []

    def begin(self, user_id: int, instance: str) -> None:
        if user_id in self.running:
            self.overlaps.append(user_id)
        self.running.add(user_id)
        self.starts[user_id].append(asyncio.get_running_loop().time())
        self.by_instance[instance] += 1

    def end(self, user_id: int) -> None:
        self.running.discard(user_id)


async def test_schedulers_of_three_instances_never_poll_one_user_twice(postgres_url: str) -> None:
    """300 users due every 0.5 s, three schedulers (their own engines, as three processes
    would have) polling for 3 s: every poll of a user runs once per due time, never two at
    once, and each instance does a fair share."""
    every, users, instances = 0.5, 300, ["a", "b", "c"]
    engines = [create_engine(postgres_url) for _ in instances]
    log = PollLog()
    try:
        await add_users(engines[0], users)
        schedulers = []
        for engine, name in zip(engines, instances, strict=True):
            factory = create_session_factory(engine)
            writes = Writes(factory)
            job = CountingJob(writes, name, log, every)
            schedulers.append(
                Scheduler(
                    factory,
                    [job],
                    writes=writes,
                    concurrency=32,
                    tick=0.02,
                    metrics=Metrics(),
                    instance_id=name,
                )
            )
        stop = asyncio.Event()
        runs = [asyncio.create_task(s.run(stop)) for s in schedulers]
        await asyncio.sleep(3.0)
        stop.set()
        await asyncio.gather(*runs)
    finally:
        for engine in engines:
            await engine.dispose()
    assert log.overlaps == [], "a user was polled by two instances at once"
    assert set(log.starts) == set(range(1, users + 1)), "every user is polled"
    gaps = [b - a for starts in log.starts.values() for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= every, f"a user was polled twice for one due time ({min(gaps):.3f} s)"
    total = sum(log.by_instance.values())
    assert total >= users * 2, f"only {total} polls in 3 s"  # 6 each on an idle machine
    shares = {name: log.by_instance[name] / total for name in instances}
    assert min(shares.values()) > 0.15, f"the polls are not spread over the instances: {shares}"


async def test_a_lease_names_its_instance_and_lasts_the_longest_poll(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        await add_users(engine, 3)
        factory = create_session_factory(engine)
        started = utcnow()
        leased: list[PollState] = []

        class Holding(CountingJob):
            async def run(self, target: Target) -> None:
                leased.append(target.state)

        writes = Writes(factory)
        scheduler = Scheduler(
            factory, [Holding(writes, "a", PollLog(), 1.0)], writes=writes, instance_id="inst-a"
        )
        assert await scheduler.round(utcnow()) == 3
        await scheduler.idle()
        async with factory() as session:
            rows = (await session.execute(text("SELECT leased_by, next_at FROM poll_state"))).all()
    finally:
        await engine.dispose()
    assert {owner for owner, _ in rows} == {"inst-a"}
    assert all(next_at - started >= timedelta(seconds=12 + 10) for _, next_at in rows), (
        "a poll may take the API deadline (12 s) and a wait for its slot before it ends"
    )
    assert len(leased) == 3
