"""Instances that die are replaced by the living (bot/instances.py), on SQLite and on the real
PostgreSQL: a dead instance's claims, leases and cut-off actions are taken over within
`dead_after + beat`; a live instance's never; a clean stop lets its own go."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.api.clients import Clients
from bot.api.http import HttpClient
from bot.config import Role
from bot.db.crypto import TokenCipher
from bot.db.engine import create_engine, create_session_factory
from bot.db.migrate import upgrade_to_head
from bot.db.models import Confirmation, Instance, Service, utcnow
from bot.db.outbox import OutboxItem, PollState
from bot.db.outbox_repo import OutboxRepo
from bot.db.repo import ConfirmationRepo, CredentialRepo
from bot.instances import Instances
from bot.keyboards.gotsms import RENT
from bot.metrics import Metrics
from bot.poller.recovery import KIND, Recovery
from bot.poller.scheduler import LEASE
from tests.conftest import GOTSMS_TOKEN, SECRET_KEY, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.test_leases import JOB, add_users, fresh_postgres

BEAT, DEAD_AFTER = 0.25, 3.0  # short, yet long for a busy machine between two steps
SLACK = 2.0  # s, for a busy machine
HOLD = timedelta(seconds=60)  # a claim that would otherwise hold up its push this long


@dataclass
class Place:
    """One database shared by the instances of a test, with what Recovery needs."""

    url: str
    cipher: TokenCipher
    clients: Clients
    engines: list[AsyncEngine] = field(default_factory=list)
    instances: list[Instances] = field(default_factory=list)
    _reader: async_sessionmaker[AsyncSession] | None = None

    def reader(self) -> async_sessionmaker[AsyncSession]:
        """The test's own sessions (one engine)."""
        if self._reader is None:
            self._reader = self.factory()
        return self._reader

    def factory(self) -> async_sessionmaker[AsyncSession]:
        """A session factory of its own engine, as another process would have."""
        engine = create_engine(self.url)
        self.engines.append(engine)
        return create_session_factory(engine)

    def instance(self, name: str, *, role: Role = Role.ALL, single: bool = False) -> Instances:
        factory = self.factory()
        recovery = Recovery(factory, self.cipher, self.clients, instance_id=name)
        instances = Instances(
            factory,
            name,
            role=role,
            single=single,
            beat=BEAT,
            dead_after=DEAD_AFTER,
            metrics=Metrics(),
            recovery=recovery,
        )
        self.instances.append(instances)
        return instances


@pytest.fixture(params=["sqlite", "postgres"])
async def place(
    request: pytest.FixtureRequest, tmp_path: Path, gotsms: FakeGotSMS
) -> AsyncIterator[Place]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"
        else:
            url = await stack.enter_async_context(fresh_postgres())
        async for prepared in _place(url, tmp_path, gotsms):
            yield prepared


async def _place(url: str, tmp_path: Path, gotsms: FakeGotSMS) -> AsyncIterator[Place]:
    clients = Clients(HttpClient(), gosms_url="http://127.0.0.1:9/", gotsms_url=gotsms.url)
    cipher = TokenCipher.from_settings(SECRET_KEY, tmp_path)
    place = Place(url, cipher, clients)
    setup = create_engine(url)
    await upgrade_to_head(setup)
    await add_users(setup, 4)
    await setup.dispose()
    try:
        yield place
    finally:
        for instances in place.instances:
            await instances.stop()
        await clients.close()
        for engine in place.engines:
            await engine.dispose()


@dataclass
class Held:
    """What an instance holds: a push it is sending, a poll it leased, an action it runs."""

    push: int
    poll_user: int
    action: str


async def hold(place: Place, owner: str | None, user_id: int, action: str = "logout") -> Held:
    async with place.reader()() as session:
        outbox = OutboxRepo(session)
        await outbox.enqueue(user_id, "codes", f"code-{user_id}", {"code": "1"})
        await session.commit()
        push = await session.scalar(select(OutboxItem.id).where(OutboxItem.user_id == user_id))
        assert push is not None
        assert await outbox.claim(push, utcnow(), HOLD, owner)
        await session.execute(
            update(PollState)
            .where(PollState.user_id == user_id)
            .values(next_at=utcnow() + LEASE, leased_by=owner)
        )
        await session.commit()
        repo = ConfirmationRepo(session)
        confirmation = await repo.create(user_id, action, {"plan_id": "p"})
        assert await repo.consume(confirmation, user_id, HOLD, owner=owner) is not None
    return Held(push, user_id, confirmation)


