"""The shared HTTP layer: one aiohttp session, timeouts, retries, 429 and rate-limit bookkeeping."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from multidict import CIMultiDict
from pydantic import BaseModel, ValidationError

from bot.api.budget import RedisBudget
from bot.api.errors import ApiBadResponse, ApiError, ApiRateLimited, ApiUnavailable

log = logging.getLogger(__name__)

JSON = Any
SHARE_BELOW = 15  # requests left of a token's budget under which every answer is shared
ErrorParser = Callable[[int, JSON, str], ApiError]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff: float = 0.4
    attempt_timeout: float = 6.0
    deadline: float = 12.0
    max_inline_wait: float = 3.0


@dataclass
class Quota:
    """What the service last said about one token's request budget."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    blocked_until: float = 0.0
    shared_remaining: int | None = None  # the last `remaining` written to the shared budget
    reserved: int = 0  # requests already counted in the shared budget and not yet made


@dataclass
class RateLimits:
    """Per-token bookkeeping of `X-RateLimit-*` and `Retry-After`, keyed by a hash of the token.

    With a `shared` budget (several instances) what any instance saw is written there, and a
    request goes only when the token's budget over all instances allows it."""

    quotas: dict[str, Quota] = field(default_factory=dict)
    shared: RedisBudget | None = None

    @staticmethod
    def key(service: str, token: str | None) -> str:
        digest = hashlib.sha256(f"{service}:{token or ''}".encode()).hexdigest()
        return digest[:24]

    def get(self, key: str) -> Quota:
        return self.quotas.setdefault(key, Quota())

    def wait_time(self, key: str, now: float) -> float:
        quota = self.quotas.get(key)
        if quota is None:
            return 0.0
        wait = quota.blocked_until - now
        if quota.remaining == 0 and quota.reset_at is not None:
            wait = max(wait, quota.reset_at - now)
        return max(wait, 0.0)

    def observe(
        self, key: str, headers: Mapping[str, str], status: int, now: float
    ) -> dict[str, float]:
        """Takes in what an answer said of the token's budget, and returns it."""
        quota = self.get(key)
        said: dict[str, float] = {}
        limit = _int_header(headers, "X-RateLimit-Limit")
        remaining = _int_header(headers, "X-RateLimit-Remaining")
        reset = _int_header(headers, "X-RateLimit-Reset")
        if limit is not None:
            quota.limit = said["limit"] = limit
        if remaining is not None:
            quota.remaining = said["remaining"] = remaining
        if reset is not None:
            quota.reset_at = said["reset_at"] = float(reset)
        if status == 429:
            retry_after = _int_header(headers, "Retry-After")
            wait = retry_after if retry_after is not None else 1
            quota.blocked_until = said["blocked_until"] = now + wait
        return said

    async def record(self, key: str, headers: Mapping[str, str], status: int, now: float) -> None:
        before = self.quotas.get(key)
        limit = before.limit if before is not None else None
        said = self.observe(key, headers, status, now)
        if self.shared is not None and self._worth_sharing(self.quotas[key], said, limit):
            self.quotas[key].shared_remaining = self.quotas[key].remaining
            await self.shared.publish(key, said)

    @staticmethod
    def _worth_sharing(quota: Quota, said: Mapping[str, float], limit: int | None) -> bool:
        """The shared log of requests already counts what the instances spend; what only the
        service knows is worth a write: a wait, another limit, or a budget running low (the
        requests the token made elsewhere) — and the first plenty after a low one."""
        if "blocked_until" in said or said.get("limit", limit) != limit:
            return True
        low = [r for r in (quota.remaining, quota.shared_remaining) if r is not None]
        return any(r <= SHARE_BELOW for r in low)

    async def admit(self, key: str, now: float) -> float:
        """0: a request of the token may go now (and is counted in the shared budget); else how
        many seconds to wait first."""
        quota = self.quotas.get(key)
        if quota is not None and quota.reserved > 0:
            quota.reserved -= 1
            return 0.0
        wait = self.wait_time(key, now)
        if wait > 0 or self.shared is None:
            return wait
        return await self.shared.admit(key)

    async def budget_wait(self, key: str, keep: int, now: float) -> float:
        """Seconds until a request that leaves `keep` of the token's budget to others may go
        (the poller leaves the user's reserve)."""
        wait = self._local_budget_wait(key, keep, now)
        if self.shared is not None:
            wait = max(wait, await self.shared.wait(key, keep))
        return wait

    async def reserve(self, key: str, keep: int, now: float) -> float:
        """`budget_wait` and `admit` in one decision: 0 when a request that leaves `keep` to
        others may go, and then it is counted already (the next `admit` of the token takes it);
        else the wait, nothing counted."""
        wait = max(self._local_budget_wait(key, keep, now), self.wait_time(key, now))
        if wait == 0 and self.shared is not None:
            wait = await self.shared.admit(key, keep)
        if wait == 0:
            self.get(key).reserved += 1
        return wait

    def unreserve(self, key: str) -> None:
        """A reserved request that was not made: it stays counted in the shared budget (a
        request too many, never one too few)."""
        quota = self.quotas.get(key)
        if quota is not None and quota.reserved > 0:
            quota.reserved -= 1

    def _local_budget_wait(self, key: str, keep: int, now: float) -> float:
        quota = self.quotas.get(key)
        if quota is not None and quota.remaining is not None and quota.reset_at is not None:
            return max(0.0, quota.reset_at - now) if quota.remaining <= keep else 0.0
        return 0.0


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Response:
    status: int
    data: JSON
    text: str
    headers: Mapping[str, str]


