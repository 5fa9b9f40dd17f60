"""The GotSMS budget of a token shared by the instances through a real Redis: together they never
go over the service's 30 requests a minute, the poller of one leaves the user's reserve to the
commands handled by another, and a 429 one instance got holds back all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.api.budget import RedisBudget
from bot.api.errors import ApiRateLimited
from bot.api.gotsms import GotSMSClient
from bot.api.http import HttpClient, RateLimits
from bot.poller.jobs import GOTSMS_RESERVE
from tests.conftest import GOTSMS_TOKEN
from tests.fakes.gotsms import FakeGotSMS
from tests.shared_redis import Shared
from tests.shared_redis import shared as shared  # the fixture

Instances = list[HttpClient]


@pytest.fixture
async def instances(shared: Shared) -> AsyncIterator[Instances]:
    """Two instances' HTTP layers, each with its own Redis connection, on one namespace."""
    clients = [shared.client(), shared.client()]
    https = [HttpClient(budget=RedisBudget(redis, shared.namespace)) for redis in clients]
    yield https
    for http, redis in zip(https, clients, strict=True):
        await http.close()
        await redis.aclose()


def gotsms_of(http: HttpClient, fake: FakeGotSMS) -> GotSMSClient:
    return GotSMSClient(http, fake.url, GOTSMS_TOKEN)


async def calls(client: GotSMSClient, count: int) -> tuple[int, int]:
    """`count` account reads at once: (answered, refused before sending)."""
    results = await asyncio.gather(
        *(client.account() for _ in range(count)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ApiRateLimited)]
    assert len(refused) + sum(not isinstance(r, BaseException) for r in results) == count
    return count - len(refused), len(refused)


async def test_two_instances_together_stay_within_the_tokens_budget(
    instances: Instances, gotsms: FakeGotSMS
) -> None:
    first, second = (gotsms_of(http, gotsms) for http in instances)
    (a, _), (b, _) = await asyncio.gather(calls(first, 25), calls(second, 25))
    assert a + b == 30, "the instances together use the whole budget, no more"
    assert gotsms.max_calls_in_window(GOTSMS_TOKEN) == 30
    assert not [r for r in gotsms.requests if r.status == 429], "never refused by the service"
    assert await calls(second, 1) == (0, 1), "and no request goes until the window moves on"
    assert gotsms.max_calls_in_window(GOTSMS_TOKEN) == 30


async def test_one_instances_poller_leaves_the_reserve_the_others_commands_used(
    instances: Instances, gotsms: FakeGotSMS
) -> None:
    web, worker = (gotsms_of(http, gotsms) for http in instances)
    assert await worker.budget_wait(GOTSMS_RESERVE) == 0
    assert await calls(web, 30 - GOTSMS_RESERVE) == (30 - GOTSMS_RESERVE, 0)
    assert worker.quota().remaining is None, "the worker itself never heard from GotSMS"
    wait = await worker.budget_wait(GOTSMS_RESERVE)
    assert 55 < wait <= 61, "its polls wait until the oldest request leaves the minute"
    assert await worker.budget_wait(0) == 0, "a user's own command may still go"
    assert await calls(worker, GOTSMS_RESERVE + 2) == (GOTSMS_RESERVE, 2)
    assert gotsms.max_calls_in_window(GOTSMS_TOKEN) == 30


async def test_what_one_instance_heard_holds_back_the_other(
    instances: Instances, gotsms: FakeGotSMS
) -> None:
    first, second = (gotsms_of(http, gotsms) for http in instances)
    gotsms.fail_next("/account", 429, retry_after=30)
    with pytest.raises(ApiRateLimited):
        await first.account()
    with pytest.raises(ApiRateLimited) as caught:
        await second.account()
    assert 25 < caught.value.retry_after <= 30
    assert len(gotsms.requests_for(GOTSMS_TOKEN)) == 1, "the second never asked"
    other = GotSMSClient(instances[1], gotsms.url, "another-token-000000")
    assert await other.budget_wait(GOTSMS_RESERVE) == 0, "one token's limit is its own"


async def test_the_shared_budget_is_keyed_by_the_tokens_hash_only(
    instances: Instances, gotsms: FakeGotSMS, shared: Shared
) -> None:
    await gotsms_of(instances[0], gotsms).account()
    keys = [key.decode() async for key in shared.redis.scan_iter(match=f"{shared.namespace}:*")]
    digest = RateLimits.key("gotsms", GOTSMS_TOKEN)
    assert sorted(keys) == sorted(
        f"{shared.namespace}:gotsms:{digest}:{part}" for part in ("said", "sent")
    )
    for key in keys:
        assert GOTSMS_TOKEN not in str(await shared.redis.dump(key))
        assert 0 < await shared.redis.pttl(key) <= 122_000, "nothing grows without end"


async def test_without_redis_each_instance_keeps_its_own_books(
    gotsms: FakeGotSMS, caplog: pytest.LogCaptureFixture
) -> None:
    from redis.asyncio import Redis

    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    http = HttpClient(budget=RedisBudget(gone, "nowhere"))
    try:
        client = gotsms_of(http, gotsms)
        assert await calls(client, 3) == (3, 0), "commands still answered"
    finally:
        await http.close()
        await gone.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings


async def test_a_polls_reserved_request_is_counted_once_over_the_instances(
    instances: Instances, gotsms: FakeGotSMS, shared: Shared
) -> None:
    worker = gotsms_of(instances[0], gotsms)
    log = f"{shared.namespace}:gotsms:{RateLimits.key('gotsms', GOTSMS_TOKEN)}:sent"
    assert await worker.reserve(GOTSMS_RESERVE) == 0
    assert await shared.redis.zcard(log) == 1, "counted when reserved"
    await worker.account()
    assert await shared.redis.zcard(log) == 1, "the request itself is not counted again"
    await worker.account()
    assert await shared.redis.zcard(log) == 2
    assert await worker.reserve(GOTSMS_RESERVE) == 0
    worker.unreserve()  # the poll made no request after all
    await worker.account()
    assert await shared.redis.zcard(log) == 4, "an unused reservation counts: never one too few"
    assert len(gotsms.requests_for(GOTSMS_TOKEN)) == 3


async def test_a_reservation_leaves_the_users_reserve_to_the_other_instance(
    instances: Instances, gotsms: FakeGotSMS
) -> None:
    web, worker = (gotsms_of(http, gotsms) for http in instances)
    assert await calls(web, 30 - GOTSMS_RESERVE) == (30 - GOTSMS_RESERVE, 0)
    assert await worker.reserve(GOTSMS_RESERVE) > 55, "no poll takes the user's reserve"
    assert await worker.reserve(0) == 0, "a command's request may still go"


async def test_answers_are_shared_when_only_the_service_knows_something(
    instances: Instances, gotsms: FakeGotSMS, shared: Shared
) -> None:
    """The shared log counts what the instances spend; an answer is written for the others when
    it says the limit, a wait or a budget running low (the token spent elsewhere)."""
    said = f"{shared.namespace}:gotsms:{RateLimits.key('gotsms', GOTSMS_TOKEN)}:said"
    first = gotsms_of(instances[0], gotsms)
    await first.account()
    assert await shared.redis.hget(said, "limit") == b"30", "the first answer says the limit"
    assert await shared.redis.hget(said, "remaining") == b"29"
    for _ in range(5):
        await first.account()
    assert await shared.redis.hget(said, "remaining") == b"29", "plenty left: nothing written"
    for _ in range(10):
        await first.account()
    assert await shared.redis.hget(said, "remaining") == b"14", "running low: every answer"