@dataclass(frozen=True)
class Seen:
    claimed: bool
    leased: bool
    running: bool
    told: bool


async def seen(place: Place, held: Held) -> Seen:
    async with place.reader()() as session:
        push = await session.get(OutboxItem, held.push)
        state = await session.get(PollState, (held.poll_user, JOB))
        action = await session.get(Confirmation, held.action)
        told = await session.scalar(
            select(OutboxItem.id).where(
                OutboxItem.kind == KIND, OutboxItem.dedupe_key == held.action
            )
        )
    assert push is not None
    assert state is not None
    assert action is not None
    return Seen(
        claimed=push.claimed_until is not None,
        leased=state.next_at > utcnow(),
        running=action.running_since is not None,
        told=told is not None,
    )


async def instance_ids(place: Place) -> set[str]:
    async with place.reader()() as session:
        return set((await session.scalars(select(Instance.id))).all())


async def within(seconds: float, check: Callable[[], Awaitable[bool]]) -> float:
    """How long until `check` holds (fails after `seconds`)."""
    began = time.monotonic()
    while not await check():
        assert time.monotonic() - began < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def test_a_dead_instances_work_is_taken_over_within_dead_after_and_a_beat(
    place: Place,
) -> None:
    dead = place.instance("dead")
    await dead.beat_once()
    held = await hold(place, "dead", 1)
    unowned = await hold(place, None, 2)  # an action marked before instances were recorded
    await dead.beat_once()  # its last beat: it is killed now
    killed_at = time.monotonic()
    living = place.instance("living", role=Role.WORKER)
    await living.start()
    await living.settled()
    assert await seen(place, held) == Seen(True, True, True, False), "still alive when it starts"
    assert (await seen(place, unowned)).told, "an action of no instance is a dead one's"

    async def taken_over() -> bool:
        return await seen(place, held) == Seen(False, False, False, True)

    await within(DEAD_AFTER + BEAT + SLACK, taken_over)
    assert time.monotonic() - killed_at <= DEAD_AFTER + BEAT + SLACK
    assert await instance_ids(place) == {"living"}
    assert living.metrics.registry.get_sample_value("sms_desk_instances_alive") == 1


async def test_a_starting_instance_never_frees_a_live_ones_claims(place: Place) -> None:
    alive = place.instance("alive")
    await alive.start()
    held = await hold(place, "alive", 1)
    for name, role in (("second", Role.ALL), ("worker", Role.WORKER), ("web", Role.WEB)):
        await place.instance(name, role=role).start()
    await asyncio.sleep(DEAD_AFTER + 3 * BEAT)  # they beat and look several times
    for instances in place.instances:
        await instances.settled()
    assert await seen(place, held) == Seen(True, True, True, False)
    assert await instance_ids(place) == {"alive", "second", "worker", "web"}


async def test_an_instance_that_missed_its_beats_beats_again(place: Place) -> None:
    slow = place.instance("slow")
    await slow.beat_once()
    living = place.instance("living")
    await living.beat_once()
    async with place.reader()() as session:
        await session.execute(
            update(Instance)
            .where(Instance.id == "slow")
            .values(beat_at=utcnow() - timedelta(seconds=DEAD_AFTER + 1))
        )
        await session.commit()
    await living.beat_once()
    assert await instance_ids(place) == {"living"}
    await slow.beat_once()
    assert await instance_ids(place) == {"living", "slow"}


async def test_a_clean_stop_lets_its_own_claims_and_leases_go(place: Place) -> None:
    leaving, staying = place.instance("leaving"), place.instance("staying")
    await leaving.start()
    await staying.start()
    mine, theirs = await hold(place, "leaving", 1), await hold(place, "staying", 2)
    assert await leaving.stop() == 1
    assert (await seen(place, mine)).claimed is False
    assert (await seen(place, mine)).leased is False
    assert await seen(place, theirs) == Seen(True, True, True, False)
    assert await instance_ids(place) == {"staying"}
    await within(2 * BEAT + 1.0, lambda: _told(place, mine))  # its cut-off action has no owner


async def _told(place: Place, held: Held) -> bool:
    return (await seen(place, held)).told


async def test_the_only_instance_takes_over_at_once_from_the_process_before(
    place: Place,
) -> None:
    before = place.instance("before", single=True)
    await before.beat_once()  # killed just now: its beat is fresh
    held = await hold(place, "before", 1)
    restarted = place.instance("restarted", single=True)
    await restarted.start()
    await restarted.settled()
    assert await seen(place, held) == Seen(False, False, False, True)
    assert await instance_ids(place) == {"restarted"}


