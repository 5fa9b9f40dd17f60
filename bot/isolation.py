"""One update of a dialog at a time over every instance, with locks a dead instance soon lets go.

aiogram's `RedisEventIsolation` takes a lock that lives up to 60 s: when the instance handling an
update is killed, the user's next update waits that long. Here a lock lives `ttl` seconds and is
renewed every `renew_every` seconds while its update runs, so a handler that takes longer keeps
it, and the lock of a killed instance is gone within `ttl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiogram.fsm.storage.base import BaseEventIsolation, KeyBuilder, StorageKey

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.lock import Lock

log = logging.getLogger(__name__)
TTL = 5.0
RENEW_EVERY = 1.5
RETRY_EVERY = 0.05  # s between tries of a lock another update holds


class RenewedRedisIsolation(BaseEventIsolation):
    def __init__(
        self,
        redis: Redis,
        key_builder: KeyBuilder,
        *,
        ttl: float = TTL,
        renew_every: float = RENEW_EVERY,
    ) -> None:
        self.redis = redis
        self.key_builder = key_builder
        self.ttl = ttl
        self.renew_every = renew_every

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        name = self.key_builder.build(key, "lock")
        lock = self.redis.lock(name, timeout=self.ttl, sleep=RETRY_EVERY, thread_local=False)
        await lock.acquire()
        done = asyncio.Event()
        renewal = asyncio.create_task(self._renew(lock, done), name=f"lock-renewal:{name}")
        try:
            yield
        finally:
            # the event ends the renewal even where a cancel is lost inside redis-py's waits
            done.set()
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await self._release(lock)

    async def _renew(self, lock: Lock, done: asyncio.Event) -> None:
        from redis.exceptions import LockNotOwnedError, RedisError

        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.renew_every)
            if done.is_set():
                return
            try:
                await lock.reacquire()
            except LockNotOwnedError:  # expired while Redis could not be reached, or taken
                log.warning("the lock of a dialog ran out while its update was handled")
                return
            except (RedisError, OSError) as exc:  # tried again at the next turn
                log.warning("a dialog's lock could not be renewed: %s", exc)

    @staticmethod
    async def _release(lock: Lock) -> None:
        from redis.exceptions import LockError, RedisError

        try:
            await lock.release()
        except LockError:  # it ran out already
            pass
        except (RedisError, OSError) as exc:  # it runs out by itself
            log.warning("a dialog's lock could not be let go: %s", exc)

    async def close(self) -> None:
        """The Redis client belongs to the dialog storage, which closes it."""
