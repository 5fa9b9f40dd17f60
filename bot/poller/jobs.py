"""What every polling job shares: load the user's state and token, poll, schedule the next time.

A job never raises: an API failure backs off that user only (one broken account never slows the
others), a 429 waits what the service asked, a refused token is retried rarely.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.api.clients import Clients
from bot.api.errors import ApiAuthError, ApiError, ApiPermissionError, ApiRateLimited
from bot.api.gosms import GoSMSClient
from bot.api.gotsms import GotSMSClient
from bot.db.crypto import TokenCipher
from bot.db.models import NotificationSettings, Service, utcnow
from bot.db.outbox import PollState
from bot.db.outbox_repo import PollStateRepo
from bot.db.repo import CredentialRepo

log = logging.getLogger(__name__)
MAX_BACKOFF = 300.0
BROKEN_TOKEN_RETRY = timedelta(hours=1)
GOTSMS_RESERVE = 8
Client = GotSMSClient | GoSMSClient


class Job(ABC):
    name: str
    service: Service
    every: float = 300.0  # seconds between polls, unless `interval` says otherwise
    max_backoff = MAX_BACKOFF
    reserve = GOTSMS_RESERVE  # of the GotSMS budget, kept for the user's own commands

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        cipher: TokenCipher,
        clients: Clients,
        *,
        every: float | None = None,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.session_factory = session_factory
        self.cipher = cipher
        self.clients = clients
        self.on_queued = on_queued
        if every is not None:
            self.every = every

    def interval(self, state: PollState, now: datetime) -> float:
        """Seconds until the next poll after a good one."""
        return self.every

    @abstractmethod
    def wanted(self, settings: NotificationSettings) -> bool:
        """Whether the user wants what this job finds (else it costs no request)."""

    @abstractmethod
    async def work(
        self,
        session: AsyncSession,
        state: PollState,
        client: Client,
        settings: NotificationSettings,
    ) -> None:
        """One poll: call the API, queue what is new. ApiError escapes to the base."""

    def quota_wait(self, client: Client) -> datetime | None:
        """When only the user's reserve of the GotSMS budget is left, wait for the reset."""
        if self.service is not Service.GOTSMS:
            return None
        quota = client.quota()
        if quota.remaining is None or quota.reset_at is None:
            return None
        reset = datetime.fromtimestamp(quota.reset_at, tz=utcnow().tzinfo)
        if quota.remaining <= self.reserve and reset > utcnow():
            return reset
        return None

    async def poll(self, user_id: int) -> None:
        async with self.session_factory() as session:
            state = await PollStateRepo(session).get(user_id, self.name)
            token = await CredentialRepo(session, self.cipher).token(user_id, self.service)
            if state is None:
                return
            if token is None:
                await session.delete(state)
                await session.commit()
                return
            settings = await read_settings(session, user_id)
            now = utcnow()
            if self.wanted(settings):
                state.next_at = await self._poll(session, state, self._client(token), settings, now)
            else:
                state.next_at = now + timedelta(seconds=self.interval(state, now))
            await session.commit()
        self.on_queued()

    def _client(self, token: str) -> Client:
        if self.service is Service.GOTSMS:
            return self.clients.gotsms(token)
        return self.clients.gosms(token)

    async def _poll(
        self,
        session: AsyncSession,
        state: PollState,
        client: Client,
        settings: NotificationSettings,
        now: datetime,
    ) -> datetime:
        waiting = self.quota_wait(client)
        if waiting is not None:
            return waiting
        try:
            await self.work(session, state, client, settings)
        except ApiRateLimited as exc:
            return now + timedelta(seconds=max(exc.retry_after, 1.0))
        except (ApiAuthError, ApiPermissionError) as exc:
            log.warning(
                "user %s: %s refused the token (%s)", state.user_id, exc.service, exc.detail
            )
            return now + BROKEN_TOKEN_RETRY
        except ApiError as exc:
            state.failures += 1
            delay = min(self.max_backoff, self.interval(state, now) * 2**state.failures)
            log.info(
                "user %s: %s failed (%s), next in %.0f s", state.user_id, self.name, exc, delay
            )
            return now + timedelta(seconds=delay)
        state.failures = 0
        return now + timedelta(seconds=self.interval(state, now))


async def read_settings(session: AsyncSession, user_id: int) -> NotificationSettings:
    """The user's notification settings, or the defaults; jobs only read (several run at once)."""
    found = await session.get(NotificationSettings, user_id)
    if found is not None:
        return found
    return NotificationSettings(
        user_id=user_id,
        codes=True,
        sms_status=True,
        devices=True,
        rent_expiry=True,
        low_balance=False,
    )
