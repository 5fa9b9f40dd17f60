"""The campaign runner: sends the rows of RUNNING campaigns, one SMS at a time, at their pace.

Every few seconds it leases the RUNNING campaigns nobody holds (one per user at a time, the
oldest first: a user's campaigns go one after another, different users' side by side) and
drives each in a task of its own. A drive marks each row SENDING (committed, and only while its
lease holds) before its SMS is requested, then records what GoSMS said. A drive that takes a
campaign over first marks what the one before left SENDING as UNKNOWN: it may have gone out, so
it is never sent again by itself.

Errors after which going on is pointless (the token, the tariff, the devices) pause the campaign
and tell the user why; transient ones (429, 5xx, timeouts) only slow it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.api.clients import Clients
from bot.api.errors import (
    ApiAuthError,
    ApiBadResponse,
    ApiError,
    ApiPermissionError,
    ApiRateLimited,
    ApiUnavailable,
)
from bot.api.gosms import GoSMSClient, SmsStatus
from bot.campaigns.card import (
    DONE,
    MIN_GAP,
    STOPPED,
    StopReason,
    card_key,
    card_payload,
    devices_of,
)
from bot.campaigns.delivery import queue_card
from bot.db.campaigns import CampaignRepo, Holder, Queued
from bot.db.crypto import TokenCipher, TokenDecryptError
from bot.db.models import Campaign, DeviceMode, RowState, Service, utcnow
from bot.db.outbox_repo import OutboxRepo, PollStateRepo
from bot.db.repo import CredentialRepo
from bot.poller.sms import JOB as SMS_JOB

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
RENEW_AFTER = 10.0  # seconds a lease is used before it is renewed
LOOK_EVERY = 2.0  # seconds between looks for campaigns to lease
CARD_EVERY = 4.0  # seconds between two edits of a card while it runs
BATCH = 50  # queued rows read at once
MAX_BACKOFF = 60.0
FOLLOW_SOON = timedelta(seconds=10)  # the SMS job looks at what was sent within this

REVOKED_CODES = frozenset({1002, 1003})
NO_DEVICE_CODES = frozenset({1004, 1015})
DEVICE_GONE_CODES = frozenset({1012, 1016})
PERMISSION_CODES = frozenset({1005, 1007, 1009, 1011, 1013, 1014})
CODE_REASONS: dict[int, StopReason] = {
    **dict.fromkeys(REVOKED_CODES, StopReason.REVOKED),
    **dict.fromkeys(NO_DEVICE_CODES, StopReason.NO_DEVICE),
    **dict.fromkeys(PERMISSION_CODES, StopReason.PERMISSION),
    1006: StopReason.TARIFF,
    3000: StopReason.BLOCKED,
}


class Verdict(StrEnum):
    """What one request's answer means for its row and the campaign."""

    SENT = "sent"
    FAILED = "failed"  # refused for this row (bad input): nothing went out, the others go on
    UNKNOWN = "unknown"  # it may have gone out: never again by itself
    AGAIN = "again"  # not sent (429, no connection): the row waits, the campaign slows down
    DEVICE_GONE = "device_gone"  # the device is not the account's: the row goes by another
    STOP = "stop"  # going on is pointless: the row waits, the campaign pauses


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    sms_id: str | None = None
    error: str | None = None
    reason: StopReason | None = None
    wait: float = 0.0  # seconds GoSMS asked to wait


def judge(error: ApiError) -> Outcome:
    """The outcome of a failed send request."""
    code = error.code if isinstance(error.code, int) else None
    if isinstance(error, ApiRateLimited):
        return Outcome(Verdict.AGAIN, wait=max(1.0, error.retry_after))
    if isinstance(error, ApiUnavailable):
        verdict = Verdict.UNKNOWN if error.uncertain else Verdict.AGAIN
        return Outcome(verdict, error=error.detail)
    if isinstance(error, ApiBadResponse):  # it was taken, its answer is unreadable
        return Outcome(Verdict.UNKNOWN, error=error.detail)
    if code in DEVICE_GONE_CODES:
        return Outcome(Verdict.DEVICE_GONE, error=error.detail)
    if code in CODE_REASONS:
        return Outcome(Verdict.STOP, error=error.detail, reason=CODE_REASONS[code])
    if isinstance(error, ApiAuthError):
        return Outcome(Verdict.STOP, error=error.detail, reason=StopReason.REVOKED)
    if isinstance(error, ApiPermissionError):
        return Outcome(Verdict.STOP, error=error.detail, reason=StopReason.PERMISSION)
    return Outcome(Verdict.FAILED, error=error.detail)


