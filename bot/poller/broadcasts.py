"""Announcements (/admin broadcast): queued to every active user, followed to the end.

A confirmed broadcast is a `Broadcast` row in state SENDING. The ticker of every instance with
a poller looks at those rows every few seconds: it queues one outbox row per active user (kind
"broadcast", key the broadcast's id: the outbox's unique key makes it at most once per user,
however often the queueing runs), in waves that each commit and keep at most WINDOW rows
pending, and then sets `started_at`, the mark that everything is queued. A process killed in
the middle leaves `started_at` empty: the next tick, here or on another instance, goes on after
the highest user id queued (users are queued in the order of ids), and a batch queued twice adds
only the missing rows. The sender delivers them at the shared pace and marks users who blocked
the bot inactive (their rows are dropped "blocked"). The operator's progress card is an outbox
push too, edited in place at most every few seconds, and "Done" once no row of it is pending.

The pushes carry only the broadcast's id: the sender reads the text when it sends (`LOADERS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.engine import lock_for_writing
from bot.db.models import Broadcast, BroadcastState, User, utcnow
from bot.db.outbox import OutboxItem
from bot.db.outbox_repo import OutboxRepo

log = logging.getLogger(__name__)
KIND = "broadcast"  # outbox kinds: the announcement to each user, and the operator's card
CARD = "broadcast_card"
# rows of a broadcast pending at once: with a look every 2 s it takes at most ~20 of the
# sender's 25 a second, and the oldest pending rows (the sender's heads) are never all its own,
# so the codes and alerts of other users go on within seconds while it is sent
WINDOW = 40
LOOK_EVERY = 2.0  # seconds between two looks for broadcasts being sent
CARD_EVERY = 5.0  # seconds between two edits of a progress card
BLOCKED = ("blocked", "chat not found")  # the sender's reasons for a user who is gone
Loader = Callable[[AsyncSession, Mapping[str, Any]], Awaitable[dict[str, Any]]]


class Progress(NamedTuple):
    total: int
    sent: int
    blocked: int
    failed: int  # dropped for another reason (refused, gave up)

    @property
    def pending(self) -> int:
        return self.total - self.sent - self.blocked - self.failed


async def progress(session: AsyncSession, broadcast_id: int) -> Progress:
    """The broadcast's outbox rows: how many there are, sent, and dropped (blocked or not)."""
    gone = case((OutboxItem.dropped.in_(BLOCKED), 1), else_=0)
    row = (
        await session.execute(
            select(
                func.count(OutboxItem.id),
                func.count(OutboxItem.sent_at),
                func.coalesce(func.sum(gone), 0),
                func.count(OutboxItem.dropped),
            ).where(OutboxItem.kind == KIND, OutboxItem.dedupe_key == str(broadcast_id))
        )
    ).one()
    total, sent, blocked, dropped = (int(v or 0) for v in row)
    return Progress(total, sent, blocked, dropped - blocked)


async def active_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(User.id)).where(User.is_active)) or 0)


async def queued_up_to(session: AsyncSession, broadcast_id: int) -> int:
    """The highest user id the broadcast was queued to: users are queued in the order of ids."""
    query = select(func.max(OutboxItem.user_id)).where(
        OutboxItem.kind == KIND, OutboxItem.dedupe_key == str(broadcast_id)
    )
    return int(await session.scalar(query) or 0)


async def queue_batch(session: AsyncSession, broadcast_id: int, after: int, limit: int) -> int:
    """Queues the broadcast to the next `limit` active users with an id above `after` that do
    not have it yet; how many users it looked at (fewer than `limit`: there are no more). The
    caller commits."""
    await lock_for_writing(session)  # reads, then writes
    ids = list(
        (
            await session.scalars(
                select(User.id)
                .where(User.is_active, User.id > after)
                .order_by(User.id)
                .limit(limit)
            )
        ).all()
    )
    if not ids:
        return 0
    key = str(broadcast_id)
    have = set(
        (
            await session.scalars(
                select(OutboxItem.user_id).where(
                    OutboxItem.kind == KIND,
                    OutboxItem.dedupe_key == key,
                    OutboxItem.user_id.in_(ids),
                )
            )
        ).all()
    )
    payload = {"broadcast_id": broadcast_id}
    missing = [user_id for user_id in ids if user_id not in have]
    if missing:
        now = utcnow()
        rows = [
            {
                "user_id": user_id,
                "kind": KIND,
                "dedupe_key": key,
                "payload": json.dumps(payload),
                "created_at": now,
                "not_before": now,
                "attempts": 0,
            }
            for user_id in missing
        ]
        try:
            async with session.begin_nested():
                await session.execute(insert(OutboxItem), rows)
        except IntegrityError:  # another instance queued some of them a moment ago: one by one
            repo = OutboxRepo(session)
            for user_id in missing:
                await repo.enqueue(user_id, KIND, key, payload)
    return len(ids)


