"""The daily retention: history older than RETENTION_DAYS goes, what "never twice" needs stays.

Once a day per deployment (a conditional UPDATE of `job_runs` claims the day: of any number of
instances exactly one prunes), in short batches so that no write lock is held for long:

* outbox rows sent or dropped before the cutoff, with three exceptions the jobs dedupe by:
  - codes: the outbox key of a GotSMS message is how the codes job knows it was pushed. The job
    reads at most MAX_PAGES pages of PAGE_SIZE messages, newest first, so a message older than
    the user's newest MAX_PAGES × PAGE_SIZE can never be read again. Per user, the newest that
    many code keys are kept however old (a code of 40 days ago still on the first page is not
    pushed again); older ones go once past the cutoff too.
  - episodes (a device offline / back, low battery, low balance): the newest row of each thing
    says its state and the count of rows numbers the next episode. Old rows go but the newest
    of each thing, and what is left is numbered again from 0, in order, so the next key is new.
  - the "connect your token again" push: the newest per service (it is keyed by the connection).
  - an announcement's rows while it is still being sent.
  What is kept is compacted: its payload (the code's text, the card) is emptied.
* confirmations older than the cutoff (a question lives 10 minutes), unless an action runs;
* dialogs untouched since the cutoff (a dialog ends by deleting its row: an older one was left);
* sent SMS whose card has not changed since; campaigns finished (done or cancelled) before the
  cutoff with their rows, and drafts never started (a report stays available that long);
* followed rentals that ended long ago (nothing pending: no reminder, wake-up, refund under way
  nor shared group); refusals of strangers; instances that stopped beating.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    delete,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from bot.db.engine import lock_for_writing
from bot.db.fsm import FsmRecord
from bot.db.models import (
    AccessRefusal,
    Broadcast,
    BroadcastState,
    Campaign,
    CampaignRow,
    CampaignState,
    Confirmation,
    Instance,
    JobRun,
    RefundState,
    RentWatch,
    SentSms,
    WakeState,
    utcnow,
)
from bot.db.outbox import OutboxItem
from bot.poller.codes import KIND as CODE
from bot.poller.codes import MAX_PAGES, PAGE_SIZE
from bot.poller.jobs import TOKEN_BROKEN

log = logging.getLogger(__name__)

JOB = "retention"
EVERY = timedelta(days=1)
CHECK = 3600.0  # s between two tries to claim the day's run
BATCH = 2000  # rows per transaction
CODE_KEYS_KEPT = PAGE_SIZE * MAX_PAGES  # per user: every key the codes job may read again
NUMBERED = ("device_online", "device_battery", "low_balance")  # bot/poller/alerts.py Episodes
BROADCAST = "broadcast"
EMPTY = "{}"
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def episode_thing(key: str) -> str:
    """`<thing>:<bad|ok>:<n>` → `<thing>` (a device id may hold colons itself)."""
    return key.rsplit(":", 2)[0]


def token_thing(key: str) -> str:
    """`<service>:<connected_at>` → `<service>`."""
    return key.partition(":")[0]


# kinds whose newest row per thing is what the job compares with: never pruned
THING: Callable[[str], str] = episode_thing
LATEST: dict[str, Callable[[str], str]] = {TOKEN_BROKEN: token_thing} | dict.fromkeys(
    NUMBERED, THING
)


@dataclass
class Pruned:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, what: str, count: int) -> None:
        self.counts[what] += count

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def claim(
    session_factory: async_sessionmaker[AsyncSession], owner: str, now: datetime | None = None
) -> bool:
    """The day's run is this instance's (True) unless another took it within a day."""
    now = now or utcnow()
    async with session_factory() as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await session.execute(
            insert(JobRun)
            .values(job=JOB, ran_at=NEVER, ran_by=None)
            .on_conflict_do_nothing(index_elements=[JobRun.job])
        )
        result = await session.execute(
            update(JobRun)
            .where(JobRun.job == JOB, JobRun.ran_at <= now - EVERY)
            .values(ran_at=now, ran_by=owner)
        )
        await session.commit()
    return getattr(result, "rowcount", 0) == 1


def _done_before(cutoff: datetime) -> ColumnElement[bool]:
    """An outbox row sent, or dropped (never to be sent), before `cutoff`."""
    return or_(
        OutboxItem.sent_at < cutoff,
        and_(OutboxItem.dropped.is_not(None), OutboxItem.created_at < cutoff),
    )


class Retention:
    """Prunes with `now` as the clock (a bench or a test moves it)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        days: int,
        *,
        owner: str = "",
        lock: asyncio.Lock | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.keep = timedelta(days=days)
        self.owner = owner
        self.lock: contextlib.AbstractAsyncContextManager[Any] = lock or contextlib.nullcontext()

    async def run(self, stop: asyncio.Event) -> None:
        """Tries to claim the day's run every CHECK seconds until `stop`."""
        while not stop.is_set():
            try:
                if await claim(self.session_factory, self.owner):
                    pruned = await self.prune()
                    log.info(
                        "retention: %d old row(s) pruned %s", pruned.total, dict(pruned.counts)
                    )
            except Exception:  # the database is away: tried again at the next check
                log.exception("retention failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK)

    async def prune(self, now: datetime | None = None) -> Pruned:
        cutoff = (now or utcnow()) - self.keep
        pruned = Pruned()
        await self._outbox(cutoff, pruned)
        await self._codes(cutoff, pruned)
        await self._latest(cutoff, pruned)
        await self._compact(cutoff, pruned)
        await self._history(cutoff, pruned)
        return pruned

    async def _batches(
        self, what: str, pruned: Pruned, key: InstrumentedAttribute[Any], ids: Select[Any]
    ) -> None:
        """Deletes the rows whose `key` (the table's primary key) `ids` selects, a batch per
        transaction, walking the key once."""
        last: Any = None
        while True:
            page = ids if last is None else ids.where(key > last)
            async with self.lock, self.session_factory() as session:
                await lock_for_writing(session)
                found = (await session.scalars(page.order_by(key).limit(BATCH))).all()
                if found:
                    await session.execute(delete(key.class_).where(key.in_(found)))
                await session.commit()
            pruned.add(what, len(found))
            if len(found) < BATCH:
                return
            last = found[-1]

    async def _delete(self, what: str, pruned: Pruned, ids: Sequence[int]) -> None:
        """Deletes these outbox rows, a batch per transaction."""
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            async with self.lock, self.session_factory() as session:
                await lock_for_writing(session)
                await session.execute(delete(OutboxItem).where(OutboxItem.id.in_(chunk)))
                await session.commit()
            pruned.add(what, len(chunk))

    async def _outbox(self, cutoff: datetime, pruned: Pruned) -> None:
        async with self.session_factory() as session:
            sending = select(cast(Broadcast.id, String)).where(
                Broadcast.state != BroadcastState.DONE
            )
            unfinished = list((await session.scalars(sending)).all())
        kept = [CODE, *LATEST]
        query = select(OutboxItem.id).where(
            _done_before(cutoff),
            OutboxItem.kind.not_in(kept),
            not_(and_(OutboxItem.kind == BROADCAST, OutboxItem.dedupe_key.in_(unfinished))),
        )
        await self._batches("outbox", pruned, OutboxItem.id, query)

    async def _codes(self, cutoff: datetime, pruned: Pruned) -> None:
        """Code keys past the cutoff beyond each user's newest CODE_KEYS_KEPT."""
        rank = (
            func.row_number()
            .over(partition_by=OutboxItem.user_id, order_by=OutboxItem.id.desc())
            .label("rank")
        )
        ranked = (
            select(OutboxItem.id, rank)
            .where(OutboxItem.kind == CODE, _done_before(cutoff))
            .subquery()
        )
        newer = (
            select(OutboxItem.user_id, func.count().label("newer"))
            .where(OutboxItem.kind == CODE, not_(_done_before(cutoff)))
            .group_by(OutboxItem.user_id)
            .subquery()
        )
        # the rank among the old keys, plus the user's newer keys: the rank among all
        old = (
            select(OutboxItem.id)
            .join(ranked, ranked.c.id == OutboxItem.id)
            .outerjoin(newer, newer.c.user_id == OutboxItem.user_id)
            .where(ranked.c.rank + func.coalesce(newer.c.newer, 0) > CODE_KEYS_KEPT)
        )
        async with self.session_factory() as session:  # one ranking of every key, not a batch's
            ids = list((await session.scalars(old.order_by(OutboxItem.id))).all())
        await self._delete("outbox codes", pruned, ids)

    async def _latest(self, cutoff: datetime, pruned: Pruned) -> None:
        """Of each thing's rows (a device's connection, the balance…), the old ones go but the
        newest; a numbered thing's rows left are numbered again 0, 1, … in order."""
        async with self.session_factory() as session:
            query = (
                select(OutboxItem.user_id)
                .where(OutboxItem.kind.in_(list(LATEST)), _done_before(cutoff))
                .distinct()
            )
            users = list((await session.scalars(query)).all())
        for start in range(0, len(users), 200):
            async with self.lock, self.session_factory() as session:
                await lock_for_writing(session)
                count = await _latest_of(session, users[start : start + 200], cutoff)
                await session.commit()
            pruned.add("outbox episodes", count)

    async def _compact(self, cutoff: datetime, pruned: Pruned) -> None:
        """The rows kept for their keys keep nothing else: no code text, no card."""
        ids = select(OutboxItem.id).where(
            _done_before(cutoff),
            or_(OutboxItem.payload != EMPTY, OutboxItem.claimed_by.is_not(None)),
        )
        last = 0
        while True:
            page = ids.where(OutboxItem.id > last).order_by(OutboxItem.id).limit(BATCH)
            async with self.lock, self.session_factory() as session:
                await lock_for_writing(session)
                found = (await session.scalars(page)).all()
                if found:
                    await session.execute(
                        update(OutboxItem)
                        .where(OutboxItem.id.in_(found))
                        .values(payload=EMPTY, claimed_by=None)
                    )
                await session.commit()
            pruned.add("outbox compacted", len(found))
            if len(found) < BATCH:
                return
            last = found[-1]

    async def _history(self, cutoff: datetime, pruned: Pruned) -> None:
        finished = (CampaignState.DONE, CampaignState.CANCELLED)
        old_campaigns = select(Campaign.id).where(
            or_(
                and_(Campaign.state.in_(finished), Campaign.finished_at < cutoff),
                and_(Campaign.state == CampaignState.DRAFT, Campaign.created_at < cutoff),
            )
        )
        steps: Sequence[tuple[str, InstrumentedAttribute[Any], Select[Any]]] = (
            (
                "confirmations",
                Confirmation.id,
                select(Confirmation.id).where(
                    Confirmation.created_at < cutoff, Confirmation.running_since.is_(None)
                ),
            ),
            ("dialogs", FsmRecord.key, select(FsmRecord.key).where(FsmRecord.updated_at < cutoff)),
            ("sent_sms", SentSms.id, select(SentSms.id).where(SentSms.updated_at < cutoff)),
            (
                "campaign_rows",
                CampaignRow.id,
                select(CampaignRow.id).where(
                    CampaignRow.campaign_id.in_(old_campaigns.scalar_subquery())
                ),
            ),
            ("campaigns", Campaign.id, old_campaigns),
            (
                "rent_watch",
                RentWatch.rent_id,
                select(RentWatch.rent_id).where(
                    RentWatch.updated_at < cutoff,
                    RentWatch.started_at < cutoff,
                    RentWatch.remind_at.is_(None),
                    RentWatch.group_chat_id.is_(None),
                    or_(
                        RentWatch.wake_state.is_(None),
                        RentWatch.wake_state.in_([WakeState.OVER, WakeState.FAILED]),
                    ),
                    or_(
                        RentWatch.refund_state.is_(None),
                        RentWatch.refund_state != RefundState.TRYING,
                    ),
                ),
            ),
            (
                "access_refusals",
                AccessRefusal.user_id,
                select(AccessRefusal.user_id).where(AccessRefusal.refused_at < cutoff),
            ),
            ("instances", Instance.id, select(Instance.id).where(Instance.beat_at < cutoff)),
        )
        for what, key, ids in steps:
            await self._batches(what, pruned, key, ids)


async def _latest_of(session: AsyncSession, user_ids: Sequence[int], cutoff: datetime) -> int:
    """`Retention._latest` for some users, in the caller's transaction; rows deleted."""
    query = (
        select(OutboxItem.id, OutboxItem.user_id, OutboxItem.kind, OutboxItem.dedupe_key)
        .add_columns(_done_before(cutoff).label("old"))
        .where(OutboxItem.user_id.in_(user_ids), OutboxItem.kind.in_(list(LATEST)))
        .order_by(OutboxItem.id)
    )
    things: dict[tuple[int, str, str], list[tuple[int, str, bool]]] = defaultdict(list)
    for row_id, user_id, kind, key, old in (await session.execute(query)).all():
        things[(user_id, kind, LATEST[kind](key))].append((row_id, key, bool(old)))
    gone: list[int] = []
    renamed: list[tuple[int, str]] = []
    for (_user, kind, thing), rows in things.items():
        newest = rows[-1][0]
        dropped = [row_id for row_id, _key, old in rows if old and row_id != newest]
        if not dropped:
            continue
        gone += dropped
        if kind in NUMBERED:
            left = [(row_id, key) for row_id, key, _old in rows if row_id not in dropped]
            for number, (row_id, key) in enumerate(left):
                state = key.rsplit(":", 2)[1]
                renamed.append((row_id, f"{thing}:{state}:{number}"))
    if gone:
        await session.execute(delete(OutboxItem).where(OutboxItem.id.in_(gone)))
    for step in (lambda row_id, key: f"{key}~{row_id}", lambda _row_id, key: key):
        # through keys of their own first: a new key may be an old one of another row left
        for row_id, key in renamed:
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == row_id)
                .values(dedupe_key=step(row_id, key))
            )
    return len(gone)
