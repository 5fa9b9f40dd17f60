"""The API base: error mapping, retries only where safe, 429 handling, rate-limit bookkeeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from bot.api.errors import (
    ApiAuthError,
    ApiBadResponse,
    ApiNotFound,
    ApiPermissionError,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
)
from bot.api.gosms import GoSMSClient
from bot.api.gotsms import GotSMSClient, Reason
from bot.api.http import HttpClient, RetryPolicy

TOKEN = "tok-very-secret-123456"
Reply = Callable[[web.Request], Any]


@dataclass
class Script:
    """Answers the n-th request with the n-th reply (the last one repeats)."""

    replies: list[Reply] = field(default_factory=list)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, request.headers.get("Authorization")))
        reply = self.replies[min(len(self.seen), len(self.replies)) - 1]
        result = reply(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, web.StreamResponse)
        return result


def json(status: int, body: Any, **headers: str) -> Reply:
    return lambda _request: web.json_response(body, status=status, headers=headers)


def slow(seconds: float) -> Reply:
    async def reply(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.json_response({"success": True, "data": {"balance": 1}})

    return reply


@pytest.fixture
async def server() -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield script, f"http://127.0.0.1:{port}/api/"
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient(
        RetryPolicy(attempts=3, backoff=0.01, attempt_timeout=0.3, deadline=3, max_inline_wait=1.5)
    )
    yield client
    await client.close()


OK_ACCOUNT = json(200, {"success": True, "data": {"balance": 125.5}})


async def test_bearer_header_and_base_url_with_trailing_slash(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [OK_ACCOUNT]
    account = await GotSMSClient(http, url, TOKEN).account()
    assert str(account.balance) == "125.5"
    assert script.seen == [("GET", "/api/account", f"Bearer {TOKEN}")]


@pytest.mark.parametrize(
    ("status", "message", "error", "code"),
    [
        (401, "Unauthenticated.", ApiAuthError, "unauthenticated"),
        (403, "This action is unauthorized.", ApiPermissionError, "forbidden"),
        (404, "Rent not found.", ApiNotFound, None),
        (422, "No number available for this service.", ApiRejected, Reason.OUT_OF_STOCK),
        (422, "Refund not available for this rent.", ApiRejected, Reason.REFUND_UNAVAILABLE),
        (422, "Insufficient balance.", ApiRejected, Reason.INSUFFICIENT_BALANCE),
        (
            422,
            "Current rent plan must be daily for this transition endpoint.",
            ApiRejected,
            Reason.TRANSITION_DAILY_ONLY,
        ),
        (
            422,
            "Auto renewal can be toggled only for monthly 1/3/6/12 plans.",
            ApiRejected,
            Reason.RENEWAL_MONTHLY_ONLY,
        ),
    ],
)
async def test_gotsms_errors_are_typed(
    server: tuple[Script, str],
    http: HttpClient,
    status: int,
    message: str,
    error: type[Exception],
    code: str | None,
) -> None:
    script, url = server
    script.replies = [json(status, {"success": False, "message": message})]
    with pytest.raises(error) as caught:
        await GotSMSClient(http, url, TOKEN).create_rent("plan")
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.detail == message  # type: ignore[attr-defined]
    assert len(script.seen) == 1, "a refused request is not repeated"


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (401, 1003, ApiAuthError),
        (403, 1002, ApiAuthError),
        (403, 3000, ApiAuthError),
        (403, 1011, ApiPermissionError),
        (403, 1006, ApiRejected),
        (404, 1008, ApiNotFound),
        (400, 1010, ApiRejected),
        (400, 2005, ApiRejected),
    ],
)
async def test_gosms_errors_carry_the_code(
    server: tuple[Script, str], http: HttpClient, status: int, code: int, error: type[Exception]
) -> None:
    script, url = server
    script.replies = [json(status, {"errors": {"code": code, "message": "text"}})]
    with pytest.raises(error) as caught:
        await GoSMSClient(http, url, TOKEN).get_sms("6654a4e8f1527149588c89f2")
    assert caught.value.code == code  # type: ignore[attr-defined]


async def test_idempotent_calls_retry_5xx_then_succeed(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [json(502, {}), json(500, {}), OK_ACCOUNT]
    assert (await GotSMSClient(http, url, TOKEN).account()).balance == 125.5
    assert len(script.seen) == 3


async def test_payments_are_never_repeated_on_5xx(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [json(500, {"message": "Server Error"})]
    with pytest.raises(ApiUnavailable) as caught:
        await GotSMSClient(http, url, TOKEN).create_rent("plan")
    assert caught.value.uncertain
    assert len(script.seen) == 1


async def test_timeouts_retry_reads_and_never_payments(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [slow(1.0), OK_ACCOUNT]
    assert (await GotSMSClient(http, url, TOKEN).account()).balance == 125.5
    script.seen.clear()
    script.replies = [slow(1.0)]
    with pytest.raises(ApiUnavailable) as caught:
        await GotSMSClient(http, url, TOKEN).refund("rent")
    assert caught.value.uncertain
    assert len(script.seen) == 1


async def test_down_service_answers_within_the_deadline(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [slow(5.0)]
    started = time.monotonic()
    with pytest.raises(ApiUnavailable):
        await GotSMSClient(http, url, TOKEN).account()
    assert time.monotonic() - started < http.policy.deadline + 0.5


async def test_unreachable_service_is_unavailable_and_payment_is_retried_safely(
    http: HttpClient,
) -> None:
    client = GotSMSClient(http, "http://127.0.0.1:9/api", TOKEN)
    with pytest.raises(ApiUnavailable) as caught:
        await client.create_rent("plan")
    assert not caught.value.uncertain, "a refused connection never reached the service"


async def test_short_retry_after_is_waited_out(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [
        json(429, {"message": "Too Many Attempts."}, **{"Retry-After": "1"}),
        OK_ACCOUNT,
    ]
    started = time.monotonic()
    assert (await GotSMSClient(http, url, TOKEN).account()).balance == 125.5
    assert time.monotonic() - started >= 0.9
    assert len(script.seen) == 2


async def test_long_retry_after_is_raised_and_remembered(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [json(429, {"message": "Too Many Attempts."}, **{"Retry-After": "30"})]
    client = GotSMSClient(http, url, TOKEN)
    with pytest.raises(ApiRateLimited) as caught:
        await client.account()
    assert 28 <= caught.value.retry_after <= 30
    with pytest.raises(ApiRateLimited):
        await client.account()
    assert len(script.seen) == 1, "no request is sent while the service asked us to wait"
    other = GotSMSClient(http, url, "another-token-000000")
    script.replies = [OK_ACCOUNT]
    await other.account()  # one user's limit never blocks another


async def test_rate_limit_headers_are_tracked_per_token(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    reset = int(time.time()) + 40
    headers = {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset),
    }
    script.replies = [json(200, {"success": True, "data": {"balance": 1}}, **headers)]
    client = GotSMSClient(http, url, TOKEN)
    await client.account()
    quota = client.quota()
    assert (quota.limit, quota.remaining, quota.reset_at) == (30, 0, reset)
    with pytest.raises(ApiRateLimited):
        await client.account()
    assert len(script.seen) == 1


async def test_unexpected_answers_are_typed(server: tuple[Script, str], http: HttpClient) -> None:
    script, url = server
    script.replies = [json(200, {"success": True, "data": {"no_balance": 1}})]
    with pytest.raises(ApiBadResponse):
        await GotSMSClient(http, url, TOKEN).account()
    script.replies = [lambda _r: web.Response(status=503, text="<html>Bad gateway</html>")]
    with pytest.raises(ApiUnavailable):
        await GotSMSClient(http, url, TOKEN).account()


async def test_the_token_never_leaks_into_errors(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [json(422, {"success": False, "message": f"Token {TOKEN} is odd"})]
    client = GotSMSClient(http, url, TOKEN)
    with pytest.raises(ApiRejected) as caught:
        await client.account()
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caught.value.detail
    assert TOKEN not in repr(client)


async def test_gosms_device_calls_send_both_id_keys_and_is_active(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    bodies: list[Any] = []

    async def record(request: web.Request) -> web.StreamResponse:
        bodies.append(await request.json())
        return web.Response(status=204)

    script.replies = [record]
    client = GoSMSClient(http, url, TOKEN)
    await client.set_device_active("6622a8bbd963898821ebf934", False)
    await client.delete_sms("6654a4e8f1527149588c89f2")
    assert bodies[0] == {
        "id": "6622a8bbd963898821ebf934",
        "device_id": "6622a8bbd963898821ebf934",
        "is_active": False,
    }
    assert script.seen[1][0] == "DELETE"
    assert bodies[1] == {"id": "6654a4e8f1527149588c89f2"}


SMS_ID = "6654a4e8f1527149588c89f2"
GOSMS_429 = {"errors": {"code": 429, "message": "Too Many Requests"}}


@pytest.mark.parametrize("headers", [{"Retry-After": "1"}, {}], ids=["retry-after", "no-header"])
async def test_gosms_429_waits_before_its_one_retry(
    server: tuple[Script, str], http: HttpClient, headers: dict[str, str]
) -> None:
    script, url = server
    arrivals: list[float] = []

    def limited(_request: web.Request) -> web.StreamResponse:
        arrivals.append(time.monotonic())
        return web.json_response(GOSMS_429, status=429, headers=headers)

    def ok(_request: web.Request) -> web.StreamResponse:
        arrivals.append(time.monotonic())
        return web.json_response({"id": SMS_ID, "status": 2})

    script.replies = [limited, ok]
    sms = await GoSMSClient(http, url, TOKEN).get_sms(SMS_ID)
    assert sms.status == 2
    assert len(script.seen) == 2
    assert arrivals[1] - arrivals[0] >= 0.9, "the retry waits the Retry-After (else 1 s)"


async def test_gosms_429_twice_is_raised_after_one_retry(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [json(429, GOSMS_429, **{"Retry-After": "1"})]
    with pytest.raises(ApiRateLimited) as caught:
        await GoSMSClient(http, url, TOKEN).get_sms(SMS_ID)
    assert len(script.seen) == 2, "one retry, not three requests into the same second"
    assert caught.value.retry_after >= 0.9


async def test_gosms_long_retry_after_is_raised_at_once(
    server: tuple[Script, str], http: HttpClient
) -> None:
    script, url = server
    script.replies = [json(429, GOSMS_429, **{"Retry-After": "20"})]
    with pytest.raises(ApiRateLimited) as caught:
        await GoSMSClient(http, url, TOKEN).get_sms(SMS_ID)
    assert len(script.seen) == 1
    assert caught.value.retry_after == 20
