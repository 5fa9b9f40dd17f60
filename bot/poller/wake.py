"""The wake-up job: follows a woken number until it is awake, then pushes "send your SMS" once.

A wake-up is followed from the moment the bot woke the number (the rent card) or the rents job
saw a newer one (woken in the GotSMS panel): `follow` records it in `RentWatch` (wake_state
queued, wake_from) and makes this job due. While something is followed the job reads one
number's status (`GET /numbers/{rent_id}/status`) about every CHECK_EVERY seconds, inside the
user's GotSMS budget (the job's reserve, as the other jobs); with nothing followed it makes no
request and looks again only when told to.

Each wake-up ends in one push at most, keyed by the rent and its `wake_from` in the outbox: the
number is awake (with how long it stays so), the wake-up expired (its queue ran out and the number
did not come online) or failed (GotSMS gave it up, or the rental ended). The outbox row and the
new `wake_state` are written in one transaction, so a restart neither loses nor repeats it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.errors import ApiNotFound
from bot.api.gotsms import GotSMSClient, NumberStatus, Rent
from bot.db.models import NotificationSettings, RentWatch, Service, WakeState, utcnow
from bot.db.outbox import PollState
from bot.db.outbox_repo import PollStateRepo
from bot.db.rent_watch import RentWatchRepo
from bot.keyboards.gotsms import RentCb, copy_button, short_id
from bot.poller.codes import JOB as CODES_JOB
from bot.poller.jobs import Client, Job, Poll
from bot.poller.writes import Pending, Step
from bot.texts.wake import awake_push_text, expired_push_text, failed_push_text

if TYPE_CHECKING:
    from bot.poller.pushes import Push

JOB = "wake"
KIND = "wake"
CHECK_EVERY = 18.0  # seconds between two looks at one followed number
CLOSEST = 3  # several followed numbers: one look a poll, polls at most 3 times as close
IDLE = 6 * 3600.0  # nothing followed: `follow` makes the job due again
FOLLOW_WINDOW = timedelta(hours=1)  # an older wake-up first seen by the rents job is not followed


class Outcome(StrEnum):
    AWAKE = "awake"
    EXPIRED = "expired"
    FAILED = "failed"  # GotSMS gave the wake-up up
    ENDED = "ended"  # the rental is over
    OVER = "over"  # came and went before it was seen: nothing to say


@dataclass(frozen=True)
class Followed:
    """A wake-up being followed, as the job's batch loaded it."""

    rent_id: str
    phone: str
    service: str
    wake_from: datetime
    check_at: datetime | None


def push_key(rent_id: str, wake_from: datetime) -> str:
    return f"{rent_id}:{wake_from.isoformat()}"


async def follow(
    session: AsyncSession, user_id: int, rent: Rent, wake_from: datetime | None
) -> bool:
    """Follow this wake-up of the rent, unless it is known already (the caller commits)."""
    if wake_from is None:
        return False
    watch = await RentWatchRepo(session).ensure(user_id, rent)
    if watch.wake_from is not None and watch.wake_from >= wake_from:
        return False
    watch.wake_from = wake_from
    watch.wake_state = WakeState.QUEUED.value
    watch.wake_check_at = None
    repo = PollStateRepo(session)
    if await repo.get(user_id, JOB) is None:
        await repo.start(user_id, JOB)
    else:
        await repo.poke(user_id, JOB, utcnow())
    return True


async def resume(session: AsyncSession, user_id: int) -> None:
    """The wake-up push is switched on again: what is followed is looked at now (the job may
    be idle, or slowed down while it was off). The caller commits."""
    await PollStateRepo(session).poke(user_id, JOB, utcnow())


async def notice_wakeups(poll: Poll, rents: Sequence[Rent]) -> None:
    """Called by the rents job: wake-ups newer than what rent_watch knows are followed."""
    woken = {r.id: r for r in rents if r.wake_from is not None}
    if not woken:
        return
    query = select(RentWatch.rent_id, RentWatch.wake_from).where(
        RentWatch.rent_id.in_(list(woken)), RentWatch.user_id == poll.state.user_id
    )
    known = {row.rent_id: row.wake_from for row in (await poll.session.execute(query)).all()}
    since = utcnow() - FOLLOW_WINDOW
    user_id = poll.state.user_id
    for rent in woken.values():
        moment, seen = rent.wake_from, known.get(rent.id)
        if moment is None or moment < since or (seen is not None and seen >= moment):
            continue
        poll.pending.later(_follow_step(user_id, rent, moment))


def _follow_step(user_id: int, rent: Rent, moment: datetime) -> Step:
    async def step(session: AsyncSession) -> bool:
        return await follow(session, user_id, rent, moment)

    return step


