"""The instances sharing one database: which are alive, and who takes over from the dead.

Each instance has a row in `instances` and beats it every `beat` seconds. What an instance holds
is marked with its id: the polls it leased (`poll_state.leased_by`), the campaigns it sends
(`campaigns.leased_by`), the pushes it is sending (`outbox.claimed_by`) and the confirmed actions
it runs (`confirmations.running_on`). An instance whose last beat is older than `dead_after` is
dead: at each beat, every instance that runs the worker part lets the dead one's claims and
campaigns go, makes its leased polls due and deletes its row, and one of them settles each of
its cut-off actions (bot/poller/recovery.py). So its work goes on elsewhere within
`dead_after + beat` seconds, and nothing of a live instance is ever taken.

With one instance only (`single`: SQLite) every other row is a dead process's at once: a restart
after a crash sends again, at once, what the killed process had in flight. With several, an
instance of the same machine and PID namespace whose process is gone is dead at once too (a
restart in place), without waiting for its beat to age.

A clean stop lets its own claims and leases go and deletes its row; an action it was still
running when it stopped has no living owner any more, so a living instance settles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Role
from bot.db.campaigns import CampaignRepo
from bot.db.engine import lock_for_writing
from bot.db.models import Instance, utcnow
from bot.db.outbox_repo import Dead, OutboxRepo, PollStateRepo
from bot.db.repo import ConfirmationRepo
from bot.metrics import Metrics
from bot.poller.recovery import Recovery
from bot.poller.scheduler import LEASE

log = logging.getLogger(__name__)
WORKERS = frozenset({Role.ALL, Role.WORKER})  # the roles that run the poller and the sender


def pid_space() -> str | None:
    """This machine's boot and PID namespace: processes with the same one share their pids
    (None where /proc does not say)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}:{namespace}"[:64]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@dataclass(frozen=True)
class Look:
    """What one beat saw: every instance's beat age, and what is to be taken over."""

    ages: dict[str, float]
    stale: list[str]  # instances whose beat is too old
    exited: list[str]  # instances known dead however fresh their beat (their process is gone)
    cut_off: set[str | None]  # owners of running actions that are not alive (None: no owner)

    @property
    def dead(self) -> list[str]:
        return [*self.stale, *self.exited]


@dataclass(frozen=True)
class Freed:
    """What one takeover let go of the dead instances."""

    instances: int = 0
    claims: int = 0
    leases: int = 0


