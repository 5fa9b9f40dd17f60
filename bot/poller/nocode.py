"""The no-code job: a rent made here that got no message by its deadline gets one push, or,
when its automatic refund is on, one refund.

The deadline is `RentWatch.remind_at` (set when the rent is made), so a restart neither loses it
nor moves it; the user's poll is due at their earliest deadline (`cursor` holds it). Before
anything, the rent's messages are read once more: a rent that got one is left alone.

The refund is tried once. `refund_state = trying` is committed before the request, in one
UPDATE guarded on no message and no refund tried; a poll that finds `trying` (the process died,
or the poll failed, after the claim) never asks for the refund again: it looks at the rent in
GotSMS's list (a refunded rent is finished) and records refunded, failed (still active) or
uncertain, telling the user.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.errors import ApiError, ApiNotFound, ApiRejected, ApiUnavailable
from bot.api.gotsms import GotSMSClient, Reason, Rent
from bot.db.models import NotificationSettings, RefundState, RentWatch, Service, utcnow
from bot.db.outbox import PollState
from bot.db.outbox_repo import PollStateRepo
from bot.db.rent_watch import RentWatchRepo
from bot.poller.jobs import Client, Job, Poll

log = logging.getLogger(__name__)
JOB = "nocode"
REMIND = "no_code"  # outbox kinds
REFUND = "no_code_refund"
IDLE = 6 * 3600.0  # s: no deadline known; a new rent pokes the poll anyway
PER_POLL = 3  # deadlines handled in one poll (each costs 1–3 requests); the rest right after
RENTS_PER_PAGE = 100


class NoCodeJob(Job):
    name = JOB
    service = Service.GOTSMS
    max_backoff = 60.0

    def interval(self, state: PollState, now: datetime) -> float:
        at = _moment(state.cursor)
        if at is None:
            return IDLE
        return min(IDLE, max(1.0, (at - now).total_seconds()))

    def spread(self, seconds: float) -> float:
        return seconds  # a deadline is a moment: no drifting apart

    def wanted(self, settings: NotificationSettings) -> bool:
        return True  # a rent's own switch may ask for its refund whatever the settings

    async def work(self, poll: Poll, client: Client) -> None:
        assert isinstance(client, GotSMSClient)
        now = utcnow()
        repo = RentWatchRepo(poll.session)
        due = await repo.no_code_due(poll.state.user_id, now, PER_POLL)
        look = RentLookup(client)
        for watch in due:
            if watch.refund_state == RefundState.TRYING.value:
                await self._recover(poll, look, watch)
            else:
                await self._deadline(poll, client, look, watch)
        if len(due) >= PER_POLL:
            poll.state.cursor = now.isoformat()  # more may be due: again at once
        else:
            upcoming = await repo.next_no_code(poll.state.user_id, now)
            poll.state.cursor = upcoming.isoformat() if upcoming else None

    async def _deadline(
        self, poll: Poll, client: GotSMSClient, look: RentLookup, watch: RentWatch
    ) -> None:
        rent_id = watch.rent_id
        try:
            found = await client.number_messages(rent_id, limit=1)
        except ApiNotFound:  # not this user's rent any more
            poll.pending.later(lambda session: RentWatchRepo(session).reminded(rent_id))
            return
        if found.data:
            poll.pending.later(lambda session: RentWatchRepo(session).got_message([rent_id]))
            return
        if watch.auto_refund:
            await self._refund(poll, look, watch)
            return
        poll.pending.later(lambda session: RentWatchRepo(session).reminded(rent_id))
        if poll.settings.no_code_minutes <= 0:
            return  # reminders switched off since the rent was made
        rent = await look.find(rent_id)
        if rent is not None and rent.status == "active":  # else over, or refunded elsewhere
            poll.pending.enqueue(poll.state.user_id, REMIND, rent_id, _payload(watch))

    async def _refund(self, poll: Poll, look: RentLookup, watch: RentWatch) -> None:
        rent_id = watch.rent_id
        rent = await look.find(rent_id)
        if rent is None or rent.status != "active":  # over, or refunded elsewhere
            poll.pending.later(lambda session: RentWatchRepo(session).reminded(rent_id))
            return
        if not await self._claim(rent_id):
            return  # a code came meanwhile (the codes job marked it), or already tried
        state = await _ask_refund(look.client, rent_id)
        self._settled(poll, watch, state, rent.price)

    async def _claim(self, rent_id: str) -> bool:
        """Committed before the request: whatever happens next, it is never sent twice."""
        async with self.writes.lock, self.session_factory() as session:
            claimed = await RentWatchRepo(session).claim_refund(rent_id)
            await session.commit()
        return claimed

    async def _recover(self, poll: Poll, look: RentLookup, watch: RentWatch) -> None:
        """A refund left `trying`: what became of it, from the rent list, never a new try."""
        rent = await look.find(watch.rent_id)
        if rent is None:
            state = RefundState.UNCERTAIN
        elif rent.status == "active":
            state = RefundState.FAILED
        else:
            state = RefundState.REFUNDED
        log.info("user %s: a refund left trying is %s", poll.state.user_id, state.value)
        self._settled(poll, watch, state, rent.price if rent else None)

    @staticmethod
    def _settled(poll: Poll, watch: RentWatch, state: RefundState, price: object) -> None:
        rent_id = watch.rent_id
        poll.pending.later(lambda session: RentWatchRepo(session).refund_settled(rent_id, state))
        payload = _payload(watch) | {
            "state": state.value,
            "price": "" if price is None else str(price),
        }
        poll.pending.enqueue(poll.state.user_id, REFUND, rent_id, payload)


class RentLookup:
    """The user's rents, read once per poll when a refund needs them."""

    def __init__(self, client: GotSMSClient) -> None:
        self.client = client
        self._rents: dict[str, Rent] | None = None

    async def find(self, rent_id: str) -> Rent | None:
        if self._rents is None:
            page = await self.client.rents(per_page=RENTS_PER_PAGE)
            self._rents = {rent.id: rent for rent in page.data}
        return self._rents.get(rent_id)


