"""What every polling job shares: load the users' state and tokens, poll, schedule the next time.

The scheduler loads what a batch of due polls needs in a few queries (`load`); each poll then
only reads what it must and hands its writes to `Writes` (bot/poller/writes.py).

A job never raises: any failure of a poll (the API, a malformed answer, the database) backs off
that user only (one broken account never slows the others), a 429 waits what the service asked,
a refused token is retried rarely, a token that cannot be decrypted is not polled at all: its
user is told once to connect it again.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.api.clients import Clients
from bot.api.errors import ApiAuthError, ApiError, ApiPermissionError, ApiRateLimited
from bot.api.gosms import GoSMSClient
from bot.api.gotsms import GotSMSClient
from bot.db.crypto import TokenCipher, TokenDecryptError
from bot.db.models import Credential, NotificationSettings, Service, utcnow
from bot.db.outbox import PollState
from bot.db.outbox_repo import PollStateRepo
from bot.db.repo import default_settings
from bot.poller.writes import Pending, Writes

log = logging.getLogger(__name__)
MAX_BACKOFF = 300.0
BROKEN_TOKEN_RETRY = timedelta(hours=1)
UNREADABLE_RETRY = timedelta(hours=1)  # decrypting again costs no request
TOKEN_BROKEN = "token_broken"  # the push that asks to connect the token again
GOTSMS_RESERVE = 8
SPREAD, SPREAD_FROM = 0.2, 10.0
Client = GotSMSClient | GoSMSClient


@dataclass(frozen=True)
class Unreadable:
    """A stored token that cannot be decrypted (the key changed, the row is damaged)."""

    connected_at: datetime | None


@dataclass
class Target:
    """One due poll with what it needs, loaded with the others of its batch."""

    state: PollState  # detached: the poll changes it, `Writes` stores it
    token: str
    settings: NotificationSettings
    leased: datetime
    extra: Any = None


@dataclass
class Poll:
    """What `Job.work` gets: the state to update, a session to read, the writes to hand over."""

    state: PollState
    settings: NotificationSettings
    session: AsyncSession
    pending: Pending
    extra: Any = None


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
        writes: Writes | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.cipher = cipher
        self.clients = clients
        self.on_queued = on_queued
        self.writes = writes or Writes(session_factory)
        self.rng = random.Random()  # noqa: S311 (spreading poll times, not a secret)
        if every is not None:
            self.every = every

    def interval(self, state: PollState, now: datetime) -> float:
        """Seconds until the next poll after a good one."""
        return self.every

    @abstractmethod
    def wanted(self, settings: NotificationSettings) -> bool:
        """Whether the user wants what this job finds (else it costs no request)."""

    @abstractmethod
    async def work(self, poll: Poll, client: Client) -> None:
        """One poll: call the API, hand over what is new. ApiError escapes to the base."""

    async def preload(self, session: AsyncSession, user_ids: Sequence[int]) -> dict[int, Any]:
        """What `work` needs of each user beyond state, token and settings (`Poll.extra`)."""
        return {}

    async def quota_wait(self, client: Client) -> datetime | None:
        """When only the user's reserve of the GotSMS budget is left (over every instance, when
        they share it), wait until a request may go without taking it; else the poll's first
        request is counted already."""
        if self.service is not Service.GOTSMS:
            return None
        wait = await client.reserve(self.reserve)
        return utcnow() + timedelta(seconds=wait) if wait > 0 else None

    async def load(
        self, session: AsyncSession, states: Sequence[PollState], leases: Sequence[datetime]
    ) -> list[Target]:
        """Targets for due states, in a few queries; a user whose token is gone is forgotten."""
        ids = [state.user_id for state in states]
        tokens = await self._tokens(session, ids)
        settings = await read_many_settings(session, ids)
        extras = await self.preload(session, ids)
        targets = []
        for state, leased in zip(states, leases, strict=True):
            token = tokens.get(state.user_id)
            if token is None:
                self.writes.forget(state.user_id, self.name)
                continue
            if isinstance(token, Unreadable):
                self._unreadable(state, leased, token)
                continue
            extra = extras.get(state.user_id)
            targets.append(Target(state, token, settings[state.user_id], leased, extra))
        return targets

    async def _tokens(
        self, session: AsyncSession, user_ids: Sequence[int]
    ) -> dict[int, str | Unreadable]:
        query = select(
            Credential.user_id, Credential.token_encrypted, Credential.connected_at
        ).where(Credential.user_id.in_(user_ids), Credential.service == self.service.value)
        tokens: dict[int, str | Unreadable] = {}
        for user_id, blob, connected_at in (await session.execute(query)).all():
            try:
                tokens[user_id] = self.cipher.decrypt(blob)
            except TokenDecryptError:
                tokens[user_id] = Unreadable(connected_at)
        return tokens

    def _unreadable(self, state: PollState, leased: datetime, token: Unreadable) -> None:
        """No poll; one push per connection of the token asks to connect it again (/token
        starts the polls anew). Rechecked rarely, in case the old key comes back."""
        if state.failures == 0:
            log.warning(
                "user %s: the stored %s token cannot be decrypted; %s polls wait for /token",
                state.user_id,
                self.service.value,
                self.name,
            )
        state.failures += 1
        state.next_at = utcnow() + UNREADABLE_RETRY
        connected = token.connected_at.isoformat() if token.connected_at else ""
        pending = Pending()
        pending.enqueue(
            state.user_id,
            TOKEN_BROKEN,
            f"{self.service.value}:{connected}",
            {"service": self.service.value},
        )
        self.writes.add(state, leased, pending, self.on_queued)

    async def poll(self, user_id: int) -> None:
        """One poll of one user now, its writes done when it returns (tests, and a nudge)."""
        async with self.session_factory() as session:
            state = await PollStateRepo(session).get(user_id, self.name)
            targets = [] if state is None else await self.load(session, [state], [state.next_at])
        for target in targets:
            await self.run(target)
        await self.writes.settle()

    async def run(self, target: Target) -> None:
        state, now = target.state, utcnow()
        pending = Pending()
        if self.wanted(target.settings):
            async with self.session_factory() as session:
                poll = Poll(state, target.settings, session, pending, target.extra)
                state.next_at = await self._poll(poll, self._client(target.token), now)
        else:
            state.next_at = now + timedelta(seconds=self.interval(state, now))
        self.writes.add(state, target.leased, pending, self.on_queued)

    def _client(self, token: str) -> Client:
        if self.service is Service.GOTSMS:
            return self.clients.gotsms(token)
        return self.clients.gosms(token)

    async def _poll(self, poll: Poll, client: Client, now: datetime) -> datetime:
        waiting = await self.quota_wait(client)
        if waiting is not None:
            return waiting
        try:
            return await self._work(poll, client, now)
        finally:
            client.unreserve()  # a poll that made no request leaves no reserved one behind

    async def _work(self, poll: Poll, client: Client, now: datetime) -> datetime:
        state = poll.state
        try:
            await self.work(poll, client)
        except ApiRateLimited as exc:
            poll.pending.steps.clear()
            return now + timedelta(seconds=max(exc.retry_after, 1.0))
        except (ApiAuthError, ApiPermissionError) as exc:
            poll.pending.steps.clear()
            log.warning(
                "user %s: %s refused the token (%s)", state.user_id, exc.service, exc.detail
            )
            return now + BROKEN_TOKEN_RETRY
        except ApiError as exc:
            poll.pending.steps.clear()
            delay = self._back_off(state, now)
            log.info(
                "user %s: %s failed (%s), next in %.0f s", state.user_id, self.name, exc, delay
            )
            return now + timedelta(seconds=delay)
        except Exception as exc:  # a malformed answer, a naive datetime, a pool timeout
            poll.pending.steps.clear()
            delay = self._back_off(state, now)
            if state.failures == 1:  # one line per episode, not one per poll
                log.warning(
                    "user %s: %s poll failed (%s: %.200s), backing off (next in %.0f s)",
                    state.user_id,
                    self.name,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            return now + timedelta(seconds=delay)
        if state.failures:
            log.info("user %s: %s poll works again", state.user_id, self.name)
        state.failures = 0
        return now + timedelta(seconds=self.spread(self.interval(state, now)))

    def _back_off(self, state: PollState, now: datetime) -> float:
        """Seconds until the next try after a failed poll, growing with each failure."""
        state.failures += 1
        return min(self.max_backoff, self.interval(state, now) * 2.0**state.failures)

    def spread(self, seconds: float) -> float:
        """A long interval shortened by up to a fifth at random: users who were all polled at
        once (a start, a restart) drift apart instead of bunching their pushes every round."""
        if seconds < SPREAD_FROM:
            return seconds
        return seconds * (1 - SPREAD * self.rng.random())


async def read_many_settings(
    session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, NotificationSettings]:
    """The users' notification settings, or the defaults."""
    query = select(NotificationSettings).where(NotificationSettings.user_id.in_(user_ids))
    found = {row.user_id: row for row in (await session.scalars(query)).all()}
    return {user_id: found.get(user_id) or default_settings(user_id) for user_id in user_ids}
