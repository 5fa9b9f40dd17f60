"""Runs each job for each user when that user is due, concurrently within a bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import utcnow
from bot.db.outbox_repo import PollStateRepo
from bot.metrics import Metrics
from bot.poller.jobs import Job, Target
from bot.poller.writes import Writes

log = logging.getLogger(__name__)
# A poll takes at most the API deadline (12 s), after its wait for a slot, and its finds are
# written within a tick or two: no other instance polls the user meanwhile. A killed instance's
# leases are made due by a living one once its heartbeat is stale (bot/instances.py).
LEASE = timedelta(seconds=30)


class Scheduler:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        jobs: list[Job],
        *,
        writes: Writes | None = None,
        concurrency: int = 128,
        tick: float = 0.2,
        metrics: Metrics | None = None,
        instance_id: str = "",
    ) -> None:
        self.metrics = metrics or Metrics()
        self.last_round = time.monotonic()  # when a round last ended (/healthz: not stalled)
        self.instance_id = instance_id
        self.session_factory = session_factory
        self.jobs = jobs
        self.writes = writes or Writes(session_factory)
        self.tick = tick
        self._running: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._failing: set[str] = set()  # jobs whose batch failed to load (logged once)
        # a lease of the last round came back full: more may be due than it took. Otherwise the
        # next round waits a tick, so a trickle of due polls is leased in batches, not one a round
        self._more_due = False

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop` is set; then waits for the polls under way (they end quickly)."""
        try:
            while not stop.is_set():
                try:
                    await self.round(utcnow())
                    self.last_round = time.monotonic()
                except Exception:
                    log.exception("scheduler round failed")
                if self._more_due and len(self._running) < self._concurrency:
                    await asyncio.sleep(0)  # more may be due and slots are free: look again now
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.tick)
            await self.idle()
        finally:
            for task in self._running.values():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def round(self, now: datetime) -> int:
        """Writes what the polls since the last round found out, then starts every due poll
        that is not already running, hot users first."""
        await self.writes.flush()
        started, self._more_due = 0, False
        for job in self.jobs:
            try:
                targets = await self._lease(job, now)
            except Exception as exc:  # the leases run out: these users are polled again then
                self._job_failed(job, exc)
                continue
            self._failing.discard(job.name)
            for target in targets:
                key = (job.name, target.state.user_id)
                self._running[key] = asyncio.create_task(self._run(job, target, key))
                started += 1
        return started

    def _job_failed(self, job: Job, exc: Exception) -> None:
        if job.name not in self._failing:
            self._failing.add(job.name)
            log.warning(
                "%s polls could not be started (%s: %.200s)", job.name, type(exc).__name__, exc
            )

    async def _lease(self, job: Job, now: datetime) -> list[Target]:
        """The due polls of `job`, leased to this instance (the poll sets the real next time
        when it ends); other instances leasing at the same moment get other users."""
        leased, limit = now + LEASE, self._concurrency * 4
        running = {user_id for name, user_id in self._running if name == job.name}
        async with self.session_factory() as session:
            async with self.writes.lock:
                fresh = await PollStateRepo(session).lease(
                    job.name, now, limit, until=leased, owner=self.instance_id, skip=running
                )
            self._more_due |= len(fresh) >= limit - len(running)
            if not fresh:
                return []
            return await job.load(session, fresh, [leased] * len(fresh))

    async def _run(self, job: Job, target: Target, key: tuple[str, int]) -> None:
        outcome = "error"
        try:
            async with self._slots:
                await job.run(target)
            outcome = "failed" if target.state.failures else "ok"  # failed: it backs off
        except Exception:
            log.exception("%s poll of user %s failed", job.name, target.state.user_id)
        finally:
            self._running.pop(key, None)
            self.metrics.poll_done(job.name, outcome)

    async def idle(self) -> None:
        """Waits until no poll is running and their writes are done (tests, a clean stop)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)
        await self.writes.settle()
