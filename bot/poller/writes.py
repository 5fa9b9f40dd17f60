"""The poller's writes: one transaction per tick for every poll that ended in it.

SQLite lets one connection write at a time; the others wait on its busy timeout, sleeping in
growing steps. Hundreds of polls a second, each committing on its own, spent most of their time
there. So a poll only reads while it runs and hands over what it wants written (`add`): the
scheduler writes all of them, outbox rows and next poll times, in one transaction per tick
(`flush`), behind an in-process lock that the sender's writes take too.

A poll's rows and its state change are written together or not at all; a flush that fails keeps
them for the next one; if the process dies before the flush, the lease the scheduler took runs
out and the user is polled again: what a poll finds is keyed, so finding it twice queues it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.engine import lock_for_writing
from bot.db.outbox import PollState
from bot.db.outbox_repo import OutboxRepo

log = logging.getLogger(__name__)
SOON = 0.02  # seconds a find waits for others to share its transaction
Step = Callable[[AsyncSession], Awaitable[object]]


@dataclass
class Pending:
    """What one poll wants written, in order, in one transaction."""

    steps: list[Step] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def later(self, step: Step) -> None:
        self.steps.append(step)

    def enqueue(
        self,
        user_id: int,
        kind: str,
        key: str,
        payload: dict[str, Any],
        *,
        chat_id: int | None = None,
    ) -> None:
        self.later(
            lambda session: OutboxRepo(session).enqueue(
                user_id, kind, key, payload, chat_id=chat_id
            )
        )

    def remember(self, user_id: int, kind: str, keys: list[str], reason: str) -> None:
        if keys:
            self.later(lambda session: OutboxRepo(session).remember(user_id, kind, keys, reason))


@dataclass(frozen=True)
class StateChange:
    next_at: datetime
    failures: int
    cursor: str | None
    leased: datetime  # the lease the scheduler set: a row changed since keeps its own next_at


# The UPDATE applies only while the row still holds the lease: /rent (heat), a new rent (poke)
# or a new token (start) move next_at earlier, and what they set wins over a poll that began
# before them.
_FINISH = (
    update(PollState.__table__)  # type: ignore[arg-type]
    .where(
        PollState.__table__.c.user_id == bindparam("b_user"),
        PollState.__table__.c.job == bindparam("b_job"),
        PollState.__table__.c.next_at >= bindparam("b_leased"),
    )
    .values(
        next_at=bindparam("b_next"),
        failures=bindparam("b_failures"),
        cursor=bindparam("b_cursor"),
    )
)


@dataclass
class Finished:
    """A poll's writes and state change, handed over together."""

    user_id: int
    job: str
    pending: Pending
    change: StateChange
    notify: Callable[[], None]


class Writes:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory
        self.lock = asyncio.Lock()
        self._finished: dict[tuple[int, str], Finished] = {}
        self._gone: set[tuple[int, str]] = set()
        self._soon: asyncio.Task[None] | None = None
        self._failing = False  # the last flush failed (logged once per episode)

    def add(
        self,
        state: PollState,
        leased: datetime,
        pending: Pending,
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        change = StateChange(state.next_at, state.failures, state.cursor, leased)
        key = (state.user_id, state.job)
        previous = self._finished.get(key)
        if previous is not None:  # polled twice before a flush (a test, a nudge): keep both
            pending = Pending([*previous.pending.steps, *pending.steps])
        self._finished[key] = Finished(state.user_id, state.job, pending, change, notify)
        if pending and self._soon is None:
            self._soon = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Something to push was found: write it now, not at the scheduler's next round (which
        may be busy leasing the next batch), gathering what other polls find meanwhile."""
        try:
            await asyncio.sleep(SOON)
        finally:
            self._soon = None  # what is found from now on schedules its own
        await self.flush()

    async def settle(self) -> None:
        """Writes everything handed over (a clean stop, tests)."""
        if self._soon is not None:
            await asyncio.gather(self._soon, return_exceptions=True)
        await self.flush()

    def forget(self, user_id: int, job: str) -> None:
        """The user's token is gone: stop polling them for this job."""
        self._gone.add((user_id, job))

    @property
    def waiting(self) -> int:
        return len(self._finished) + len(self._gone)

    async def flush(self) -> int:
        """Writes everything handed over since the last flush, in one transaction."""
        if not self.waiting:
            return 0
        finished, self._finished = list(self._finished.values()), {}
        gone, self._gone = self._gone, set()
        try:
            written, rows = await self._write(finished, gone)
        except Exception as exc:  # a locked or lost database: nothing was written
            self._keep(finished, gone)
            if not self._failing:
                self._failing = True
                log.warning(
                    "writing the polls' finds failed (%s: %.200s); kept for the next flush",
                    type(exc).__name__,
                    exc,
                )
            return 0
        if self._failing:
            self._failing = False
            log.info("the polls' finds are written again")
        for notify in {f.notify for f in written if f.pending}:
            notify()
        return len(rows) + len(gone)

    async def _write(
        self, finished: list[Finished], gone: set[tuple[int, str]]
    ) -> tuple[list[Finished], list[dict[str, object]]]:
        async with self.lock, self.session_factory() as session:
            await lock_for_writing(session)  # the steps read, then write
            written = [f for f in finished if await _steps(session, f)]
            connection = await session.connection()
            rows = [_row(f) for f in written]
            if rows:
                await connection.execute(_FINISH, rows)
            for user_id, job in gone:
                await connection.execute(
                    delete(PollState).where(PollState.user_id == user_id, PollState.job == job)
                )
            await session.commit()
        return written, rows

    def _keep(self, finished: list[Finished], gone: set[tuple[int, str]]) -> None:
        """A failed flush hands its writes back, before what polls handed over meanwhile (a
        newer state change of the same poll wins; its finds add to the kept ones)."""
        for old in finished:
            key = (old.user_id, old.job)
            newer = self._finished.get(key)
            if newer is not None:
                steps = Pending([*old.pending.steps, *newer.pending.steps])
                old = Finished(old.user_id, old.job, steps, newer.change, newer.notify)
            self._finished[key] = old
        self._gone |= gone


async def _steps(session: AsyncSession, finished: Finished) -> bool:
    """A poll's writes, all or none; False drops its state change too (it is polled again)."""
    if not finished.pending:
        return True
    try:
        async with session.begin_nested():
            for step in finished.pending.steps:
                await step(session)
    except Exception:
        log.exception("writes of the %s poll of user %s failed", finished.job, finished.user_id)
        return False
    return True


def _row(finished: Finished) -> dict[str, object]:
    change = finished.change
    return {
        "b_user": finished.user_id,
        "b_job": finished.job,
        "b_leased": change.leased,
        "b_next": change.next_at,
        "b_failures": change.failures,
        "b_cursor": change.cursor,
    }
