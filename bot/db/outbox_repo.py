"""Queries of the outbox and the polling state. Portable SQLAlchemy (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Collection, Container, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.attributes import set_committed_value

from bot.db.engine import lock_for_writing
from bot.db.models import User, locale_of, utcnow
from bot.db.outbox import OutboxItem, PollState


@dataclass(frozen=True)
class Dead:
    """The instances whose work is taken over: `ids`; with `all_but`, every owner but that one
    and none at all (the only instance: whatever another process held is a dead one's)."""

    ids: Collection[str] = ()
    all_but: str | None = None

    def owns(self, column: InstrumentedAttribute[str | None]) -> ColumnElement[bool]:
        if self.all_but is not None:
            return or_(column.is_(None), column != self.all_but)
        return column.in_(list(self.ids))

    def __bool__(self) -> bool:
        return self.all_but is not None or bool(self.ids)


@dataclass(frozen=True)
class Due:
    """An outbox row ready to go, with what the sender needs of its user."""

    item: OutboxItem
    chat_id: int
    locale: str


class OutboxRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def remember(self, user_id: int, kind: str, keys: Sequence[str], reason: str) -> None:
        """Records keys as handled without pushing them (what was there before watching began)."""
        await lock_for_writing(self.session)  # reads, then writes
        for key in set(keys) - await self.known_keys(user_id, kind, keys):
            row = OutboxItem(user_id=user_id, kind=kind, dedupe_key=key, dropped=reason)
            try:
                async with self.session.begin_nested():
                    self.session.add(row)
            except IntegrityError:
                continue

    async def enqueue(
        self,
        user_id: int,
        kind: str,
        key: str,
        payload: dict[str, Any],
        *,
        chat_id: int | None = None,
    ) -> bool:
        """Queues a push once: False when the same (user, kind, key) was queued before.
        `chat_id`: another chat than the user's own (a group), in the user's order of pushes."""
        await lock_for_writing(self.session)  # reads, then writes
        exists = await self.session.scalar(
            select(OutboxItem.id).where(
                OutboxItem.user_id == user_id, OutboxItem.kind == kind, OutboxItem.dedupe_key == key
            )
        )
        if exists is not None:
            return False
        row = OutboxItem(
            user_id=user_id, kind=kind, dedupe_key=key, payload=json.dumps(payload), chat_id=chat_id
        )
        try:
            async with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:  # queued by another instance a moment ago
            return False
        return True

    async def known_keys(self, user_id: int, kind: str, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        query = select(OutboxItem.dedupe_key).where(
            OutboxItem.user_id == user_id, OutboxItem.kind == kind, OutboxItem.dedupe_key.in_(keys)
        )
        return set((await self.session.scalars(query)).all())

    async def last_event(self, user_id: int, kind: str, prefix: str) -> str | None:
        """The key of the newest event of `kind` whose key starts with `prefix` (the last state
        an alert job saw of one thing: a device, a rent, the balance)."""
        query = (
            select(OutboxItem.dedupe_key)
            .where(
                OutboxItem.user_id == user_id,
                OutboxItem.kind == kind,
                OutboxItem.dedupe_key.startswith(prefix, autoescape=True),
            )
            .order_by(OutboxItem.id.desc())
            .limit(1)
        )
        return await self.session.scalar(query)

    async def count_events(self, user_id: int, kind: str, prefix: str) -> int:
        query = select(func.count(OutboxItem.id)).where(
            OutboxItem.user_id == user_id,
            OutboxItem.kind == kind,
            OutboxItem.dedupe_key.startswith(prefix, autoescape=True),
        )
        return int(await self.session.scalar(query) or 0)

    async def due(self, now: datetime, limit: int) -> list[Due]:
        """The oldest pending row of each user, if it may go now: a user's pushes keep order."""
        heads = (
            select(func.min(OutboxItem.id))
            .where(OutboxItem.sent_at.is_(None), OutboxItem.dropped.is_(None))
            .group_by(OutboxItem.user_id)
        )
        query = (
            select(
                OutboxItem,
                func.coalesce(OutboxItem.chat_id, User.chat_id),
                User.language,
                User.language_code,
            )
            .join(User, User.id == OutboxItem.user_id)
            .where(
                OutboxItem.id.in_(heads),
                OutboxItem.not_before <= now,
                or_(OutboxItem.claimed_until.is_(None), OutboxItem.claimed_until < now),
            )
            .order_by(OutboxItem.id)
            .limit(limit)
        )
        rows = (await self.session.execute(query)).all()
        return [Due(item, chat_id, locale_of(lang, code)) for item, chat_id, lang, code in rows]

    async def claim(
        self, item_id: int, now: datetime, hold: timedelta, owner: str | None = None
    ) -> bool:
        return item_id in await self.claim_many([item_id], now, hold, owner)

    async def claim_many(
        self, ids: Sequence[int], now: datetime, hold: timedelta, owner: str | None = None
    ) -> set[int]:
        """Claims each row not sent nor claimed by another sender, in one transaction, for the
        instance `owner`. A claim is a try: counted here, so a send that never settles (a
        crash, a failed write) counts."""
        claimed = set()
        for item_id in ids:
            result = await self.session.execute(
                update(OutboxItem)
                .where(
                    OutboxItem.id == item_id,
                    OutboxItem.sent_at.is_(None),
                    or_(OutboxItem.claimed_until.is_(None), OutboxItem.claimed_until < now),
                )
                .values(
                    claimed_until=now + hold, claimed_by=owner, attempts=OutboxItem.attempts + 1
                )
            )
            if getattr(result, "rowcount", 0) == 1:
                claimed.add(item_id)
        await self.session.commit()
        return claimed

    async def release_claims(self, dead: Dead) -> int:
        """The claims of `dead` instances are let go (what they had in flight goes again now
        instead of when the claims run out); how many. The caller commits."""
        if not dead:
            return 0
        result = await self.session.execute(
            update(OutboxItem)
            .where(
                dead.owns(OutboxItem.claimed_by),
                OutboxItem.claimed_until.is_not(None),
                OutboxItem.sent_at.is_(None),
            )
            .values(claimed_until=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def mark_sent(self, item_id: int, message_id: int | None) -> None:
        await self._set(item_id, sent_at=utcnow(), message_id=message_id, claimed_until=None)

    async def retry_later(self, item_id: int, when: datetime, *, count: bool = True) -> None:
        """Again at `when`; `count=False` takes back the try its claim counted (Telegram's 429:
        the call was not executed)."""
        values: dict[str, Any] = {"not_before": when, "claimed_until": None}
        if not count:
            values["attempts"] = OutboxItem.attempts - 1
        await self._set(item_id, **values)

    async def drop(self, item_id: int, reason: str) -> None:
        await self._set(item_id, dropped=reason[:64], claimed_until=None)

    async def drop_pending_of(self, user_id: int, reason: str) -> None:
        await self.session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.user_id == user_id,
                OutboxItem.sent_at.is_(None),
                OutboxItem.dropped.is_(None),
            )
            .values(dropped=reason[:64], claimed_until=None)
        )
        await self.session.commit()

    async def sent_message_id(self, user_id: int, kind: str, key: str) -> int | None:
        return await self.session.scalar(
            select(OutboxItem.message_id).where(
                OutboxItem.user_id == user_id,
                OutboxItem.kind == kind,
                OutboxItem.dedupe_key == key,
                OutboxItem.sent_at.is_not(None),
            )
        )

    async def _set(self, item_id: int, **values: Any) -> None:
        await self.session.execute(
            update(OutboxItem).where(OutboxItem.id == item_id).values(**values)
        )
        await self.session.commit()


class PollStateRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int, job: str) -> PollState | None:
        return await self.session.get(PollState, (user_id, job))

    async def start(self, user_id: int, job: str) -> PollState:
        """Begin (or begin again) watching: due at once, from a clean slate."""
        state = await self.get(user_id, job)
        if state is None:
            state = PollState(user_id=user_id, job=job, failures=0)
            self.session.add(state)
        state.next_at = utcnow()
        state.cursor = None
        state.failures = 0
        return state

    async def stop(self, user_id: int, job: str) -> None:
        state = await self.get(user_id, job)
        if state is not None:
            await self.session.delete(state)

    async def heat(self, user_id: int, job: str, until: datetime) -> None:
        """Poll this user often until `until` (a rent was just created or woken up)."""
        await self.session.execute(
            update(PollState)
            .where(
                PollState.user_id == user_id,
                PollState.job == job,
                or_(PollState.hot_until.is_(None), PollState.hot_until < until),
            )
            .values(hot_until=until, next_at=utcnow())
        )

    async def poke(self, user_id: int, job: str, at: datetime) -> None:
        """Poll this user's job by `at` at the latest (something to watch was just made)."""
        await self.session.execute(
            update(PollState)
            .where(PollState.user_id == user_id, PollState.job == job, PollState.next_at > at)
            .values(next_at=at)
        )

    async def due(
        self, job: str, now: datetime, limit: int, *, lock: bool = False
    ) -> Sequence[PollState]:
        """Due states, hot users first. Two queries that both walk the `next_at` index: one
        ordering expression over both would sort every row of the table at each tick.

        `lock`: the rows are locked until the transaction ends, skipping those another
        transaction locked (PostgreSQL; SQLite has one writer at a time and renders nothing).
        """
        base = (
            select(PollState)
            .join(User, User.id == PollState.user_id)
            .where(PollState.job == job, PollState.next_at <= now, User.is_active.is_(True))
            .order_by(PollState.next_at)
            .limit(limit)
        )
        if lock:
            base = base.with_for_update(skip_locked=True, of=PollState)
        hot = (await self.session.scalars(base.where(PollState.hot_until > now))).all()
        rest = (await self.session.scalars(base)).all()
        return list(dict.fromkeys([*hot, *rest]))[:limit]

    async def lease(
        self,
        job: str,
        now: datetime,
        limit: int,
        *,
        until: datetime,
        owner: str,
        skip: Container[int] = (),
    ) -> list[PollState]:
        """Leases the due states of `job` to the instance `owner` until `until`, in one
        transaction: of several instances leasing at once, each gets other users. Users in
        `skip` (still being polled here) are left as they are."""
        due = await self.due(job, now, limit, lock=True)
        fresh = [state for state in due if state.user_id not in skip]
        if fresh:  # one statement for the batch, not one UPDATE per row from the unit of work
            await self.session.execute(
                update(PollState)
                .where(PollState.job == job, PollState.user_id.in_([s.user_id for s in fresh]))
                .values(next_at=until, leased_by=owner)
                .execution_options(synchronize_session=False)
            )
            for state in fresh:
                set_committed_value(state, "next_at", until)
                set_committed_value(state, "leased_by", owner)
        await self.session.commit()
        return fresh

    async def release_leases(self, dead: Dead, now: datetime, lease: timedelta) -> int:
        """The polls `dead` instances hold leased are due at once; how many. A lease ends
        within `lease` from now; a later next_at is a poll that ended. The caller commits."""
        if not dead:
            return 0
        result = await self.session.execute(
            update(PollState)
            .where(
                dead.owns(PollState.leased_by),
                PollState.next_at > now,
                PollState.next_at <= now + lease,
            )
            .values(next_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