class Instances:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        instance_id: str,
        *,
        role: Role,
        single: bool,
        beat: float = 5.0,
        dead_after: float = 15.0,
        metrics: Metrics | None = None,
        recovery: Recovery | None = None,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.session_factory = session_factory
        self.instance_id = instance_id
        self.role = role
        self.single = single
        self.beat = beat
        self.dead_after = timedelta(seconds=dead_after)
        self.metrics = metrics or Metrics()
        self.recovery = recovery
        self.on_queued = on_queued  # pushes were let go: the sender may look at once
        self.started_at = utcnow()
        self.pid_space = pid_space()
        self._beats = 0
        self._swept = False  # the only instance let go of everything the one before held
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._settling: asyncio.Task[None] | None = None

    @property
    def takes_over(self) -> bool:
        return self.role in WORKERS

    async def start(self) -> None:
        """Registers this instance and takes over from the dead ones at once, then beats."""
        await self.beat_once()
        self._task = asyncio.create_task(self._beating(), name="heartbeat")

    async def stop(self) -> int:
        """A clean stop: this instance's claims and leases are let go and its row deleted;
        how many pushes it had in flight."""
        for task in (self._task, self._settling):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._settling = None
        async with self.session_factory() as session:
            await lock_for_writing(session)  # SQLite: wait for the write lock, not fail on it
            freed = await self._free(session, Dead(ids=[self.instance_id]), utcnow())
            await session.execute(delete(Instance).where(Instance.id == self.instance_id))
            await session.commit()
        return freed.claims

    async def beat_once(self) -> Freed:
        """One beat: this instance is alive; the work of dead ones is taken over (worker
        roles). Their cut-off actions are settled in the background (`settled()`)."""
        now = utcnow()
        await self._write_beat(now)
        self._beats += 1
        look = await self._look(now)
        fresh = sum(1 for age in look.ages.values() if age <= self._dead_s)
        self.metrics.set_heartbeats(look.ages, fresh)
        if not self.takes_over:
            return Freed()
        freed = await self._take_over(look, now, everyone=self.single and not self._swept)
        self._swept = True
        if freed.claims:
            self.on_queued()
        if look.cut_off and self.recovery is not None and self._settling is None:
            self._settling = asyncio.create_task(self._settle(look.cut_off), name="takeover")
        return freed

    async def settled(self) -> None:
        """Waits for the settling of cut-off actions under way (tests)."""
        if self._settling is not None:
            await asyncio.gather(self._settling, return_exceptions=True)

    @property
    def _dead_s(self) -> float:
        return self.dead_after.total_seconds()

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self.beat)
            try:
                await self.beat_once()
            except Exception as exc:  # the database is away: beat again next time
                if not self._failing:
                    log.warning("heartbeat failed (%s: %.200s)", type(exc).__name__, exc)
                self._failing = True
            else:
                if self._failing:
                    log.info("heartbeat written again")
                self._failing = False

    async def _write_beat(self, now: datetime) -> None:
        async with self.session_factory() as session:
            result = await session.execute(
                update(Instance).where(Instance.id == self.instance_id).values(beat_at=now)
            )
            if getattr(result, "rowcount", 0) != 1:
                if self._beats:
                    log.warning(
                        "this instance missed its beats for over %.0f s and was taken for dead "
                        "(its work went to others); it beats again",
                        self._dead_s,
                    )
                session.add(
                    Instance(
                        id=self.instance_id,
                        role=self.role.value,
                        started_at=self.started_at,
                        beat_at=now,
                        pid_space=self.pid_space,
                        pid=os.getpid(),
                    )
                )
            await session.commit()

    async def _look(self, now: datetime) -> Look:
        async with self.session_factory() as session:
            # the owners first: an instance registers before it runs anything, so an owner
            # without a row here has stopped (its row deleted), not just started
            owners = await ConfirmationRepo(session).running_owners() if self.takes_over else set()
            query = select(Instance.id, Instance.beat_at, Instance.pid_space, Instance.pid)
            rows = (await session.execute(query)).all()
        ages = {row.id: (now - row.beat_at).total_seconds() for row in rows}
        others = [row for row in rows if row.id != self.instance_id]
        exited = [row.id for row in others if self.single or self._exited(row.pid_space, row.pid)]
        stale = [row.id for row in others if ages[row.id] > self._dead_s and row.id not in exited]
        alive = set(ages) - set(stale) - set(exited)
        return Look(ages, stale, exited, {owner for owner in owners if owner not in alive})

    def _exited(self, space: str | None, pid: int | None) -> bool:
        """An instance of this machine's PID namespace whose process is gone."""
        if space is None or pid is None or space != self.pid_space:
            return False
        return not process_exists(pid)

    async def _take_over(self, look: Look, now: datetime, *, everyone: bool) -> Freed:
        """Lets the claims and leases of the stale instances go and deletes their rows, in one
        transaction; `everyone`: of every instance but this one (the only one, starting)."""
        if not look.dead and not everyone:
            return Freed()
        dead = Dead(all_but=self.instance_id) if everyone else Dead(ids=look.dead)
        async with self.session_factory() as session:
            await lock_for_writing(session)
            freed = await self._free(session, dead, now)
            stale = and_(  # not one that beat again meanwhile
                Instance.id.in_(look.stale), Instance.beat_at < now - self.dead_after
            )
            gone = await session.execute(
                delete(Instance).where(or_(Instance.id.in_(look.exited), stale))
            )
            await session.commit()
        freed = Freed(int(getattr(gone, "rowcount", 0) or 0), freed.claims, freed.leases)
        if freed.instances or freed.claims or freed.leases:
            log.info(
                "took over from %d stopped instance(s): %d push(es) in flight sent again, "
                "%d leased poll(s) due now",
                freed.instances,
                freed.claims,
                freed.leases,
            )
        return freed

    @staticmethod
    async def _free(session: AsyncSession, dead: Dead, now: datetime) -> Freed:
        claims = await OutboxRepo(session).release_claims(dead)
        leases = await PollStateRepo(session).release_leases(dead, now, LEASE)
        leases += await CampaignRepo(session).release_leases(dead)
        return Freed(0, claims, leases)

    async def _settle(self, cut_off: set[str | None]) -> None:
        assert self.recovery is not None
        try:
            await self.recovery.take_over(cut_off)
        except Exception as exc:  # the database is away: the next beat tries again
            log.warning("cut-off actions not settled (%s: %.200s)", type(exc).__name__, exc)
        finally:
            self._settling = None