@dataclass
class Pace:
    """When each device of a campaign may send next (loop time), and the campaign itself."""

    per_device: float
    devices: list[str]  # [""] for any device
    next_at: dict[str, float] = field(default_factory=dict)
    campaign_next: float = 0.0

    def pick(self) -> tuple[str, float]:
        """The device that may send soonest (in turn, when they are all free) and when."""
        device = min(self.devices, key=lambda d: (self.next_at.get(d, 0.0), self.devices.index(d)))
        return device, max(self.next_at.get(device, 0.0), self.campaign_next)

    def used(self, device: str, at: float) -> None:
        self.next_at[device] = at + self.per_device
        self.campaign_next = at + MIN_GAP

    def drop(self, device: str) -> None:
        self.devices = [d for d in self.devices if d != device]


@dataclass
class Drive:
    """One campaign being sent by this instance."""

    campaign_id: int
    user_id: int
    client: GoSMSClient
    pace: Pace
    to_sim: int | None
    renewed_at: float
    carded_at: float = 0.0
    failures: int = 0


class Stopped(Exception):
    """The drive ends: the lease is gone, the campaign paused, cancelled or done."""


class CampaignRunner:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        cipher: TokenCipher,
        clients: Clients,
        *,
        instance_id: str,
        on_queued: Callable[[], None] = lambda: None,
        look_every: float = LOOK_EVERY,
        card_every: float = CARD_EVERY,
    ) -> None:
        self.session_factory = session_factory
        self.cipher = cipher
        self.clients = clients
        self.me = instance_id or "single"
        self.on_queued = on_queued
        self.look_every = look_every
        self.card_every = card_every
        self.drives: dict[int, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._failing = False

    def wake(self) -> None:
        """Look for campaigns to lease at once (one was started or resumed here)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        while not stop.is_set():
            await self._look_safely()
            self._wake.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waits, timeout=self.look_every, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
        await self.settled()

    async def settled(self) -> None:
        """Waits for the drives under way to end (they end at a stop, between two SMS)."""
        if self.drives:
            await asyncio.gather(*self.drives.values(), return_exceptions=True)

    async def _look_safely(self) -> None:
        try:
            await self.look()
        except Exception as exc:  # the database is away: look again next time
            if not self._failing:
                log.warning("campaigns not looked at (%s: %.200s)", type(exc).__name__, exc)
            self._failing = True
        else:
            self._failing = False

    async def look(self) -> list[int]:
        """Leases the campaigns this instance may send now and starts their drives."""
        now = utcnow()
        async with self.session_factory() as session:
            repo = CampaignRepo(session)
            taken = []
            for holder in self._candidates(await repo.running(), now):
                if await repo.take(holder.campaign_id, self.me, now, LEASE):
                    taken.append(holder)
            await session.commit()
        for holder in taken:
            task = asyncio.create_task(self._drive(holder), name=f"campaign-{holder.campaign_id}")
            self.drives[holder.campaign_id] = task
            task.add_done_callback(self._ended)
        return [holder.campaign_id for holder in taken]

    def _ended(self, task: asyncio.Task[None]) -> None:
        for campaign_id, drive in list(self.drives.items()):
            if drive is task:
                del self.drives[campaign_id]

    def _candidates(self, running: Sequence[Holder], now: datetime) -> list[Holder]:
        """The oldest RUNNING campaign of each user none of whose campaigns is held."""
        busy: set[int] = set()
        chosen: dict[int, Holder] = {}
        for holder in running:
            live = holder.leased_until is not None and holder.leased_until > now
            held = live and holder.leased_by not in (None, self.me)
            if holder.campaign_id in self.drives or held:
                busy.add(holder.user_id)
            chosen.setdefault(holder.user_id, holder)
        return [h for user, h in chosen.items() if user not in busy]

    # ---- one campaign

    async def _drive(self, holder: Holder) -> None:
        drive: Drive | None = None
        try:
            drive = await self._begin(holder)
            if drive is not None:
                await self._send_all(drive)
        except Stopped:
            pass
        except Exception as exc:  # the database, a bug: the lease runs out, another goes on
            log.warning(
                "campaign %s: sending stopped (%s: %.200s)",
                holder.campaign_id,
                type(exc).__name__,
                exc,
            )
        finally:
            if self._stop.is_set():  # a clean stop: the next holder need not wait for the lease
                with contextlib.suppress(Exception):
                    await self._release(holder.campaign_id)

    async def _release(self, campaign_id: int) -> None:
        async with self.session_factory() as session:
            await CampaignRepo(session).release(campaign_id, self.me)
            await session.commit()

    async def _begin(self, holder: Holder) -> Drive | None:
        """The campaign as its new holder finds it: rows left SENDING become UNKNOWN; None when
        it cannot be sent (the token is gone: it pauses)."""
        loop = asyncio.get_running_loop()
        async with self.session_factory() as session:
            repo = CampaignRepo(session)
            if await repo.interrupted(holder.campaign_id):
                await queue_card(session, holder.user_id, holder.campaign_id)
            campaign = await session.get(Campaign, holder.campaign_id)
            token = await self._token(session, holder.user_id)
            tries = await repo.last_tries(holder.campaign_id)
            await session.commit()
        if campaign is None:
            return None
        if token is None:
            await self._pause(holder.campaign_id, holder.user_id, StopReason.REVOKED)
            return None
        pace = Pace(campaign.pace, self._devices(campaign))
        now = utcnow()
        for device, tried in tries.items():
            pace.next_at[device] = loop.time() + campaign.pace - (now - tried).total_seconds()
        to_sim = campaign.to_sim if campaign.device_mode != DeviceMode.ANY else None
        client = self.clients.gosms(token)
        return Drive(campaign.id, campaign.user_id, client, pace, to_sim, loop.time())

    async def _token(self, session: AsyncSession, user_id: int) -> str | None:
        try:
            return await CredentialRepo(session, self.cipher).token(user_id, Service.GOSMS)
        except TokenDecryptError:
            return None

    @staticmethod
    def _devices(campaign: Campaign) -> list[str]:
        if campaign.device_mode == DeviceMode.ANY:
            return [""]
        return devices_of(campaign) or [""]

    async def _send_all(self, drive: Drive) -> None:
        while not self._stop.is_set():
            rows = await self._queued(drive)
            if not rows:
                await self._finish(drive)
                return
            for row in rows:
                if self._stop.is_set():
                    return
                await self._send_row(drive, row)

    async def _queued(self, drive: Drive) -> list[Queued]:
        async with self.session_factory() as session:
            rows = await CampaignRepo(session).queued(drive.campaign_id, BATCH)
            await session.commit()
        return rows

    async def _send_row(self, drive: Drive, row: Queued) -> None:
        """One row: waits for its device's turn, claims it, requests it, records the answer."""
        while True:
            if not drive.pace.devices:
                await self._pause(drive.campaign_id, drive.user_id, StopReason.NO_DEVICE)
                raise Stopped
            device, at = drive.pace.pick()
            await self._wait_until(drive, at)
            if not await self._claim(drive, row, device):
                return  # taken back meanwhile (a retry): the next row
            loop = asyncio.get_running_loop()
            drive.pace.used(device, loop.time())
            outcome = await self._request(drive, row, device)
            if outcome.verdict != Verdict.DEVICE_GONE:
                break
            log.info(
                "campaign %s: device %s is gone, it goes on without it", drive.campaign_id, device
            )
            drive.pace.drop(device)
            await self._settle(drive, row, RowState.QUEUED)
        await self._record(drive, row, outcome)

    async def _wait_until(self, drive: Drive, at: float) -> None:
        """Sleeps until `at` (loop time), renewing the lease meanwhile; Stopped at a stop."""
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() - drive.renewed_at >= RENEW_AFTER:
                await self._renew(drive)
            left = at - loop.time()
            if left <= 0:
                return
            nap = min(left, max(0.0, drive.renewed_at + RENEW_AFTER - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=max(nap, 0.01))
            if self._stop.is_set():
                raise Stopped

    async def _renew(self, drive: Drive) -> None:
        async with self.session_factory() as session:
            held = await CampaignRepo(session).renew(drive.campaign_id, self.me, utcnow(), LEASE)
            await session.commit()
        if not held:  # paused, cancelled, or another instance took it over
            raise Stopped
        drive.renewed_at = asyncio.get_running_loop().time()

    async def _claim(self, drive: Drive, row: Queued, device: str) -> bool:
        async with self.session_factory() as session:
            repo = CampaignRepo(session)
            claimed = await repo.claim(row.row_id, drive.campaign_id, self.me, device, utcnow())
            await session.commit()
            if claimed:
                return True
            holder = next(
                (h for h in await repo.running() if h.campaign_id == drive.campaign_id), None
            )
            await session.commit()
        if holder is None or holder.leased_by != self.me:  # paused, cancelled, taken over
            raise Stopped
        return False

    async def _request(self, drive: Drive, row: Queued, device: str) -> Outcome:
        try:
            sms_id = await drive.client.send_sms(
                row.phone,
                row.text,
                device_id=device or None,
                to_sim=drive.to_sim if device else None,
            )
        except ApiError as exc:
            return judge(exc)
        except Exception as exc:  # after the request went: whether it was taken is not known
            log.warning(
                "campaign %s: a send ended unexpectedly (%s: %.200s)",
                drive.campaign_id,
                type(exc).__name__,
                exc,
            )
            return Outcome(Verdict.UNKNOWN, error=type(exc).__name__)
        return Outcome(Verdict.SENT, sms_id=sms_id)

    async def _record(self, drive: Drive, row: Queued, outcome: Outcome) -> None:
        verdict = outcome.verdict
        if verdict == Verdict.SENT:
            drive.failures = 0
            await self._settle(drive, row, RowState.SENT, outcome, status=int(SmsStatus.WAITING))
        elif verdict == Verdict.FAILED:
            drive.failures = 0
            await self._settle(drive, row, RowState.FAILED, outcome)
        elif verdict == Verdict.UNKNOWN:
            await self._settle(drive, row, RowState.UNKNOWN, outcome)
            await self._slow_down(drive, outcome)
        elif verdict == Verdict.AGAIN:
            await self._settle(drive, row, RowState.QUEUED)
            await self._slow_down(drive, outcome)
        else:
            await self._settle(drive, row, RowState.QUEUED)
            assert outcome.reason is not None
            await self._pause(drive.campaign_id, drive.user_id, outcome.reason)
            raise Stopped

    async def _slow_down(self, drive: Drive, outcome: Outcome) -> None:
        drive.failures += 1
        wait = outcome.wait or min(MAX_BACKOFF, 2.0**drive.failures)
        loop = asyncio.get_running_loop()
        drive.pace.campaign_next = max(drive.pace.campaign_next, loop.time() + wait)

    async def _settle(
        self,
        drive: Drive,
        row: Queued,
        state: RowState,
        outcome: Outcome | None = None,
        *,
        status: int | None = None,
    ) -> None:
        """Writes the row's outcome, with the card when it is due and a nudge to the SMS job."""
        loop = asyncio.get_running_loop()
        async with self.session_factory() as session:
            await CampaignRepo(session).settle(
                row.row_id,
                state,
                sms_id=outcome.sms_id if outcome else None,
                sms_status=status,
                error=_clip(outcome.error) if outcome else None,
            )
            if state == RowState.SENT:
                await PollStateRepo(session).poke(drive.user_id, SMS_JOB, utcnow() + FOLLOW_SOON)
            carded = loop.time() - drive.carded_at >= self.card_every and state != RowState.QUEUED
            if carded:
                await queue_card(session, drive.user_id, drive.campaign_id)
            await session.commit()
        if carded:
            drive.carded_at = loop.time()
            self.on_queued()

    async def _finish(self, drive: Drive) -> None:
        async with self.session_factory() as session:
            repo = CampaignRepo(session)
            if await repo.finish(drive.campaign_id, self.me):
                await queue_card(session, drive.user_id, drive.campaign_id)
                await self._queue_done(session, drive.user_id, drive.campaign_id)
            await session.commit()
        self.on_queued()

    async def _queue_done(self, session: AsyncSession, user_id: int, campaign_id: int) -> None:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None:
            return
        payload = card_payload(campaign, await CampaignRepo(session).counts(campaign_id))
        await OutboxRepo(session).enqueue(
            user_id, DONE, f"{campaign_id}:{campaign.finished_at}", payload
        )

    async def _pause(self, campaign_id: int, user_id: int, reason: StopReason) -> None:
        """Pauses the campaign by itself and tells the user why and what to do, once."""
        async with self.session_factory() as session:
            if await CampaignRepo(session).pause_by_itself(campaign_id, self.me, reason):
                campaign = await session.get(Campaign, campaign_id)
                if campaign is not None:
                    payload = card_payload(
                        campaign, await CampaignRepo(session).counts(campaign_id)
                    )
                    await OutboxRepo(session).enqueue(user_id, STOPPED, card_key(payload), payload)
                await queue_card(session, user_id, campaign_id)
            await session.commit()
        log.info("campaign %s paused by itself: %s", campaign_id, reason)
        self.on_queued()


def _clip(text: str | None) -> str | None:
    return text[:255] if text else text