class HttpClient:
    """Owns the one aiohttp session of the process and the rate-limit bookkeeping (shared by
    the instances of a deployment through `budget`)."""

    def __init__(
        self, policy: RetryPolicy | None = None, *, budget: RedisBudget | None = None
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.rate_limits = RateLimits(shared=budget)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=200, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"Accept": "application/json"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def send(self, call: Call) -> Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.deadline
        limited = False
        for attempt in range(1, self.policy.attempts + 1):
            await self._respect_quota(call, deadline)
            try:
                response = await self._once(call, deadline)
            except (TimeoutError, aiohttp.ClientError) as exc:
                if not self._may_retry_failure(call, exc, attempt, deadline):
                    raise self._unavailable(call, exc) from None
                await self._backoff(attempt, deadline)
                continue
            if response.status == 429:
                wait = self._wait_after_429(call, response)
                if limited or attempt >= self.policy.attempts or not self._may_wait(wait, deadline):
                    raise ApiRateLimited(call.service, wait)
                limited = True  # a 429 gets one retry, after the wait it asked for
                await asyncio.sleep(wait)
                continue
            if response.status >= 500:
                if call.idempotent and attempt < self.policy.attempts and loop.time() < deadline:
                    await self._backoff(attempt, deadline)
                    continue
                raise ApiUnavailable(
                    call.service,
                    f"server error {response.status}",
                    status=response.status,
                    uncertain=not call.idempotent,
                )
            if response.status >= 400:
                raise call.parse_error(response.status, response.data, response.text)
            return response
        raise ApiUnavailable(call.service, "no attempts left", uncertain=not call.idempotent)

    def _wait(self, call: Call) -> float:
        return self.rate_limits.wait_time(call.quota_key, time.time())

    def _wait_after_429(self, call: Call, response: Response) -> float:
        retry_after = _int_header(response.headers, "Retry-After")
        asked = float(retry_after) if retry_after is not None and retry_after > 0 else 1.0
        return max(asked, self._wait(call))

    def _may_wait(self, wait: float, deadline: float) -> bool:
        remaining = deadline - asyncio.get_running_loop().time()
        return wait <= self.policy.max_inline_wait and wait <= remaining

    async def _respect_quota(self, call: Call, deadline: float) -> None:
        while (wait := await self._admit(call)) > 0:
            if not self._may_wait(wait, deadline):
                raise ApiRateLimited(call.service, wait)
            await asyncio.sleep(wait)

    async def _admit(self, call: Call) -> float:
        if not call.track_quota:
            return self._wait(call)
        return await self.rate_limits.admit(call.quota_key, time.time())

    async def _once(self, call: Call, deadline: float) -> Response:
        remaining = deadline - asyncio.get_running_loop().time()
        timeout = aiohttp.ClientTimeout(total=max(0.1, min(self.policy.attempt_timeout, remaining)))
        log.debug("%s %s %s", call.service, call.method, call.path)
        async with self.session().request(
            call.method,
            call.url,
            params=call.params,
            json=call.json,
            headers=call.headers,
            timeout=timeout,
        ) as raw:
            body = await raw.read()
            headers = CIMultiDict(raw.headers)
            status = raw.status
        if call.track_quota:
            await self.rate_limits.record(call.quota_key, headers, status, time.time())
        text = body.decode("utf-8", errors="replace")
        return Response(status=status, data=_json_or_none(text), text=text, headers=headers)

    def _may_retry_failure(
        self, call: Call, exc: BaseException, attempt: int, deadline: float
    ) -> bool:
        if attempt >= self.policy.attempts or asyncio.get_running_loop().time() >= deadline:
            return False
        # A refused connection never reached the service, so even a payment can be retried.
        return call.idempotent or isinstance(exc, aiohttp.ClientConnectorError)

    @staticmethod
    def _unavailable(call: Call, exc: BaseException) -> ApiUnavailable:
        never_sent = isinstance(exc, aiohttp.ClientConnectorError)
        reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        return ApiUnavailable(
            call.service, f"network error: {reason}", uncertain=not (call.idempotent or never_sent)
        )

    async def _backoff(self, attempt: int, deadline: float) -> None:
        delay = self.policy.backoff * 2 ** (attempt - 1) * (0.5 + random.random())  # noqa: S311
        remaining = deadline - asyncio.get_running_loop().time()
        await asyncio.sleep(max(0.0, min(delay, remaining - 0.1)))


def _json_or_none(text: str) -> JSON:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    url: str
    path: str
    headers: Mapping[str, str]
    params: Mapping[str, str] | None
    json: JSON
    idempotent: bool
    parse_error: ErrorParser
    quota_key: str
    track_quota: bool


class ApiClient(ABC):
    """Base of the service clients: base URL, Bearer auth, error parsing, typed answers."""

    service = "api"
    track_quota = False

    def __init__(self, http: HttpClient, base_url: str, token: str | None = None) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self.__token = token

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r}, token=<hidden>)"

    @property
    def quota_key(self) -> str:
        return RateLimits.key(self.service, self.__token)

    def quota(self) -> Quota:
        """What this instance last heard of the token's budget."""
        return self._http.rate_limits.get(self.quota_key)

    async def budget_wait(self, keep: int) -> float:
        """Seconds until a request that leaves `keep` of the token's budget to others may go,
        counted over every instance when they share the budget."""
        return await self._http.rate_limits.budget_wait(self.quota_key, keep, time.time())

    async def reserve(self, keep: int) -> float:
        """`budget_wait`, and when it is 0 the next request is counted already (a poll's
        first request: one decision of the shared budget instead of two)."""
        return await self._http.rate_limits.reserve(self.quota_key, keep, time.time())

    def unreserve(self) -> None:
        self._http.rate_limits.unreserve(self.quota_key)

    @abstractmethod
    def parse_error(self, status: int, data: JSON, text: str) -> ApiError:
        """Turn an error answer of the service into a typed error."""

    def _scrub(self, text: str) -> str:
        return text.replace(self.__token, "***") if self.__token else text

    def _safe_parse_error(self, status: int, data: JSON, text: str) -> ApiError:
        error = self.parse_error(status, data, text)
        error.detail = self._scrub(error.detail)
        error.args = (self._scrub(str(error.args[0])),) if error.args else ()
        return error

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: JSON = None,
        idempotent: bool | None = None,
        auth: bool = True,
    ) -> Response:
        headers = {"Authorization": f"Bearer {self.__token}"} if auth and self.__token else {}
        call = Call(
            service=self.service,
            method=method,
            url=self._base_url + path,
            path=path,
            headers=headers,
            params={k: str(v) for k, v in params.items()} if params else None,
            json=json,
            idempotent=method in ("GET", "HEAD") if idempotent is None else idempotent,
            parse_error=self._safe_parse_error,
            quota_key=self.quota_key,
            track_quota=self.track_quota,
        )
        return await self._http.send(call)

    def parse(self, model: type[ModelT], data: JSON) -> ModelT:
        try:
            return model.model_validate(data)
        except ValidationError:
            raise ApiBadResponse(self.service, f"unexpected answer for {model.__name__}") from None
