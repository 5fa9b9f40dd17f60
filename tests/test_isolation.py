"""Event isolation over instances through a real Redis: one update of a dialog at a time, a lock
a killed instance held gone within seconds, and one a live handler holds kept for as long as
the handler runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from redis.asyncio import Redis

from bot.app import build_deps, create_dispatcher
from bot.config import Settings
from bot.isolation import RenewedRedisIsolation
from tests.shared_redis import Shared
from tests.shared_redis import shared as shared  # the fixture

BOT_ID = 123456


def key(user_id: int) -> StorageKey:
    return StorageKey(bot_id=BOT_ID, chat_id=user_id, user_id=user_id)


@pytest.fixture
async def instances(shared: Shared) -> AsyncIterator[list[RenewedRedisIsolation]]:
    """Two instances' isolations, each with its own Redis connection, on one key prefix."""
    keys = DefaultKeyBuilder(prefix=shared.namespace, with_destiny=True)
    clients: list[Redis] = [shared.client(), shared.client()]
    yield [RenewedRedisIsolation(redis, keys) for redis in clients]
    for redis in clients:
        await redis.aclose()


async def waited_for(isolation: RenewedRedisIsolation, user_id: int) -> float:
    """How long it took to get the user's lock (let go at once)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with isolation.lock(key(user_id)):
        return loop.time() - began


async def killed_while_holding(
    isolation: RenewedRedisIsolation, user_id: int
) -> contextlib.AbstractAsyncContextManager[None]:
    """Takes the lock and dies as a SIGKILL would: no renewal any more, no release (until the
    test lets go of what it returns)."""
    held = isolation.lock(key(user_id))
    await held.__aenter__()
    for task in asyncio.all_tasks():
        if task.get_name().startswith("lock-renewal:") and task.get_name().endswith(
            f":{user_id}:{user_id}:default:lock"
        ):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return held


async def holding_for(isolation: RenewedRedisIsolation, user_id: int, seconds: float) -> None:
    async with isolation.lock(key(user_id)):
        await asyncio.sleep(seconds)


async def test_a_killed_holders_lock_goes_and_a_live_ones_stays(
    instances: list[RenewedRedisIsolation],
) -> None:
    dead, live = 701, 702
    killed, alive = instances
    corpse = await killed_while_holding(killed, dead)
    handler = asyncio.create_task(holding_for(alive, live, 12))
    await asyncio.sleep(0.2)
    behind_dead, behind_live = await asyncio.gather(
        waited_for(alive, dead), waited_for(killed, live)
    )
    await handler
    await corpse.__aexit__(None, None, None)  # its lock was gone long since: nothing happens
    assert behind_dead <= 6, "the dead instance's user answered within a few seconds"
    assert behind_live >= 11, "a handler taking 12 s kept its user's lock past the lock's TTL"


async def test_two_updates_of_a_user_never_run_at_once(
    instances: list[RenewedRedisIsolation],
) -> None:
    running: set[int] = set()
    overlaps: list[int] = []
    order: list[tuple[str, int]] = []

    async def update(isolation: RenewedRedisIsolation, user_id: int, n: int) -> None:
        async with isolation.lock(key(user_id)):
            if user_id in running:
                overlaps.append(user_id)
            running.add(user_id)
            order.append(("in", n))
            await asyncio.sleep(0.1)
            running.discard(user_id)

    users = [801, 802]
    await asyncio.gather(*(update(instances[n % 2], users[n % 4 // 2], n) for n in range(12)))
    assert not overlaps
    assert len(order) == 12


async def test_a_dialog_lock_lets_go_at_once_after_the_update(
    instances: list[RenewedRedisIsolation], shared: Shared
) -> None:
    await holding_for(instances[0], 901, 0)
    assert await waited_for(instances[1], 901) < 0.5
    assert not [k async for k in shared.redis.scan_iter(match=f"{shared.namespace}:*")]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("lock-renewal:")]


async def test_the_bot_isolates_updates_so_when_dialogs_live_in_redis(
    settings: Settings, shared: Shared
) -> None:
    from tests.shared_redis import REDIS_URL

    deps = await build_deps(settings.model_copy(update={"redis_url": REDIS_URL}))
    dp = create_dispatcher(deps, redis_prefix=shared.namespace)
    try:
        assert isinstance(dp.fsm.events_isolation, RenewedRedisIsolation)
    finally:
        await dp.fsm.storage.close()
        await dp.fsm.events_isolation.close()
        await deps.close()