class WakeJob(Job):
    name = JOB
    service = Service.GOTSMS
    every = CHECK_EVERY
    max_backoff = 120.0

    def wanted(self, settings: NotificationSettings) -> bool:
        return settings.wake_push

    def interval(self, state: PollState, now: datetime) -> float:
        cursor = state.cursor or ""
        followed = int(cursor) if cursor.isdigit() else 0
        if followed == 0:
            return IDLE
        return self.every / min(followed, CLOSEST)

    async def preload(self, session: AsyncSession, user_ids: Sequence[int]) -> dict[int, Any]:
        query = select(RentWatch).where(
            RentWatch.user_id.in_(user_ids),
            RentWatch.wake_state == WakeState.QUEUED.value,
            RentWatch.wake_from.is_not(None),
        )
        found: dict[int, list[Followed]] = {}
        for watch in (await session.scalars(query)).all():
            assert watch.wake_from is not None
            found.setdefault(watch.user_id, []).append(
                Followed(
                    watch.rent_id,
                    watch.phone,
                    watch.service_name,
                    watch.wake_from,
                    watch.wake_check_at,
                )
            )
        return found

    async def _poll(self, poll: Poll, client: Client, now: datetime) -> datetime:
        if not poll.extra:  # nothing followed: no request, not even a reserved one
            poll.state.cursor = "0"
            poll.state.failures = 0
            return now + timedelta(seconds=IDLE)
        return await super()._poll(poll, client, now)

    async def work(self, poll: Poll, client: Client) -> None:
        assert isinstance(client, GotSMSClient)
        followed: list[Followed] = poll.extra
        poll.state.cursor = str(len(followed))
        now = utcnow()
        # one request a poll: the number looked at longest ago (the polls are spaced for all)
        item = min(followed, key=lambda f: f.check_at or datetime.min.replace(tzinfo=now.tzinfo))
        try:
            status: NumberStatus | None = await client.number_status(item.rent_id)
        except ApiNotFound:  # the rent is gone from the account
            status = None
        check_at = now + timedelta(seconds=CHECK_EVERY)
        _settle(poll.pending, poll.state.user_id, item, status, check_at)


def judge(item: Followed, status: NumberStatus | None) -> tuple[Outcome | None, datetime]:
    """What the status says of the followed wake-up (None: still queued), and the wake-up it
    is about (GotSMS may show a newer one: that one is followed instead)."""
    if status is None or status.status not in ("", "active"):
        return Outcome.ENDED, item.wake_from
    wake_from = status.wake_from
    if wake_from is None or wake_from < item.wake_from:
        return Outcome.FAILED, item.wake_from
    if (status.wakeup_time_left_seconds or 0) > 0:
        return None, wake_from
    if status.online_till is None:
        return Outcome.EXPIRED, wake_from
    if (status.online_time_left_seconds or 0) > 0:
        return Outcome.AWAKE, wake_from
    return Outcome.OVER, wake_from


def _settle(
    pending: Pending,
    user_id: int,
    item: Followed,
    status: NumberStatus | None,
    check_at: datetime,
) -> None:
    outcome, wake_from = judge(item, status)
    rent_id, key = item.rent_id, push_key(item.rent_id, wake_from)
    if outcome is None:
        pending.later(lambda session: _store(session, item, wake_from, WakeState.QUEUED, check_at))
        return
    if outcome is Outcome.OVER:
        pending.remember(user_id, KIND, [key], "over before it was seen")
    else:
        payload: dict[str, Any] = {
            "rent_id": rent_id,
            "phone": item.phone,
            "service": item.service,
            "outcome": outcome.value,
            "online_left": (status.online_time_left_seconds or 0) if status else 0,
            "seen_at": utcnow().isoformat(),
        }
        pending.enqueue(user_id, KIND, key, payload)
    if outcome is Outcome.AWAKE and status is not None:
        until = utcnow() + timedelta(seconds=status.online_time_left_seconds or 0)
        pending.later(lambda session: PollStateRepo(session).heat(user_id, CODES_JOB, until))
    state = {
        Outcome.AWAKE: WakeState.AWAKE,
        Outcome.OVER: WakeState.OVER,
        Outcome.EXPIRED: WakeState.OVER,
    }.get(outcome, WakeState.FAILED)
    pending.later(lambda session: _store(session, item, wake_from, state, None))


async def _store(
    session: AsyncSession,
    item: Followed,
    wake_from: datetime,
    state: WakeState,
    check_at: datetime | None,
) -> None:
    """The followed wake-up's new state, unless a newer one is followed meanwhile."""
    watch = await session.get(RentWatch, item.rent_id)
    if watch is None or watch.wake_from is None or watch.wake_from > wake_from:
        return
    if watch.wake_from != item.wake_from and watch.wake_from != wake_from:
        return
    watch.wake_from = wake_from
    watch.wake_state = state.value
    watch.wake_check_at = check_at


# ---------------------------------------------------------------- pushes


def _left(payload: Mapping[str, Any]) -> int:
    """The online time left when the push is sent (it was read when the poll saw it)."""
    left = int(payload.get("online_left") or 0)
    seen = payload.get("seen_at")
    if seen:
        left -= int((utcnow() - datetime.fromisoformat(str(seen))).total_seconds())
    return max(0, left)


def wake_push(payload: Mapping[str, Any]) -> Push:
    from bot.poller.pushes import Push  # pushes.py registers RENDERERS: imported here, no cycle

    phone = str(payload.get("phone") or "")
    service = str(payload.get("service") or "")
    rent = short_id(str(payload["rent_id"]))
    card = InlineKeyboardButton(
        text="📋 " + _("Open rental"), callback_data=RentCb(a="o", id=rent).pack()
    )
    outcome = str(payload.get("outcome") or "")
    if outcome == Outcome.AWAKE:
        buttons = [copy_button("📋 " + phone, phone)] if phone else []
        text = awake_push_text(phone, service, _left(payload))
        return Push(text, InlineKeyboardMarkup(inline_keyboard=[[*buttons, card]]))
    if outcome == Outcome.ENDED:
        return Push(failed_push_text(phone, service, ended=True))
    again = InlineKeyboardButton(
        text="⏰ " + _("Wake up again"), callback_data=RentCb(a="w", id=rent).pack()
    )
    text = (
        expired_push_text(phone, service)
        if outcome == Outcome.EXPIRED
        else failed_push_text(phone, service, ended=False)
    )
    return Push(text, InlineKeyboardMarkup(inline_keyboard=[[again, card]]))


RENDERERS = {KIND: wake_push}