async def test_a_cut_off_rent_is_settled_once_by_two_instances_taking_over_at_once(
    place: Place, gotsms: FakeGotSMS
) -> None:
    async with place.reader()() as session:
        await CredentialRepo(session, place.cipher).save(1, Service.GOTSMS, GOTSMS_TOKEN)
        await session.commit()
    plan = gotsms.plan_by("Telegram", "day", 1)
    dead = place.instance("dead")
    await dead.beat_once()
    held = await hold(place, "dead", 1, RENT)
    async with place.reader()() as session:
        action = await session.get(Confirmation, held.action)
        assert action is not None
        action.payload = f'{{"plan_id": "{plan["id"]}", "area_code": null, "price": "1.00"}}'
        await session.execute(
            update(Instance)
            .where(Instance.id == "dead")
            .values(beat_at=utcnow() - timedelta(seconds=DEAD_AFTER + 1))
        )
        await session.commit()
    rent = gotsms.create_rent(GOTSMS_TOKEN, plan["id"])  # it went through before the kill
    gotsms.set_latency(0.3)  # both look while the first one asks GotSMS
    first, second = place.instance("first"), place.instance("second")
    await asyncio.gather(first.beat_once(), second.beat_once())
    await asyncio.gather(first.beat_once(), second.beat_once())
    await asyncio.gather(first.settled(), second.settled())
    async with place.reader()() as session:
        pushes = (await session.scalars(select(OutboxItem).where(OutboxItem.kind == KIND))).all()
    assert len(pushes) == 1
    assert rent["phone"] in pushes[0].payload, "the rent went through: its number is told"
    checks = [r for r in gotsms.requests_for(GOTSMS_TOKEN, "/rents") if r.method == "GET"]
    assert len(checks) == 1, "one instance settles it"
    assert (await seen(place, held)).running is False


async def test_a_confirmed_action_runs_on_the_instance_of_its_update(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    """What a living instance takes over is found by this mark: the "yes" names the process
    handling the update, and the mark is gone once the action ends."""
    user = 4242
    harness.tg.user(user, language_code="en")
    await harness.send(user, "/help")
    async with harness.deps.session_factory() as session:
        await CredentialRepo(session, harness.deps.cipher).save(user, Service.GOTSMS, GOTSMS_TOKEN)
        await session.commit()
    await harness.send(user, "/rent telegram")
    await harness.press(user, "USA · 1 day · 1.00")
    await harness.press(user, "Any area code")
    gotsms.set_latency(0.5)
    pressed = asyncio.create_task(harness.press(user, "Rent for 1.00"))

    async def marks() -> list[tuple[str | None, bool]]:
        async with harness.deps.session_factory() as session:
            query = select(Confirmation.running_on, Confirmation.running_since.is_not(None))
            rows = (await session.execute(query.where(Confirmation.user_id == user))).all()
        return [(owner, running) for owner, running in rows]

    async def running() -> bool:
        return any(is_running for _, is_running in await marks())

    await within(5.0, running)
    assert (harness.deps.instance_id, True) in await marks()
    await pressed
    gotsms.set_latency(0)
    assert not await running()
    assert "Your number:" in harness.last(user).text


# above any pid_max Linux allows: a process that exited is gone for good (the PID of one that
# just exited may already be another's in a busy run)
NO_SUCH_PID = 4_194_305


async def test_a_restart_in_place_takes_over_at_once_from_the_killed_process(
    place: Place,
) -> None:
    """Several instances: one that started where the killed one ran (the same machine and PID
    namespace) sees its process gone and does not wait for its beat to age; one whose process
    still runs is left alone however close."""
    running = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        killed, neighbour = place.instance("killed"), place.instance("neighbour")
        await killed.beat_once()
        await neighbour.beat_once()
        async with place.reader()() as session:
            for name, pid in (("killed", NO_SUCH_PID), ("neighbour", running.pid)):
                await session.execute(update(Instance).where(Instance.id == name).values(pid=pid))
            await session.commit()
        gone, near = await hold(place, "killed", 1), await hold(place, "neighbour", 2)
        await neighbour.beat_once()
        restarted = place.instance("restarted")
        await restarted.start()
        # the neighbour's beat saw the killed process gone too: either may settle its action
        await asyncio.gather(restarted.settled(), neighbour.settled())
        assert await seen(place, gone) == Seen(False, False, False, True)
        assert await seen(place, near) == Seen(True, True, True, False)
        assert await instance_ids(place) == {"neighbour", "restarted"}
    finally:
        running.kill()
        await running.wait()
