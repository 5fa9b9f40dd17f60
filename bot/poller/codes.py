"""The GotSMS codes job: finds new messages on rented numbers and queues them as pushes.

Messages are read with `GET /messages` (newest first) and never marked as read, so the user can
still read them in the GotSMS panel. A message is new when its id was never queued: the outbox's
unique key is the memory. On the first poll after a token is connected, the messages already there
are recorded as known (never pushed) and a single "N unread codes — /codes" note is queued.
When pushes of codes come back (switched on again in /notify, the bot unblocked), the poll after
that does the same with the codes that came while they were off (`catch_up`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.api.gotsms import GotSMSClient, Message
from bot.db.models import Credential, NotificationSettings, Service, utcnow
from bot.db.outbox import PollState
from bot.db.outbox_repo import OutboxRepo
from bot.db.rent_watch import RentWatchRepo
from bot.poller.group_codes import share_code
from bot.poller.jobs import Client, Job, Poll
from bot.poller.writes import Pending

JOB = "codes"
KIND = "code"
PAGE_SIZE = 20
MAX_PAGES = 5
WATCHING = "watching"
RESUMED = "resumed:"  # + when pushes came back: what came before is summed up, not pushed
RENTS_JOB = "rents"
CLOCK_SKEW = timedelta(seconds=10)  # GotSMS's clock may be a little behind ours


@dataclass(frozen=True)
class Watch:
    active_rents: str | None  # the rents job's cursor
    connected_at: datetime | None


@dataclass(frozen=True)
class CodesTiming:
    hot_interval: float = 3.0  # POLL_INTERVAL
    cold_interval: float = 50.0  # a code reaches a cold user within 60 s, sending included
    hot_window: timedelta = timedelta(minutes=30)
    reserve: int = 8  # of GotSMS's 30 requests a minute, kept for the user's own commands


class CodesJob(Job):
    name = JOB
    service = Service.GOTSMS
    max_backoff = 60.0

    def __init__(self, *args: Any, timing: CodesTiming | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timing = timing or CodesTiming()
        self.reserve = self.timing.reserve
        # Per user, a fingerprint of the first page last seen with every message on it already
        # queued: the same page again has nothing new and costs no query.
        self._seen: dict[int, int] = {}

    def interval(self, state: PollState, now: datetime) -> float:
        hot = state.hot_until is not None and state.hot_until > now
        return self.timing.hot_interval if hot else self.timing.cold_interval

    def wanted(self, settings: NotificationSettings) -> bool:
        return settings.codes

    async def preload(self, session: AsyncSession, user_ids: Sequence[int]) -> dict[int, Any]:
        """Per user: how many active rents the rents job last saw, and when the token came."""
        rents = aliased(PollState)
        query = (
            select(Credential.user_id, rents.cursor, Credential.connected_at)
            .outerjoin(rents, (rents.user_id == Credential.user_id) & (rents.job == RENTS_JOB))
            .where(Credential.user_id.in_(user_ids), Credential.service == Service.GOTSMS.value)
        )
        rows = (await session.execute(query)).all()
        return {row.user_id: Watch(row.cursor, row.connected_at) for row in rows}

    async def work(self, poll: Poll, client: Client) -> None:
        assert isinstance(client, GotSMSClient)
        state = poll.state
        watch: Watch = poll.extra or Watch(None, None)
        if state.cursor == WATCHING and self._nothing_to_watch(state, watch.active_rents):
            return
        if state.cursor is not None and state.cursor.startswith(RESUMED):
            await self._resume(poll, client, datetime.fromisoformat(state.cursor[len(RESUMED) :]))
        elif state.cursor != WATCHING:
            await self._begin(poll, client, watch.connected_at)
        else:
            await self._queue_new(poll, client)

    @staticmethod
    def _nothing_to_watch(state: PollState, active_rents: str | None) -> bool:
        """No active rent (as the rents job last saw) and none just made: no request at all.

        A rent made in the GotSMS panel is noticed by the rents job within its interval; its
        codes are then pushed, later but not lost.
        """
        if state.hot_until is not None and state.hot_until > utcnow():
            return False
        return active_rents == "0"

    @staticmethod
    async def _begin(poll: Poll, client: GotSMSClient, since: datetime | None) -> None:
        """First poll: what was there before the token was connected is not new (one note says
        how many codes are unread); what came after is pushed like any new code."""
        user_id, pending = poll.state.user_id, poll.pending
        page = await client.messages(per_page=PAGE_SIZE)
        baseline = (since or utcnow()) - CLOCK_SKEW
        before = [m for m in page.data if _older(m, baseline)]
        pending.remember(user_id, KIND, [m.id for m in before], "there before")
        unread = await client.unread_messages(per_page=PAGE_SIZE)
        waiting = unread.meta.total - sum(1 for m in unread.data if not _older(m, baseline))
        if waiting > 0:  # keyed by the connection: a poll that runs twice notes it once
            pending.enqueue(
                user_id, "unread_note", f"first:{baseline.isoformat()}", {"count": waiting}
            )
        new = [m for m in page.data if m not in before]
        refunded = await watched_rents(poll, new)
        for message in reversed(new):
            _push(pending, user_id, message, refunded)
        poll.state.cursor = WATCHING

    async def _resume(self, poll: Poll, client: GotSMSClient, since: datetime) -> None:
        """The first poll after pushes came back: the codes that came while they were off are
        recorded as known and counted in one note; what came after is pushed one by one."""
        user_id, pending = poll.state.user_id, poll.pending
        baseline = since - CLOCK_SKEW
        found = await self._unqueued(poll, client)
        missed = [m.id for m in found if _older(m, baseline)]
        pending.remember(user_id, KIND, missed, "while pushes were off")
        if missed:
            key = f"resumed:{baseline.isoformat()}"
            pending.enqueue(user_id, "unread_note", key, {"count": len(missed)})
        new = [m for m in found if m.id not in missed]
        refunded = await watched_rents(poll, found)
        for message in reversed(new):
            _push(pending, user_id, message, refunded)
        poll.state.cursor = WATCHING

    async def _queue_new(self, poll: Poll, client: GotSMSClient) -> int:
        found = await self._unqueued(poll, client)
        refunded = await watched_rents(poll, found)
        for message in reversed(found):  # oldest first: pushes keep the order of arrival
            _push(poll.pending, poll.state.user_id, message, refunded)
        return len(found)

    async def _unqueued(self, poll: Poll, client: GotSMSClient) -> list[Message]:
        """The messages never queued, newest first (at most MAX_PAGES pages of them)."""
        user_id = poll.state.user_id
        outbox = OutboxRepo(poll.session)
        found: list[Message] = []
        for page_number in range(1, MAX_PAGES + 1):
            page = await client.messages(page=page_number, per_page=PAGE_SIZE)
            ids = [m.id for m in page.data]
            if page_number == 1 and self._seen.get(user_id) == hash(tuple(ids)):
                return []
            known = await outbox.known_keys(user_id, KIND, ids)
            if page_number == 1 and len(known) == len(ids):
                self._seen[user_id] = hash(tuple(ids))
            new = [m for m in page.data if m.id not in known]
            found += new
            if len(new) < len(page.data) or page_number >= page.meta.last_page:
                break
        return found


async def catch_up(session: AsyncSession, user_id: int) -> None:
    """Pushes of codes come back (switched on again, the bot unblocked): the next poll sums up
    what came meanwhile in one note instead of pushing every code (the caller commits)."""
    now = utcnow()
    await session.execute(
        update(PollState)
        .where(PollState.user_id == user_id, PollState.job == JOB, PollState.cursor == WATCHING)
        .values(cursor=RESUMED + now.isoformat(), next_at=now)
    )


def _push(pending: Pending, user_id: int, message: Message, refunded: Collection[str] = ()) -> None:
    """The code to its owner, and to the group of its rent when it is shared."""
    payload = _payload(message, refunded)
    pending.enqueue(user_id, KIND, message.id, payload)
    if message.rent_id:
        pending.later(share_code(user_id, message.id, message.rent_id, payload))


def _older(message: Message, baseline: datetime) -> bool:
    return message.received_at is None or message.received_at < baseline


def _payload(message: Message, refunded: Collection[str] = ()) -> dict[str, str | bool | None]:
    return {
        "service": message.service.name if message.service else None,
        "phone": message.phone,
        "code": message.code,
        "body": message.body,
        "rent_id": message.rent_id,
        "received_at": message.received_at.isoformat() if message.received_at else None,
    } | ({"refunded": True} if message.rent_id in refunded else {})


async def watched_rents(poll: Poll, messages: Sequence[Message]) -> set[str]:
    """The rents these messages came to got a message (no no-code push, no automatic refund,
    written with the codes); of them, those refunded already (their codes say so)."""
    rent_ids = sorted({m.rent_id for m in messages if m.rent_id})
    if not rent_ids:
        return set()
    poll.pending.later(lambda session: RentWatchRepo(session).got_message(rent_ids))
    return await RentWatchRepo(poll.session).refunded_of(rent_ids)
