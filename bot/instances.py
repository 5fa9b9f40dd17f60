"""The instances sharing one database: which are alive, and who takes over from the dead.

Each instance has a row in `instances` and beats it every `beat` seconds. What an instance holds
is marked with its id: the polls it leased (`poll_state.leased_by`), the pushes it is sending
(`outbox.claimed_by`) and the confirmed actions it runs (`confirmations.running_on`). An instance
whose last beat is older than `dead_after` is dead: at each beat, every instance that runs the
worker part lets the dead one's claims go, makes its leased polls due and deletes its row, and
one of them settles each of its cut-off actions (bot/poller/recovery.py). So its work goes on
elsewhere within `dead_after + beat` seconds, and nothing of a live instance is ever taken.

With one instance only (`single`: SQLite) every other row is a dead process's at once: a restart
after a crash sends again, at once, what the killed process had in flight.

A clean stop lets its own claims and leases go and deletes its row; an action it was still
running when it stopped has no living owner any more, so a living instance settles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Role
from bot.db.models import Instance, utcnow
from bot.db.outbox_repo import Dead, OutboxRepo, PollStateRepo
from bot.db.repo import ConfirmationRepo
from bot.metrics import Metrics
from bot.poller.recovery import Recovery
from bot.poller.scheduler import LEASE

log = logging.getLogger(__name__)
WORKERS = frozenset({Role.ALL, Role.WORKER})  # the roles that run the poller and the sender


@dataclass(frozen=True)
class Look:
    """What one beat saw: every instance's beat age, and what is to be taken over."""

    ages: dict[str, float]
    stale: list[str]  # instances whose beat is too old (or any other, for the only instance)
    cut_off: set[str | None]  # owners of running actions that are not alive (None: no owner)


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
        self._beats = 0
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
            freed = await self._free(session, Dead(ids=[self.instance_id]), utcnow())
            await session.execute(delete(Instance).where(Instance.id == self.instance_id))
            await session.commit()
        return freed.claims

    async def beat_once(self) -> Freed:
        """One beat: this instance is alive; the work of dead ones is taken over (worker
        roles). Their cut-off actions are settled in the background (`settled()`)."""
        now = utcnow()
        await self._write_beat(now)
        first, self._beats = self._beats == 0, self._beats + 1
        look = await self._look(now)
        fresh = sum(1 for age in look.ages.values() if age <= self._dead_s)
        self.metrics.set_heartbeats(look.ages, fresh)
        if not self.takes_over:
            return Freed()
        freed = await self._take_over(look, now, everyone=first and self.single)
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
                    )
                )
            await session.commit()

    async def _look(self, now: datetime) -> Look:
        async with self.session_factory() as session:
            # the owners first: an instance registers before it runs anything, so an owner
            # without a row here has stopped (its row deleted), not just started
            owners = await ConfirmationRepo(session).running_owners() if self.takes_over else set()
            rows = (await session.execute(select(Instance.id, Instance.beat_at))).all()
        ages = {id_: (now - beat_at).total_seconds() for id_, beat_at in rows}
        if self.single:
            stale = [id_ for id_ in ages if id_ != self.instance_id]
        else:
            stale = [id_ for id_, age in ages.items() if age > self._dead_s]
        alive = set(ages) - set(stale)
        return Look(ages, stale, {owner for owner in owners if owner not in alive})

    async def _take_over(self, look: Look, now: datetime, *, everyone: bool) -> Freed:
        """Lets the claims and leases of the stale instances go and deletes their rows, in one
        transaction; `everyone`: of every instance but this one (the only one, starting)."""
        if not look.stale and not everyone:
            return Freed()
        dead = Dead(all_but=self.instance_id) if everyone else Dead(ids=look.stale)
        async with self.session_factory() as session:
            freed = await self._free(session, dead, now)
            rows = delete(Instance).where(Instance.id.in_(look.stale))
            if not self.single:  # not one that beat again meanwhile
                rows = rows.where(Instance.beat_at < now - self.dead_after)
            gone = await session.execute(rows)
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
        return Freed(0, claims, leases)

    async def _settle(self, cut_off: set[str | None]) -> None:
        assert self.recovery is not None
        try:
            await self.recovery.take_over(cut_off)
        except Exception as exc:  # the database is away: the next beat tries again
            log.warning("cut-off actions not settled (%s: %.200s)", type(exc).__name__, exc)
        finally:
            self._settling = None
