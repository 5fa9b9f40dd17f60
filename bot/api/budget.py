"""One GotSMS request budget per token for every instance of a deployment, kept in Redis.

Each token (known only by the hash `RateLimits.key` makes of it) has two keys: what the service
last said of its budget (`X-RateLimit-*`, `Retry-After`), as any instance saw it, and a log of
the requests the instances made with it in the last window. A request goes only while the log
holds fewer than the limit (so even before the first answer the instances together stay under
it) and the service has not said to wait; the poller's own check (`wait`) leaves the user's
reserve too. Each decision is one Lua script on Redis's clock.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
LIMIT = 30  # GotSMS's requests a minute per token, until an answer says otherwise
WINDOW = 61.0  # s: GotSMS counts 60 s; one more for requests on their way there
TIMES = frozenset({"reset_at", "blocked_until"})  # stored as ms of the unix clock

# KEYS: 1 what the service said (a hash), 2 the log of requests (a sorted set of request ids by
# time). ARGV: 1 the limit it has not said yet, 2 requests to leave to others, 3 the window (ms),
# 4 this request's id, or '' to only ask. Returns 0 (counted, when an id was given) or the wait
# in ms.
ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local said = redis.call('HMGET', KEYS[1], 'limit', 'remaining', 'reset_at', 'blocked_until')
local limit = tonumber(said[1]) or tonumber(ARGV[1])
local remaining, reset_at = tonumber(said[2]), tonumber(said[3])
local keep, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = (tonumber(said[4]) or 0) - now
if remaining and reset_at and remaining <= keep and reset_at > now then
  wait = math.max(wait, reset_at - now)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local over = redis.call('ZCARD', KEYS[2]) - (limit - keep)
if over >= 0 then
  local frees = redis.call('ZRANGE', KEYS[2], over, over, 'WITHSCORES')
  wait = math.max(wait, tonumber(frees[2]) + window - now, 1)
end
if wait > 0 then
  return math.ceil(wait)
end
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], window)
end
return 0
"""


class RedisBudget:
    """The shared side of `RateLimits`. While Redis cannot be reached, each instance keeps its
    own bookkeeping only (one warning per episode): the service's 429s still hold it back."""

    def __init__(self, redis: Redis, namespace: str, *, limit: int = LIMIT) -> None:
        self.redis = redis
        self.prefix = f"{namespace}:gotsms"
        self.limit = limit
        self._admit = redis.register_script(ADMIT)
        self._down = False

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}:{key}:said", f"{self.prefix}:{key}:sent"]

    async def admit(self, key: str, keep: int = 0) -> float:
        """Counts one request of the token and returns 0, or returns how long to wait first
        (seconds; nothing counted); `keep`: requests to leave to others."""
        return await self._ask(key, keep, uuid.uuid4().hex)

    async def wait(self, key: str, keep: int) -> float:
        """How long until a request that leaves `keep` of the budget to others may go."""
        return await self._ask(key, keep, "")

    async def _ask(self, key: str, keep: int, request: str) -> float:
        from redis.exceptions import RedisError

        args: list[int | float | str] = [self.limit, keep, int(WINDOW * 1000), request]
        try:
            wait_ms = await self._admit(keys=self._keys(key), args=args)
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return 0.0
        self._back()
        return int(wait_ms) / 1000.0

    async def publish(self, key: str, said: Mapping[str, float]) -> None:
        """What one answer said of the token's budget (unix seconds), for every instance."""
        from redis.exceptions import RedisError

        if not said:
            return
        name = self._keys(key)[0]
        fields = {k: int(v * 1000) if k in TIMES else int(v) for k, v in said.items()}
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(name, mapping=fields)  # type: ignore[arg-type]
                pipe.pexpire(name, int(WINDOW * 2000))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return
        self._back()

    def _lost(self, error: BaseException) -> None:
        if not self._down:
            log.warning("Redis unreachable (%s): the GotSMS budget is counted per instance", error)
        self._down = True

    def _back(self) -> None:
        if self._down:
            log.info("Redis reachable again: the GotSMS budget is shared again")
        self._down = False