def card_payload(broadcast: Broadcast, counts: Progress, done: bool) -> dict[str, Any]:
    return {
        "broadcast_id": broadcast.id,
        "message_id": broadcast.message_id,
        "total": counts.total if broadcast.started_at is not None else broadcast.total,
        "sent": counts.sent,
        "blocked": counts.blocked,
        "failed": counts.failed,
        "done": done,
    }


def card_key(card: Mapping[str, Any]) -> str:
    """One look of the card: the same look is never queued twice."""
    parts = ("total", "sent", "blocked", "failed", "done")
    return f"{card['broadcast_id']}:" + ":".join(str(card[p]) for p in parts)


@dataclass
class BroadcastTicker:
    """Queues, follows and finishes the broadcasts being sent (see the module's docstring)."""

    session_factory: async_sessionmaker[AsyncSession]
    lock: AbstractAsyncContextManager[Any] | None = None  # the poller's writer lock (SQLite)
    on_queued: Callable[[], None] = lambda: None
    look_every: float = LOOK_EVERY
    card_every: float = CARD_EVERY
    window: int = WINDOW

    def __post_init__(self) -> None:
        self._carded: dict[int, float] = {}  # broadcast → when its card was queued (monotonic)
        self._failing = False

    def _locked(self) -> AbstractAsyncContextManager[Any]:
        return self.lock if self.lock is not None else contextlib.nullcontext()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
                self._failing = False
            except Exception as exc:  # the database is away: look again next time
                if not self._failing:
                    log.warning("broadcasts not looked at (%s: %.200s)", type(exc).__name__, exc)
                self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.look_every)

    async def tick(self) -> None:
        async with self.session_factory() as session:
            ids = list(
                (
                    await session.scalars(
                        select(Broadcast.id)
                        .where(Broadcast.state == BroadcastState.SENDING)
                        .order_by(Broadcast.id)
                    )
                ).all()
            )
        for broadcast_id in ids:
            await self.follow(broadcast_id)

    async def follow(self, broadcast_id: int) -> None:
        async with self.session_factory() as session:
            broadcast = await session.get(Broadcast, broadcast_id)
            started = broadcast is not None and broadcast.started_at is not None
        if broadcast is None or broadcast.state != BroadcastState.SENDING:
            return
        if not started:
            await self.queue_wave(broadcast_id)
        async with self._locked(), self.session_factory() as session:
            await lock_for_writing(session)
            broadcast = await session.get(Broadcast, broadcast_id)
            if broadcast is None or broadcast.state != BroadcastState.SENDING:
                return
            counts = await progress(session, broadcast_id)
            done = broadcast.started_at is not None and counts.pending == 0
            if done and not await self._finish(session, broadcast_id):
                return  # another instance finished it a moment ago
            now = time.monotonic()  # first seen here: the card was just shown (or refreshed)
            if done or now - self._carded.setdefault(broadcast_id, now) >= self.card_every:
                card = card_payload(broadcast, counts, done)
                await OutboxRepo(session).enqueue(broadcast.admin_id, CARD, card_key(card), card)
                self._carded[broadcast_id] = now
            await session.commit()
        if done:
            self._carded.pop(broadcast_id, None)
            log.info("broadcast %s done: %s", broadcast_id, counts)
        self.on_queued()

    async def queue_wave(self, broadcast_id: int) -> bool:
        """Queues the next users, as many as keep `window` rows of the broadcast pending; once
        every active user is queued, the mark of it (`started_at`) and the total. True then."""
        async with self._locked(), self.session_factory() as session:
            await lock_for_writing(session)
            counts = await progress(session, broadcast_id)
            room = self.window - counts.pending
            if room <= 0:
                return False
            after = await queued_up_to(session, broadcast_id)
            complete = await queue_batch(session, broadcast_id, after, room) < room
            if complete:
                total = (await progress(session, broadcast_id)).total
                await session.execute(
                    update(Broadcast)
                    .where(Broadcast.id == broadcast_id, Broadcast.started_at.is_(None))
                    .values(started_at=utcnow(), total=total)
                )
            await session.commit()
        self.on_queued()
        if complete:
            log.info("broadcast %s queued to %d user(s)", broadcast_id, total)
        return complete

    @staticmethod
    async def _finish(session: AsyncSession, broadcast_id: int) -> bool:
        result = await session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.state == BroadcastState.SENDING)
            .values(state=BroadcastState.DONE, finished_at=utcnow())
        )
        return getattr(result, "rowcount", 0) == 1


_texts: dict[int, str] = {}  # the text of a broadcast never changes once it is sent


async def broadcast_text(session: AsyncSession, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The push's payload with the broadcast's text, read when it is sent."""
    broadcast_id = int(payload["broadcast_id"])
    if broadcast_id not in _texts:
        text = await session.scalar(select(Broadcast.text).where(Broadcast.id == broadcast_id))
        await session.commit()
        if text is None:
            raise LookupError(f"broadcast {broadcast_id} is gone")
        if len(_texts) >= 8:
            _texts.clear()
        _texts[broadcast_id] = text
    return {**payload, "text": _texts[broadcast_id]}


LOADERS: dict[str, Loader] = {KIND: broadcast_text}
