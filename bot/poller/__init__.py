"""The background work: scheduler → jobs → outbox → sender → Telegram, and the campaign runner
(bot/campaigns/runner.py) that sends the rows of running campaigns."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.api.clients import Clients
from bot.campaigns import runner as campaigns  # a module: runner imports bot.poller.sms
from bot.db.crypto import TokenCipher
from bot.metrics import Metrics
from bot.pace import Pacing
from bot.poller.alerts import BalanceJob, DevicesJob, RentsJob
from bot.poller.broadcasts import BroadcastTicker
from bot.poller.codes import CodesJob, CodesTiming
from bot.poller.jobs import Job
from bot.poller.nocode import NoCodeJob
from bot.poller.retention import Retention
from bot.poller.scheduler import Scheduler
from bot.poller.sender import OutboxSender
from bot.poller.sms import SmsJob
from bot.poller.wake import WakeJob
from bot.poller.writes import Writes


@dataclass
class Poller:
    sender: OutboxSender
    scheduler: Scheduler
    runner: campaigns.CampaignRunner | None = None
    retention: Retention | None = None
    broadcasts: BroadcastTicker | None = None
    grace: float = 15.0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._stop.clear()
        self.tasks = [
            asyncio.create_task(self.sender.run(self._stop), name="outbox-sender"),
            asyncio.create_task(self.scheduler.run(self._stop), name="scheduler"),
        ]
        if self.runner is not None:
            self.tasks.append(asyncio.create_task(self.runner.run(self._stop), name="campaigns"))
        if self.retention is not None:
            task = asyncio.create_task(self.retention.run(self._stop), name="retention")
            self.tasks.append(task)
        if self.broadcasts is not None:
            task = asyncio.create_task(self.broadcasts.run(self._stop), name="broadcasts")
            self.tasks.append(task)

    async def stop(self) -> None:
        """Lets the polls and sends under way finish (up to `grace` seconds), then stops."""
        self._stop.set()
        done, pending = await asyncio.wait(self.tasks, timeout=self.grace)
        for task in pending:
            task.cancel()
        for task in [*done, *pending]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []


def _engine_of(session_factory: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    bind = session_factory.kw.get("bind")
    assert isinstance(bind, AsyncEngine), "the session factory must be bound to an engine"
    return bind


def create_poller(
    bot: Bot,
    session_factory: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
    clients: Clients,
    i18n: I18n,
    poll_interval: float,
    *,
    metrics: Metrics | None = None,
    instance_id: str = "",
    pace: Pacing | None = None,
    retention_days: int | None = None,
) -> Poller:
    """`retention_days`: the daily pruning of older history (None: none, as in most tests)."""
    metrics = metrics or Metrics()
    writes = Writes(session_factory)
    serial = _engine_of(session_factory).dialect.name == "sqlite"
    sender = OutboxSender(
        bot,
        session_factory,
        i18n,
        pace=pace,
        lock=writes.lock if serial else None,
        metrics=metrics,
    )
    sender.owner = instance_id
    shared = (session_factory, cipher, clients)
    wake, timing = sender.wake, CodesTiming(hot_interval=poll_interval)
    jobs: list[Job] = [
        CodesJob(*shared, timing=timing, on_queued=wake, writes=writes),
        RentsJob(*shared, on_queued=wake, writes=writes),
        DevicesJob(*shared, on_queued=wake, writes=writes),
        SmsJob(*shared, on_queued=wake, writes=writes),
        BalanceJob(*shared, on_queued=wake, writes=writes),
        WakeJob(*shared, on_queued=wake, writes=writes),
        NoCodeJob(*shared, on_queued=wake, writes=writes),
    ]
    return Poller(
        sender=sender,
        scheduler=Scheduler(
            session_factory, jobs, writes=writes, metrics=metrics, instance_id=instance_id
        ),
        runner=campaigns.CampaignRunner(*shared, instance_id=instance_id, on_queued=wake),
        retention=None
        if retention_days is None
        else Retention(
            session_factory,
            retention_days,
            owner=instance_id,
            lock=writes.lock if serial else None,
        ),
        broadcasts=BroadcastTicker(
            session_factory, lock=writes.lock if serial else None, on_queued=wake
        ),
    )
