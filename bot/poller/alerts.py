"""Alert jobs: rents ending, devices offline / back / low battery, balance below the threshold.

Each alert is sent once per event. The outbox is the memory: an event is a row whose key names the
thing and the episode (`<device>:off:3`); the end of an episode is remembered as a row that is
never sent (`<device>:on:3` for "back online" is sent, a battery that recovered is only noted).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.api.errors import ApiNotFound
from bot.api.gosms import DeviceInfo, GoSMSClient
from bot.api.gotsms import GotSMSClient, Rent
from bot.db.models import NotificationSettings, Service, utcnow
from bot.db.outbox_repo import OutboxRepo, PollStateRepo
from bot.db.repo import DeviceRepo
from bot.poller.codes import JOB as CODES_JOB
from bot.poller.codes import RENTS_JOB
from bot.poller.jobs import Client, Job, Poll
from bot.poller.wake import notice_wakeups
from bot.poller.writes import Pending

RENT_ALERTS = ((timedelta(hours=1), "1h"), (timedelta(hours=24), "24h"))
OFFLINE_AFTER = timedelta(minutes=10)
LOW_BATTERY = 15
HOT_WINDOW = timedelta(minutes=30)
PLAN_UNIT_MINUTES = {
    "min": 1,
    "hour": 60,
    "day": 1440,
    "week": 10080,
    "month": 43200,
    "year": 525600,
}


class Episodes:
    """Once-per-event bookkeeping for one thing (a device's connection, the balance…)."""

    def __init__(self, poll: Poll, kind: str, thing: str) -> None:
        self.outbox = OutboxRepo(poll.session)
        self.pending = poll.pending
        self.user_id = poll.state.user_id
        self.kind = kind
        self.prefix = f"{thing}:"

    async def change(self, bad: bool, payload: dict[str, Any], *, push_recovery: bool) -> None:
        """Push when `bad` starts; when it ends, push a recovery or just note it."""
        last = await self.outbox.last_event(self.user_id, self.kind, self.prefix)
        was_bad = last is not None and last.split(":")[-2] == "bad"
        if bad == was_bad or (not bad and last is None):
            return
        episode = await self.outbox.count_events(self.user_id, self.kind, self.prefix)
        key = f"{self.prefix}{'bad' if bad else 'ok'}:{episode}"
        if bad or push_recovery:
            self.pending.enqueue(self.user_id, self.kind, key, payload | {"bad": bad})
        else:
            self.pending.remember(self.user_id, self.kind, [key], "recovered")


class RentsJob(Job):
    """Active rents: warns 24 h and 1 h before a rent without auto-renew ends, and makes the codes
    job poll often while a rent is fresh (created or woken up in the last 30 minutes)."""

    name = RENTS_JOB
    service = Service.GOTSMS

    def wanted(self, settings: NotificationSettings) -> bool:
        return settings.rent_expiry or settings.codes

    async def work(self, poll: Poll, client: Client) -> None:
        assert isinstance(client, GotSMSClient)
        state = poll.state
        rents = (await client.rents(status="active", per_page=100)).data
        state.cursor = str(len(rents))  # the codes job skips users with nothing to watch
        now = utcnow()
        fresh = [
            moment for rent in rents for moment in (rent.active_from, rent.wake_from) if moment
        ]
        latest = max(fresh, default=None)
        if latest is not None and latest + HOT_WINDOW > now:
            until = latest + HOT_WINDOW
            poll.pending.later(
                lambda session: PollStateRepo(session).heat(state.user_id, CODES_JOB, until)
            )
        for rent in rents:
            self._warn(poll.pending, state.user_id, rent, now)
        await notice_wakeups(poll, rents)

    @staticmethod
    def _warn(pending: Pending, user_id: int, rent: Rent, now: datetime) -> None:
        if rent.is_included_for_next_renewal or rent.active_till is None:
            return
        left = rent.active_till - now
        length = plan_length(rent)
        # A window as long as the rent itself says nothing: a 1-day rent gets the 1 h alert only.
        alerts = [n for limit, n in RENT_ALERTS if timedelta(0) < left <= limit < length]
        if not alerts:
            return
        keys = [f"{rent.id}:{name}:{rent.active_till.isoformat()}" for name in alerts]
        payload = {
            "rent_id": rent.id,
            "phone": rent.phone,
            "service": rent.service.name,
            "active_till": rent.active_till.isoformat(),
            "within": alerts[0],
            "monthly": rent.plan.duration_type == "month",
        }
        # Only the most urgent alert is sent; a longer one not sent yet is now moot.
        pending.enqueue(user_id, "rent_expiring", keys[0], payload)
        pending.remember(user_id, "rent_expiring", keys[1:], "superseded")


def plan_length(rent: Rent) -> timedelta:
    minutes = PLAN_UNIT_MINUTES.get(rent.plan.duration_type, 0) * rent.plan.duration_in_type
    return timedelta(minutes=minutes)


class DevicesJob(Job):
    """The user's saved GoSMS devices: offline (> 10 min since last online), back online, and a
    battery under 15 % that is not charging."""

    name = "devices"
    service = Service.GOSMS

    def wanted(self, settings: NotificationSettings) -> bool:
        return settings.devices

    async def work(self, poll: Poll, client: Client) -> None:
        assert isinstance(client, GoSMSClient)
        for device in await DeviceRepo(poll.session).list(poll.state.user_id):
            try:
                info = await client.device_info(device.device_id)
            except ApiNotFound:
                continue  # deleted in the panel: the device card says so when opened
            await self._check(poll, device.device_id, device.name, info)

    @staticmethod
    async def _check(poll: Poll, device_id: str, name: str, info: DeviceInfo) -> None:
        now = utcnow()
        seen = info.last_online_date
        offline = seen is None or now - seen > OFFLINE_AFTER
        base = {
            "device_id": device_id,
            "name": info.device_name or name,
            "last_online": seen.isoformat() if seen else None,
        }
        connection = Episodes(poll, "device_online", f"{device_id}:net")
        await connection.change(offline, base, push_recovery=True)
        battery = _battery(info.device_battery_state)
        low = battery is not None and battery < LOW_BATTERY and not info.is_charging
        power = Episodes(poll, "device_battery", f"{device_id}:bat")
        await power.change(low, base | {"battery": battery}, push_recovery=False)


def _battery(value: str) -> int | None:
    try:
        return int(float(value))
    except ValueError:
        return None


class BalanceJob(Job):
    """GotSMS balance under the user's threshold: once, until it recovers."""

    name = "balance"
    service = Service.GOTSMS
    every = 3600.0

    def wanted(self, settings: NotificationSettings) -> bool:
        return settings.low_balance and settings.balance_threshold is not None

    async def work(self, poll: Poll, client: Client) -> None:
        assert isinstance(client, GotSMSClient)
        threshold = poll.settings.balance_threshold
        assert threshold is not None
        balance = (await client.account()).balance
        episodes = Episodes(poll, "low_balance", "balance")
        payload = {"balance": str(balance), "threshold": str(threshold)}
        await episodes.change(balance < threshold, payload, push_recovery=False)