async def _ask_refund(client: GotSMSClient, rent_id: str) -> RefundState:
    """The one refund request. Nothing escapes: the claim is already committed."""
    try:
        await client.refund(rent_id)
    except ApiRejected as error:
        if error.code == Reason.REFUND_UNAVAILABLE.value:
            return RefundState.UNAVAILABLE
        return RefundState.FAILED
    except ApiUnavailable as error:
        return RefundState.UNCERTAIN if error.uncertain else RefundState.FAILED
    except ApiError as error:
        log.info("automatic refund refused: %s", type(error).__name__)
        return RefundState.FAILED if error.status in (401, 403, 404, 429) else RefundState.UNCERTAIN
    except Exception as error:  # the answer could not be read: it may have gone through
        log.warning("automatic refund: %s", type(error).__name__)
        return RefundState.UNCERTAIN
    return RefundState.REFUNDED


def _payload(watch: RentWatch) -> dict[str, object]:
    minutes = 0
    if watch.remind_at is not None and watch.started_at is not None:
        minutes = round((watch.remind_at - watch.started_at) / timedelta(minutes=1))
    return {
        "rent_id": watch.rent_id,
        "phone": watch.phone,
        "service": watch.service_name,
        "minutes": minutes,
    }


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


async def watch_deadline(session: AsyncSession, user_id: int, at: datetime | None) -> None:
    """A rent with a no-code deadline was just made: the user's poll is due by then (its
    state made if there is none). The caller commits."""
    if at is None:
        return
    repo = PollStateRepo(session)
    if await repo.get(user_id, JOB) is None:
        try:
            async with session.begin_nested():
                session.add(PollState(user_id=user_id, job=JOB, next_at=at, failures=0))
            return
        except IntegrityError:  # made a moment ago by another rent
            pass
    await repo.poke(user_id, JOB, at)
