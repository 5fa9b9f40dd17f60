"""A real Redis for the tests of what instances share: a namespace of the test's own, its keys
deleted afterwards. Redis must answer: a skip locally, a failure with CI=true."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Shared:
    redis: Redis
    namespace: str

    def client(self) -> Redis:
        """Another connection to the same Redis, as another instance has (closed by the test)."""
        return Redis.from_url(REDIS_URL)


@pytest.fixture
async def shared() -> AsyncIterator[Shared]:
    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        message = f"Redis at {REDIS_URL} does not answer: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    place = Shared(redis, f"test-{uuid.uuid4().hex}")
    try:
        yield place
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{place.namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def most_within(times: list[float], window: float) -> int:
    """The most of `times` (sorted) that fall within any `window` seconds."""
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
