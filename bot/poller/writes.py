"""The poller's writes: one writer at a time, and the routine ones batched.

SQLite lets one connection write at a time; the others wait on its busy timeout, sleeping in
growing steps. Hundreds of polls a second, each committing on its own, spent most of their time
there. So a poll only reads while it runs and hands over what it wants written: what it found goes
in one short transaction behind an in-process lock (`apply`), and its next poll time joins one
UPDATE for every poll that ended in the same tick (`flush`).

Losing a batched state change in a crash costs nothing but an early poll: the lease the scheduler
took runs out and the user is polled again; what a poll finds is keyed, so finding it twice
queues it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.outbox import PollState
from bot.db.outbox_repo import OutboxRepo

Step = Callable[[AsyncSession], Awaitable[object]]


@dataclass
class Pending:
    """What one poll wants written, in order, in one transaction."""

    steps: list[Step] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def later(self, step: Step) -> None:
        self.steps.append(step)

    def enqueue(self, user_id: int, kind: str, key: str, payload: dict[str, Any]) -> None:
        self.later(lambda session: OutboxRepo(session).enqueue(user_id, kind, key, payload))

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


class Writes:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory
        self.lock = asyncio.Lock()
        self._changes: dict[tuple[int, str], StateChange] = {}
        self._gone: set[tuple[int, str]] = set()

    async def apply(self, pending: Pending) -> None:
        if not pending:
            return
        async with self.lock, self.session_factory() as session:
            for step in pending.steps:
                await step(session)
            await session.commit()

    def finish(self, state: PollState, leased: datetime) -> None:
        key = (state.user_id, state.job)
        self._changes[key] = StateChange(state.next_at, state.failures, state.cursor, leased)

    def forget(self, user_id: int, job: str) -> None:
        """The user's token is gone: stop polling them for this job."""
        self._gone.add((user_id, job))

    @property
    def waiting(self) -> int:
        return len(self._changes) + len(self._gone)

    async def flush(self) -> int:
        """Writes every state change handed over since the last flush, in one transaction."""
        if not self.waiting:
            return 0
        changes, self._changes = self._changes, {}
        gone, self._gone = self._gone, set()
        rows = [
            {
                "b_user": user_id,
                "b_job": job,
                "b_leased": change.leased,
                "b_next": change.next_at,
                "b_failures": change.failures,
                "b_cursor": change.cursor,
            }
            for (user_id, job), change in changes.items()
        ]
        async with self.lock, self.session_factory() as session:
            connection = await session.connection()
            if rows:
                await connection.execute(_FINISH, rows)
            for user_id, job in gone:
                await connection.execute(
                    delete(PollState).where(PollState.user_id == user_id, PollState.job == job)
                )
            await session.commit()
        return len(rows) + len(gone)
