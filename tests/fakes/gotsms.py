"""A strict, in-process test double of the GotSMS REST API (``https://app.gotsms.org/api``).

The fake serves every endpoint of ``/work/shared/api/gotsms-api.txt`` on ``127.0.0.1`` with the
documented envelopes (``success``/``data``/``meta``/``message``) and the facts of
``product.md`` section 1.  It is strict on purpose: a client that works against it should work
against the real service.

Behaviour in brief (details in the docstrings below):

* Auth: ``Authorization: Bearer <token>``; missing/unknown token -> 401 ``Unauthenticated.``,
  a token marked with :meth:`FakeGotSMS.forbid` -> 403.  ``/pricelist`` is public.
* Validation errors -> 422 ``{"success": false, "message": <first error>, "errors": {...}}`` with
  Laravel-style texts.  Empty query values count as absent (Laravel converts them to null).
  Query booleans must be ``1`` or ``0``; ``true``/``false`` are rejected.
* Rate limit: a *sliding window* log.  Each key may make at most ``rate_limit`` requests in any
  ``window`` seconds, across all routes.  The key is the token when the request carries a known
  token (also on ``/pricelist``), otherwise the client IP.  Rejected (429) requests are not
  counted and change no state.  Windows use ``time.monotonic()`` (real time, not moved by
  :meth:`FakeGotSMS.advance`); ``X-RateLimit-Reset`` is the real unix time at which the oldest
  counted request leaves the window, i.e. when ``Remaining`` next grows.
* Business clock: :meth:`FakeGotSMS.now` is ``time.time()`` plus the offset added by
  :meth:`FakeGotSMS.advance`.  Rent periods, refunds, wake-ups and message times use it.
* Fault injection (:meth:`FakeGotSMS.fail_next`, :meth:`FakeGotSMS.set_fault_rates`) happens
  before rate limiting and authentication; injected faults are not counted against the budget
  (unless ``after=True``, see :meth:`FakeGotSMS.fail_next`).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.shapes import Shape

__all__ = ["FakeGotSMS", "RecordedRequest", "extract_code"]

JSON = dict[str, Any]

DURATION_TYPES = ("min", "hour", "day", "week", "month", "year")
BILLING_TYPES = ("sms", "duration")
RENT_STATUSES = ("active", "finished")
MONTHLY_LENGTHS = (1, 3, 6, 12)

MINUTES_PER_TYPE = {
    "min": 1,
    "hour": 60,
    "day": 1440,
    "week": 10080,
    "month": 43200,  # 30 days
    "year": 525600,  # 365 days
}
UNIT_WORDS = {
    "min": ("minute", "minutes"),
    "hour": ("hour", "hours"),
    "day": ("day", "days"),
    "week": ("week", "weeks"),
    "month": ("month", "months"),
    "year": ("year", "years"),
}

REFUND_WINDOW = timedelta(minutes=20)
WAKE_DURATION = timedelta(minutes=5)
ONLINE_DURATION = timedelta(minutes=30)

MSG_UNAUTHENTICATED = "Unauthenticated."
MSG_FORBIDDEN = "This action is unauthorized."
MSG_RENT_NOT_FOUND = "Rent not found."
MSG_TOO_MANY = "Too Many Attempts."
MSG_SERVER_ERROR = "Server Error"
MSG_OUT_OF_STOCK = "No number available for this service."
MSG_INSUFFICIENT_BALANCE = "Insufficient balance."
MSG_NOT_DAILY = "Current rent plan must be daily for this transition endpoint."
MSG_BAD_TARGET = "Target plan must be a monthly 1/3/6/12 plan of the same service and country."
MSG_NOT_MONTHLY = "Auto renewal can be toggled only for monthly 1/3/6/12 plans."
MSG_NO_REFUND = "Refund not available for this rent."
MSG_RENT_NOT_ACTIVE = "Rent is not active."
MSG_CANNOT_WAKE = "Wake up is not available for this number right now."

DOWN_HTML = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
    "<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

_UUID_RE = re.compile(r"^[\da-fA-F]{8}-[\da-fA-F]{4}-[\da-fA-F]{4}-[\da-fA-F]{4}-[\da-fA-F]{12}$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_AREA_CODE_RE = re.compile(r"^\d{2,5}$")
_CODE_RE = re.compile(r"(?<!\d)(\d{4,8})(?!\d)")


# --------------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the fake saw it.

    ``path`` is the part after ``/api`` (``/rents/plans``); ``query`` keeps the last value of a
    repeated key; ``json`` is the parsed JSON body or ``None``; ``token`` is the bearer token or
    ``None``; ``status`` is the status answered (0 while in flight); ``at`` is
    ``time.monotonic()`` at arrival; ``headers`` are the request headers; ``form`` is the
    body of an ``application/x-www-form-urlencoded`` request (else ``None``).

    Like Laravel, a body is read as JSON only when ``Content-Type`` says JSON (a JSON text sent
    without that header is not seen); invalid JSON counts as an empty body.
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    token: str | None
    status: int
    at: float
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None


# --------------------------------------------------------------------------------------------
# Internal state
# --------------------------------------------------------------------------------------------


@dataclass
class _Account:
    id: str
    token: str
    balance_cents: int
    forbidden: bool = False


@dataclass
class _Service:
    id: str
    name: str


@dataclass
class _Country:
    id: str
    name: str
    dial_code: str
    area_codes: tuple[str, ...]


@dataclass
class _Plan:
    id: str
    service_id: str
    country_id: str
    billing_type: str
    duration_type: str
    duration_in_type: int
    price_cents: int
    renew_price_cents: int
    stock: int
    offered: bool = True  # False: withdrawn, listed nowhere, rents on it keep it

    @property
    def minutes(self) -> int:
        return MINUTES_PER_TYPE[self.duration_type] * self.duration_in_type

    @property
    def is_monthly(self) -> bool:
        return self.duration_type == "month" and self.duration_in_type in MONTHLY_LENGTHS


@dataclass
class _Rent:
    id: str
    account_id: str
    plan_id: str
    phone: str
    price_cents: int
    created_at: datetime
    active_from: datetime
    active_till: datetime
    seq: int
    status: str = "active"
    renewal: bool = False
    wake_from: datetime | None = None
    wake_till: datetime | None = None
    online_till: datetime | None = None


@dataclass
class _Message:
    id: str
    rent_id: str
    sender: str
    body: str
    code: str | None
    received_at: datetime
    read: bool = False


@dataclass
class _Fault:
    prefix: str
    status: int
    body: JSON | str | None
    times: int
    retry_after: int | None
    method: str | None
    after: bool


@dataclass
class _Call:
    """What a route handler gets: the caller, its input and the path parameters."""

    account: _Account | None
    query: dict[str, str]
    body: dict[str, Any]
    params: tuple[str, ...]


@dataclass
class _Reply:
    status: int
    body: JSON


class _ApiError(Exception):
    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def reply(self) -> _Reply:
        body: JSON = {"success": False, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return _Reply(self.status, body)


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[_Call], _Reply]
    public: bool = False


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _new_id() -> str:
    return str(uuid.uuid4())


def _money(cents: int) -> int | float:
    """A JSON amount like the doc shows it: ``1`` for whole units, ``4.99`` otherwise."""
    return cents // 100 if cents % 100 == 0 else cents / 100


def _cents(value: float) -> int:
    return round(value * 100)


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def _aware(dt: datetime) -> datetime:
    """Treat naive datetimes given to hooks as UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _translation(amount: int, duration_type: str) -> str:
    singular, plural = UNIT_WORDS[duration_type]
    return f"{amount} {singular if amount == 1 else plural}"


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _phone_matches(phone: str, search: str) -> bool:
    """Phone search: digits of the query inside the digits of the number, else a substring."""
    wanted = _digits(search)
    if wanted:
        return wanted in _digits(phone)
    return search.lower() in phone.lower()


def extract_code(body: str) -> str | None:
    """The first standalone run of 4-8 digits in ``body``, or ``None``."""
    match = _CODE_RE.search(body)
    return match.group(1) if match else None


def _paginate(items: Sequence[JSON], page: int, per_page: int) -> tuple[list[JSON], JSON]:
    total = len(items)
    start = (page - 1) * per_page
    meta: JSON = {
        "current_page": page,
        "last_page": max(1, math.ceil(total / per_page)),
        "per_page": per_page,
        "total": total,
    }
    return list(items[start : start + per_page]), meta


def _label(name: str) -> str:
    return name.replace("_", " ")


class _Validator:
    """Laravel-like validation of a query string or a JSON body.

    Each getter returns the cleaned value (or ``None``/default) and records an error message on
    failure; :meth:`check` raises the 422 with the first message.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self.errors: dict[str, list[str]] = {}

    def _raw(self, name: str) -> Any:
        value = self._data.get(name)
        return None if value == "" else value

    def _fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def required(self, name: str) -> bool:
        if self._raw(name) is None:
            self._fail(name, f"The {_label(name)} field is required.")
            return False
        return True

    def string(self, name: str, max_len: int = 255) -> str | None:
        value = self._raw(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self._fail(name, f"The {_label(name)} field must be a string.")
            return None
        if len(value) > max_len:
            self._fail(
                name, f"The {_label(name)} field must not be greater than {max_len} characters."
            )
            return None
        return value

    def uuid(self, name: str) -> str | None:
        value = self._raw(name)
        if value is None:
            return None
        if not isinstance(value, str) or not _UUID_RE.match(value):
            self._fail(name, f"The {_label(name)} field must be a valid UUID.")
            return None
        return value.lower()

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        value = self._raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | str):
            self._fail(name, f"The {_label(name)} field must be an integer.")
            return default
        if isinstance(value, str):
            if not _INT_RE.match(value):
                self._fail(name, f"The {_label(name)} field must be an integer.")
                return default
            value = int(value)
        if value < low:
            self._fail(name, f"The {_label(name)} field must be at least {low}.")
            return default
        if high is not None and value > high:
            self._fail(name, f"The {_label(name)} field must not be greater than {high}.")
            return default
        return value

    def choice(self, name: str, choices: Iterable[str]) -> str | None:
        value = self._raw(name)
        if value is None:
            return None
        if value not in tuple(choices):
            self._fail(name, f"The selected {_label(name)} is invalid.")
            return None
        return str(value)

    def flag(self, name: str) -> bool:
        """A query-string boolean: only ``1`` and ``0`` are accepted."""
        value = self._raw(name)
        if value is None:
            return False
        if value not in ("1", "0"):
            self._fail(name, f"The {_label(name)} field must be true or false.")
            return False
        return bool(value == "1")

    def area_code(self, name: str) -> str | None:
        value = self.string(name, max_len=5)
        if value is not None and not _AREA_CODE_RE.match(value):
            self._fail(name, f"The {_label(name)} field format is invalid.")
            return None
        return value

    def page(self, default_per_page: int) -> tuple[int, int]:
        page = self.integer("page", 1, 1)
        per_page = self.integer("per_page", default_per_page, 1, 100)
        return page, per_page

    def check(self) -> None:
        if self.errors:
            first = next(iter(self.errors.values()))[0]
            raise _ApiError(422, first, self.errors)


class _SlidingWindow:
    """At most ``limit`` counted hits per key in any ``window`` seconds (monotonic clock)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def _live(self, key: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def _headers(self, hits: deque[float], now: float) -> dict[str, str]:
        reset_in = hits[0] + self.window - now if hits else 0.0
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - len(hits))),
            "X-RateLimit-Reset": str(math.ceil(time.time() + reset_in)),
        }

    def hit(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request; ``(False, headers-with-Retry-After)`` when over the limit."""
        now = time.monotonic()
        hits = self._live(key, now)
        if len(hits) >= self.limit:
            headers = self._headers(hits, now)
            headers["Retry-After"] = str(max(1, math.ceil(hits[0] + self.window - now)))
            return False, headers
        hits.append(now)
        return True, self._headers(hits, now)

    def peek(self, key: str) -> dict[str, str]:
        now = time.monotonic()
        return self._headers(self._live(key, now), now)

    def reset(self) -> None:
        self._hits.clear()


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeGotSMS:
    """In-process GotSMS server.  ``await start()``, use ``url``, ``await close()``.

    Also an async context manager.  Control hooks are plain sync methods; they act on the same
    state the HTTP API serves.  Hooks that return rents or messages return the API shape (the
    ``/rents`` item, the ``/messages`` item plus ``"read": bool``).

    Rules where the doc is silent:

    * Refund (:meth:`_refund`): allowed only while the rent is active, no message has arrived
      on it, and at most 20 minutes (:data:`REFUND_WINDOW`, business clock) after creation.
      The rent price goes back to the balance, the status becomes ``finished``,
      ``active_till`` becomes now and the number returns to the plan's stock.
    * Transition: the rent must be active, its plan ``duration_type == "day"``; the target must
      be a month plan of 1/3/6/12 months of the same service and country.  The target price is
      charged, the rent moves to that plan, ``price`` becomes the target price and
      ``active_till`` becomes now + the target duration.  The phone is kept; stock is untouched.
    * Expiry: an active rent past ``active_till`` is renewed (``renew_price`` charged,
      ``active_till`` extended by one period) when auto renewal is on and the balance covers it,
      otherwise it becomes ``finished``.  Months are 30 days, years 365 days.
    * Wake-up: ``wake_till = now + 5 min``, ``online_till = wake_till + 30 min`` (as in the
      doc example).  ``can_wake_up`` is false while the rent is not active or ``now <
      online_till``.  ``online_time_left_seconds`` counts the online period only, i.e.
      ``online_till - max(now, wake_till)``, which matches the doc example (120 / 1800).
      While ``now < wake_till`` the number is in the wake-up queue
      (``wakeup_time_left_seconds > 0``); from ``wake_till`` until ``online_till`` it is online
      (``wakeup_time_left_seconds == 0``, ``online_time_left_seconds > 0``); then asleep again.
      A wake-up driven by :meth:`FakeGotSMS.wake_never_online` has ``online_till: null``: at
      ``wake_till`` it has expired (both counts 0) and the number may be woken up again; one
      driven by :meth:`FakeGotSMS.wake_fail` is given up by GotSMS at once (``wake_from``,
      ``wake_till`` and ``online_till`` null, ``can_wake_up`` true).  ``can_wake_up`` is false
      until ``online_till`` (or ``wake_till`` when it is null) has passed.
    * Messages get UUIDv7-style ids that grow with creation order; lists are ordered by id,
      newest first.  ``/numbers/{id}/messages``: ``limit`` defaults to 20;
      ``meta.next_before_id`` is the last id of the page when older messages remain, else null.
    * An unknown ``plan_id`` (valid UUID) in a body -> 422 ``The selected plan id is invalid.``;
      unknown/foreign/non-UUID rent ids in a path -> 404 ``Rent not found.``.
    """

    def __init__(
        self, *, rate_limit: int = 30, window: float = 60.0, seed_catalog: bool = True
    ) -> None:
        self.url = ""
        self.shape = Shape.DOCS
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []  # unexpected exceptions inside the fake
        self._limiter = _SlidingWindow(rate_limit, window)
        self._runner: web.AppRunner | None = None
        self._clock_offset = 0.0
        self._rng = random.Random()
        self._fault_rng = random.Random()
        self._accounts: dict[str, _Account] = {}
        self._services: dict[str, _Service] = {}
        self._countries: dict[str, _Country] = {}
        self._plans: dict[str, _Plan] = {}
        self._rents: dict[str, _Rent] = {}
        self._messages: dict[str, _Message] = {}
        self._faults: list[_Fault] = []
        self._rate_5xx = 0.0
        self._rate_429 = 0.0
        self._rate_slow = 0.0
        self._slow_seconds = 0.0
        self._latency = 0.0
        self._down = False
        self._rent_seq = 0
        self._last_ms = 0
        self._ms_seq = 0
        self._routes = self._make_routes()
        self._seed_countries()
        if seed_catalog:
            self._seed_catalog()

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen on ``127.0.0.1`` on a free port and set :attr:`url` (``.../api``)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._entry)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{port}/api"

    async def listen_also(self) -> str:
        """Serve the same state on one more free port and return its URL (``.../api``): clients
        given a port each are told apart in :attr:`requests` by their ``Host`` header."""
        assert self._runner is not None, "start() first"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return f"http://127.0.0.1:{port}/api"

    async def close(self) -> None:
        """Stop the server (safe to call twice)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGotSMS:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- clock

    def now(self) -> datetime:
        """Business clock: ``time.time()`` + the :meth:`advance` offset, aware UTC."""
        return datetime.fromtimestamp(time.time() + self._clock_offset, UTC)

    def advance(self, seconds: float) -> None:
        """Move the business clock forward (rate-limit windows are not affected)."""
        self._clock_offset += seconds

    # ---------------------------------------------------------------- accounts

    def add_account(self, token: str, balance: float = 100.0) -> str:
        """Register a token with a balance; returns the account id.  A token exists once."""
        if token in self._accounts:
            raise ValueError("token already registered")
        account = _Account(id=_new_id(), token=token, balance_cents=_cents(balance))
        self._accounts[token] = account
        return account.id

    def set_balance(self, token: str, value: float) -> None:
        self._accounts[token].balance_cents = _cents(value)

    def balance(self, token: str) -> float:
        return self._accounts[token].balance_cents / 100

    def forbid(self, token: str, forbidden: bool = True) -> None:
        """Make every protected call of this token answer 403 (``forbidden=False`` undoes)."""
        self._accounts[token].forbidden = forbidden

    # ---------------------------------------------------------------- catalog

    @property
    def services(self) -> list[JSON]:
        """``[{"id", "name"}]`` in creation order."""
        return [{"id": s.id, "name": s.name} for s in self._services.values()]

    @property
    def countries(self) -> list[JSON]:
        return [{"id": c.id, "name": c.name} for c in self._countries.values()]

    @property
    def plans(self) -> list[JSON]:
        """Every plan in the ``/rents/plans`` shape plus ``"stock"``."""
        return [self._plan_full(p) | {"stock": p.stock} for p in self._plans.values()]

    def add_service(self, name: str) -> str:
        service = _Service(id=_new_id(), name=name)
        self._services[service.id] = service
        return service.id

    def add_country(self, name: str, dial_code: str, area_codes: Sequence[str] = ("100",)) -> str:
        """Add a country (USA, UK and Germany always exist); returns its id."""
        country = _Country(_new_id(), name, dial_code, tuple(area_codes))
        self._countries[country.id] = country
        return country.id

    def add_plan(
        self,
        service_id: str,
        *,
        country: str = "USA",
        billing_type: str = "duration",
        duration_type: str = "day",
        duration_in_type: int = 1,
        price: float = 1.0,
        renew_price: float | None = None,
        stock: int = 100,
    ) -> str:
        """Add a plan; ``country`` is a country name; ``renew_price`` defaults to ``price``."""
        if service_id not in self._services:
            raise KeyError(service_id)
        if billing_type not in BILLING_TYPES or duration_type not in DURATION_TYPES:
            raise ValueError("bad billing_type or duration_type")
        plan = _Plan(
            id=_new_id(),
            service_id=service_id,
            country_id=self._country_named(country).id,
            billing_type=billing_type,
            duration_type=duration_type,
            duration_in_type=duration_in_type,
            price_cents=_cents(price),
            renew_price_cents=_cents(price if renew_price is None else renew_price),
            stock=stock,
        )
        self._plans[plan.id] = plan
        return plan.id

    def set_stock(self, plan_id: str, n: int) -> None:
        self._plans[plan_id].stock = n

    def set_price(self, plan_id: str, price: float) -> None:
        """A new price for new rents of the plan (rents made already keep theirs)."""
        self._plans[plan_id].price_cents = _cents(price)

    def withdraw_plan(self, plan_id: str) -> None:
        """The plan is not offered any more: gone from the lists, an unknown plan to POST /rents
        and to transitions; the rents made on it still show it."""
        self._plans[plan_id].offered = False

    def plan_by(
        self,
        service_name: str,
        duration_type: str,
        duration_in_type: int,
        country: str = "USA",
        *,
        billing_type: str = "duration",
    ) -> JSON:
        """The first matching plan in the ``/rents/plans`` shape plus ``"stock"``."""
        for plan in self._plans.values():
            if (
                self._services[plan.service_id].name == service_name
                and self._countries[plan.country_id].name == country
                and plan.duration_type == duration_type
                and plan.duration_in_type == duration_in_type
                and plan.billing_type == billing_type
            ):
                return self._plan_full(plan) | {"stock": plan.stock}
        raise KeyError((service_name, duration_type, duration_in_type, country, billing_type))

    # ---------------------------------------------------------------- rents

    def create_rent(
        self,
        token: str,
        plan_id: str,
        *,
        created_at: datetime | None = None,
        area_code: str | None = None,
    ) -> JSON:
        """Rent without HTTP (still deducts and takes stock); ValueError on a business error."""
        try:
            rent = self._open_rent(
                self._accounts[token],
                self._plans[plan_id],
                area_code,
                _aware(created_at) if created_at else None,
            )
        except _ApiError as exc:
            raise ValueError(exc.message) from exc
        return self._rent_view(rent)

    def set_rent_end(self, rent_id: str, dt: datetime) -> None:
        """Set ``active_till`` (a past value makes the rent expire on the next look)."""
        self._rents[rent_id].active_till = _aware(dt)

    def set_rent_created(self, rent_id: str, dt: datetime) -> None:
        """Set the creation time (refund window) and ``active_from``."""
        rent = self._rents[rent_id]
        rent.created_at = rent.active_from = _aware(dt)

    def wake_in_panel(self, rent_id: str) -> None:
        """The number is woken up outside the bot (the GotSMS panel), as ``POST
        /numbers/{rent_id}/wake-up`` would: queued for 5 minutes, then online for 30."""
        rent = self._rents[rent_id]
        assert self._can_wake_up(rent), "GotSMS would refuse this wake-up"
        self._start_wake(rent)

    def wake_never_online(self, rent_id: str) -> None:
        """The current wake-up does not bring the number online: ``online_till`` becomes null
        and at ``wake_till`` the wake-up has expired."""
        rent = self._rents[rent_id]
        assert rent.wake_till is not None, "no wake-up to drive"
        rent.online_till = None

    def wake_fail(self, rent_id: str) -> None:
        """GotSMS gives the current wake-up up now: ``wake_from``, ``wake_till`` and
        ``online_till`` become null (the number may be woken up again)."""
        rent = self._rents[rent_id]
        assert rent.wake_from is not None, "no wake-up to drive"
        rent.wake_from = rent.wake_till = rent.online_till = None

    def rents_of(self, token: str) -> list[JSON]:
        """The token's rents in the ``/rents`` shape, newest first."""
        self._tick()
        return [self._rent_view(r) for r in self._account_rents(self._accounts[token])]

    # ---------------------------------------------------------------- messages

    def inject_message(
        self,
        rent_id: str,
        body: str,
        *,
        code: str | None = None,
        sender: str = "+18001234567",
        received_at: datetime | None = None,
    ) -> JSON:
        """A message arrives on a rent.  ``code=None`` extracts the first 4-8 digit run;
        ``code=""`` stores no code (JSON ``null``)."""
        rent = self._rents[rent_id]
        message = _Message(
            id=self._uuid7(),
            rent_id=rent.id,
            sender=sender,
            body=body,
            code=extract_code(body) if code is None else (code or None),
            received_at=_aware(received_at) if received_at else self.now(),
        )
        self._messages[message.id] = message
        return self._message_view(message) | {"read": False}

    def messages_of(self, token: str) -> list[JSON]:
        """All messages of the token, newest first (``/messages`` shape plus ``"read"``)."""
        return [self._message_view(m) | {"read": m.read} for m in self._account_messages(token)]

    def unread_of(self, token: str) -> list[JSON]:
        return [m for m in self.messages_of(token) if not m["read"]]

    # ---------------------------------------------------------------- faults

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        *,
        body: JSON | str | None = None,
        times: int = 1,
        retry_after: int | None = None,
        method: str | None = None,
        after: bool = False,
    ) -> None:
        """Answer the next ``times`` requests whose path (after ``/api``) starts with
        ``path_prefix`` (and whose method is ``method``, if given) with ``status``.

        ``body``: a dict is sent as JSON, a str as HTML; default ``{"success": false,
        "message": <usual text for the status>}``.  ``retry_after`` adds ``Retry-After``.
        With ``after=True`` the request is processed normally first (state changes, budget
        counted) and only then the error is answered: the client cannot know it succeeded.
        """
        prefix = _api_path(path_prefix)
        verb = method.upper() if method else None
        self._faults.append(_Fault(prefix, status, body, times, retry_after, verb, after))

    def set_fault_rates(
        self,
        rate_5xx: float = 0.0,
        rate_429: float = 0.0,
        rate_slow: float = 0.0,
        slow_seconds: float = 0.0,
        seed: int | None = None,
    ) -> None:
        """Random faults per request: 500 JSON, 429 (Retry-After 1-3 s), or a delay."""
        self._rate_5xx, self._rate_429 = rate_5xx, rate_429
        self._rate_slow, self._slow_seconds = rate_slow, slow_seconds
        self._fault_rng = random.Random(seed)

    def set_latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds``."""
        self._latency = seconds

    def set_down(self, down: bool = True) -> None:
        """While down every request gets a 503 HTML page (like an nginx in front)."""
        self._down = down

    def reset_rate_limits(self) -> None:
        self._limiter.reset()

    # ---------------------------------------------------------------- request log

    def requests_for(self, token: str, path_prefix: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.token == token and (path_prefix is None or r.path.startswith(path_prefix))
        ]

    def calls_per_minute(self, token: str) -> int:
        """Requests made with ``token`` in the last 60 real seconds (answered or not)."""
        since = time.monotonic() - 60.0
        return sum(1 for r in self.requests if r.token == token and r.at >= since)

    def max_calls_in_window(self, token: str, window: float = 60.0) -> int:
        """The most requests ``token`` made within any ``window`` seconds of the log."""
        times = [r.at for r in self.requests if r.token == token]
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def max_calls_per_token(self, window: float = 60.0) -> dict[str, int]:
        """Per token: the most requests it made within any ``window`` seconds of the log."""
        times: dict[str, list[float]] = {}
        for record in self.requests:
            if record.token is not None:
                times.setdefault(record.token, []).append(record.at)
        most: dict[str, int] = {}
        for token, stamps in times.items():
            best, start = 0, 0
            for end, at in enumerate(stamps):
                while at - stamps[start] >= window:
                    start += 1
                best = max(best, end - start + 1)
            most[token] = best
        return most

    # ================================================================= internals: seeding

    def _seed_countries(self) -> None:
        self.add_country("USA", "+1", ("212", "305", "415", "646", "702", "800"))
        self.add_country("UK", "+44", ("7700", "7400", "7911"))
        self.add_country("Germany", "+49", ("151", "160", "170", "176"))

    def _seed_catalog(self) -> None:
        """Four main services in three countries with day and month plans, eight minor ones."""
        main = {"Telegram": 1.0, "WhatsApp": 1.2, "Google": 0.8, "Discord": 0.6}
        countries = {"USA": 1.0, "UK": 1.3, "Germany": 1.5}
        lengths = [
            ("day", 1, 1.00),
            ("day", 7, 4.50),
            ("month", 1, 9.99),
            ("month", 3, 27.99),
            ("month", 6, 52.99),
            ("month", 12, 99.99),
        ]
        for name, factor in main.items():
            service_id = self.add_service(name)
            for country, country_factor in countries.items():
                for duration_type, amount, base in lengths:
                    price = round(base * factor * country_factor, 2)
                    self.add_plan(
                        service_id,
                        country=country,
                        duration_type=duration_type,
                        duration_in_type=amount,
                        price=price,
                    )
        telegram = next(s.id for s in self._services.values() if s.name == "Telegram")
        self.add_plan(
            telegram, billing_type="sms", duration_type="min", duration_in_type=20, price=0.5
        )
        minor = ["Facebook", "Instagram", "Microsoft", "Amazon", "Uber", "Tinder", "X", "OpenAI"]
        for name in minor:
            service_id = self.add_service(name)
            self.add_plan(service_id, duration_type="day", duration_in_type=1, price=0.75)
            self.add_plan(service_id, duration_type="month", duration_in_type=1, price=7.5)

    def _country_named(self, name: str) -> _Country:
        for country in self._countries.values():
            if country.name == name:
                return country
        raise KeyError(name)

    # ================================================================= internals: HTTP

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        try:
            response = await self._respond(request, record)
        except Exception as exc:  # a bug in the fake: keep it visible to tests
            self.errors.append(exc)
            response = web.json_response(
                {"success": False, "message": MSG_SERVER_ERROR}, status=500
            )
        record.status = response.status
        return response

    async def _record(self, request: web.Request) -> RecordedRequest:
        json_body, form = await _read_body(request)
        record = RecordedRequest(
            method=request.method,
            path=_api_path(request.path),
            query=dict(request.query.items()),  # last value of a repeated key
            json=json_body,
            token=_bearer(request.headers.get("Authorization", "")),
            status=0,
            at=time.monotonic(),
            headers=dict(request.headers),
            form=form,
        )
        self.requests.append(record)
        return record

    async def _respond(self, request: web.Request, record: RecordedRequest) -> web.Response:
        if self._down:
            return web.Response(status=503, text=DOWN_HTML, content_type="text/html")
        await self._delay()
        key = self._limit_key(record, request.remote)
        fault = self._take_fault(record)
        if fault is not None and not fault.after:
            return self._fault_response(fault, key)
        if fault is None:
            random_fault = self._random_fault(key)
            if random_fault is not None:
                return random_fault
        response = self._process(record, key, request.path)
        return self._fault_response(fault, key) if fault is not None else response

    async def _delay(self) -> None:
        delay = self._latency
        if self._rate_slow and self._fault_rng.random() < self._rate_slow:
            delay += self._slow_seconds
        if delay > 0:
            await asyncio.sleep(delay)

    def _limit_key(self, record: RecordedRequest, remote: str | None) -> str:
        if record.token is not None and record.token in self._accounts:
            return f"token:{record.token}"
        return f"ip:{remote}"

    def _take_fault(self, record: RecordedRequest) -> _Fault | None:
        for fault in self._faults:
            if record.path.startswith(fault.prefix) and fault.method in (None, record.method):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _fault_response(self, fault: _Fault, key: str) -> web.Response:
        headers = self._limiter.peek(key)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if isinstance(fault.body, str):
            return web.Response(
                status=fault.status, text=fault.body, content_type="text/html", headers=headers
            )
        body = fault.body or {"success": False, "message": _status_message(fault.status)}
        return web.json_response(body, status=fault.status, headers=headers)

    def _random_fault(self, key: str) -> web.Response | None:
        if self._rate_5xx and self._fault_rng.random() < self._rate_5xx:
            return self._fault_response(_Fault("", 500, None, 1, None, None, False), key)
        if self._rate_429 and self._fault_rng.random() < self._rate_429:
            retry = self._fault_rng.randint(1, 3)
            return self._fault_response(_Fault("", 429, None, 1, retry, None, False), key)
        return None

    def _process(self, record: RecordedRequest, key: str, full_path: str) -> web.Response:
        allowed, headers = self._limiter.hit(key)
        if not allowed:
            body = {"success": False, "message": MSG_TOO_MANY}
            return web.json_response(body, status=429, headers=headers)
        try:
            reply = self._dispatch(record, full_path)
        except _ApiError as exc:
            reply = exc.reply()
        body = reply.body
        if self.shape is Shape.ALT and reply.status < 300:
            body = alt_shape(body)
        return web.json_response(body, status=reply.status, headers=headers)

    def _dispatch(self, record: RecordedRequest, full_path: str) -> _Reply:
        route, params = self._resolve(record.method, full_path)
        account = self._accounts.get(record.token) if record.token else None
        if not route.public:
            if account is None:
                raise _ApiError(401, MSG_UNAUTHENTICATED)
            if account.forbidden:
                raise _ApiError(403, MSG_FORBIDDEN)
        self._tick()
        body = record.json if isinstance(record.json, dict) else dict(record.form or {})
        return route.handler(_Call(account, record.query, body, params))

    def _resolve(self, method: str, path: str) -> tuple[_Route, tuple[str, ...]]:
        allowed: list[str] = []
        for route in self._routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.method == method:
                return route, match.groups()
            allowed.append(route.method)
        shown = path.lstrip("/")
        if allowed:
            raise _ApiError(
                405,
                f"The {method} method is not supported for route {shown}. "
                f"Supported methods: {', '.join(sorted(set(allowed)))}.",
            )
        raise _ApiError(404, f"The route {shown} could not be found.")

    def _make_routes(self) -> list[_Route]:
        rid = "([^/]+)"
        table: list[tuple[str, str, Callable[[_Call], _Reply]]] = [
            ("GET", "/account", self._get_account),
            ("GET", "/services", self._get_services),
            ("GET", "/rents/plans", self._get_plans),
            ("GET", "/rents", self._get_rents),
            ("POST", "/rents", self._post_rent),
            ("POST", f"/rents/{rid}/transition", self._transition),
            ("POST", f"/rents/{rid}/renewal/toggle", self._toggle_renewal),
            ("POST", f"/rents/{rid}/refund", self._refund),
            ("GET", "/messages", self._get_messages),
            ("GET", "/messages/unread", self._get_unread),
            ("POST", f"/numbers/{rid}/wake-up", self._wake_up),
            ("GET", f"/numbers/{rid}/messages", self._get_number_messages),
            ("GET", f"/numbers/{rid}/status", self._get_number_status),
        ]
        pricelist = re.compile(r"^/api/pricelist$")
        routes = [_Route("GET", pricelist, self._get_pricelist, public=True)]
        routes += [_Route(m, re.compile(f"^/api{p}$"), h) for m, p, h in table]
        return routes

    # ================================================================= internals: handlers

    def _get_pricelist(self, call: _Call) -> _Reply:
        data: list[JSON] = []
        for service in self._services.values():
            plans = [p for p in self._sorted_plans() if p.service_id == service.id]
            if plans:
                data.append({"name": service.name, "plans": [self._price_row(p) for p in plans]})
        return _Reply(200, {"success": True, "data": data})

    def _get_account(self, call: _Call) -> _Reply:
        account = _caller(call)
        return _Reply(200, {"success": True, "data": {"balance": _money(account.balance_cents)}})

    def _get_services(self, call: _Call) -> _Reply:
        check = _Validator(call.query)
        search = check.string("search")
        page, per_page = check.page(25)
        check.check()
        services = sorted(self._services.values(), key=lambda s: s.name.lower())
        if search:
            services = [s for s in services if search.lower() in s.name.lower()]
        rows = [{"id": s.id, "name": s.name} for s in services]
        return _page_reply(rows, page, per_page)

    def _get_plans(self, call: _Call) -> _Reply:
        check = _Validator(call.query)
        service_id = check.uuid("service_id")
        country_id = check.uuid("country_id")
        duration_type = check.choice("duration_type", DURATION_TYPES)
        billing_type = check.choice("billing_type", BILLING_TYPES)
        search = check.string("search")
        page, per_page = check.page(25)
        check.check()
        plans = [
            p
            for p in self._sorted_plans()
            if service_id in (None, p.service_id)
            and country_id in (None, p.country_id)
            and duration_type in (None, p.duration_type)
            and billing_type in (None, p.billing_type)
            and (not search or search.lower() in self._services[p.service_id].name.lower())
        ]
        return _page_reply([self._plan_full(p) for p in plans], page, per_page)

    def _get_rents(self, call: _Call) -> _Reply:
        check = _Validator(call.query)
        status = check.choice("status", RENT_STATUSES)
        service = check.string("service")
        phone = check.string("phone", max_len=32)
        page, per_page = check.page(20)
        check.check()
        rents = [
            r
            for r in self._account_rents(_caller(call))
            if status in (None, r.status)
            and (not service or service.lower() in self._rent_service(r).name.lower())
            and (not phone or _phone_matches(r.phone, phone))
        ]
        return _page_reply([self._rent_view(r) for r in rents], page, per_page)

    def _post_rent(self, call: _Call) -> _Reply:
        check = _Validator(call.body)
        plan_id = check.uuid("plan_id") if check.required("plan_id") else None
        area_code = check.area_code("area_code")
        if plan_id is not None and (plan_id not in self._plans or not self._plans[plan_id].offered):
            check.errors.setdefault("plan_id", []).append("The selected plan id is invalid.")
        check.check()
        assert plan_id is not None
        rent = self._open_rent(_caller(call), self._plans[plan_id], area_code, None)
        body = {"success": True, "message": "Rent created successfully."}
        return _Reply(201, body | {"data": self._rent_view(rent)})

    def _transition(self, call: _Call) -> _Reply:
        rent = self._owned_rent(call)
        check = _Validator(call.body)
        plan_id = check.uuid("plan_id") if check.required("plan_id") else None
        if plan_id is not None and (plan_id not in self._plans or not self._plans[plan_id].offered):
            check.errors.setdefault("plan_id", []).append("The selected plan id is invalid.")
        check.check()
        assert plan_id is not None
        self._move_to_plan(rent, self._plans[plan_id])
        body = {"success": True, "message": "Plan transitioned successfully."}
        return _Reply(200, body | {"data": {"id": rent.id, "status": rent.status}})

    def _toggle_renewal(self, call: _Call) -> _Reply:
        rent = self._owned_rent(call)
        if rent.status != "active":
            raise _ApiError(422, MSG_RENT_NOT_ACTIVE)
        if not self._plans[rent.plan_id].is_monthly:
            raise _ApiError(422, MSG_NOT_MONTHLY)
        rent.renewal = not rent.renewal
        message = "Auto renewal enabled." if rent.renewal else "Auto renewal disabled."
        data = {"id": rent.id, "is_included_for_next_renewal": rent.renewal}
        return _Reply(200, {"success": True, "message": message, "data": data})

    def _refund(self, call: _Call) -> _Reply:
        rent = self._owned_rent(call)
        if not self._refundable(rent):
            raise _ApiError(422, MSG_NO_REFUND)
        self._accounts_by_id()[rent.account_id].balance_cents += rent.price_cents
        self._plans[rent.plan_id].stock += 1
        rent.status = "finished"
        rent.active_till = self.now()
        rent.renewal = False
        body = {"success": True, "message": "Rent has been refunded successfully."}
        return _Reply(200, body | {"data": {"id": rent.id, "status": rent.status}})

    def _get_messages(self, call: _Call) -> _Reply:
        check = _Validator(call.query)
        service_id = check.uuid("service_id")
        phone = check.string("phone", max_len=32)
        page, per_page = check.page(20)
        check.check()
        messages = self._filter_messages(_caller(call), service_id, None, phone, unread=False)
        return _page_reply([self._message_view(m) for m in messages], page, per_page)

    def _get_unread(self, call: _Call) -> _Reply:
        check = _Validator(call.query)
        service_id = check.uuid("service_id")
        rent_id = check.uuid("rent_id")
        phone = check.string("phone", max_len=32)
        page, per_page = check.page(20)
        mark_as_read = check.flag("mark_as_read")
        check.check()
        messages = self._filter_messages(_caller(call), service_id, rent_id, phone, unread=True)
        start = (page - 1) * per_page
        shown = messages[start : start + per_page]
        reply = _page_reply([self._message_view(m) for m in messages], page, per_page)
        if mark_as_read:
            for message in shown:
                message.read = True
        return reply

    def _wake_up(self, call: _Call) -> _Reply:
        rent = self._owned_rent(call)
        if not self._can_wake_up(rent):
            raise _ApiError(422, MSG_CANNOT_WAKE)
        self._start_wake(rent)
        return _Reply(200, {"success": True, "message": "Wake up request sent."})

    def _start_wake(self, rent: _Rent) -> None:
        now = self.now()
        rent.wake_from = now
        rent.wake_till = now + WAKE_DURATION
        rent.online_till = rent.wake_till + ONLINE_DURATION

    def _get_number_messages(self, call: _Call) -> _Reply:
        rent = self._owned_rent(call)
        check = _Validator(call.query)
        limit = check.integer("limit", 20, 1, 100)
        before_id = check.uuid("before_id")
        check.check()
        older = [
            m
            for m in self._rent_messages(rent)
            if before_id is None or uuid.UUID(m.id) < uuid.UUID(before_id)
        ]
        page = older[:limit]
        next_before = page[-1].id if len(older) > limit else None
        data = [self._number_message_view(m) for m in page]
        meta = {"next_before_id": next_before, "count": len(data)}
        return _Reply(200, {"success": True, "data": data, "meta": meta})

    def _get_number_status(self, call: _Call) -> _Reply:
        rent = self._owned_rent(call)
        now = self.now()
        wake_left = online_left = 0
        if rent.wake_till is not None:
            wake_left = max(0, math.ceil((rent.wake_till - now).total_seconds()))
            if rent.online_till is not None:
                online_from = max(now, rent.wake_till)
                online_left = max(0, math.ceil((rent.online_till - online_from).total_seconds()))
        data = {
            "rent_id": rent.id,
            "status": rent.status,
            "active_from": _iso(rent.active_from),
            "active_till": _iso(rent.active_till),
            "wake_from": _iso(rent.wake_from),
            "wake_till": _iso(rent.wake_till),
            "online_till": _iso(rent.online_till),
            "wakeup_time_left_seconds": wake_left,
            "online_time_left_seconds": online_left,
            "can_wake_up": self._can_wake_up(rent),
        }
        return _Reply(200, {"success": True, "data": data})

    # ================================================================= internals: rules

    def _open_rent(
        self, account: _Account, plan: _Plan, area_code: str | None, created_at: datetime | None
    ) -> _Rent:
        if plan.stock <= 0:
            raise _ApiError(422, MSG_OUT_OF_STOCK)
        if account.balance_cents < plan.price_cents:
            raise _ApiError(422, MSG_INSUFFICIENT_BALANCE)
        start = created_at or self.now()
        self._rent_seq += 1
        rent = _Rent(
            id=_new_id(),
            account_id=account.id,
            plan_id=plan.id,
            phone=self._new_phone(self._countries[plan.country_id], area_code),
            price_cents=plan.price_cents,
            created_at=start,
            active_from=start,
            active_till=start + timedelta(minutes=plan.minutes),
            seq=self._rent_seq,
        )
        account.balance_cents -= plan.price_cents
        plan.stock -= 1
        self._rents[rent.id] = rent
        return rent

    def _move_to_plan(self, rent: _Rent, target: _Plan) -> None:
        if rent.status != "active":
            raise _ApiError(422, MSG_RENT_NOT_ACTIVE)
        if self._plans[rent.plan_id].duration_type != "day":
            raise _ApiError(422, MSG_NOT_DAILY)
        if target.id not in {p.id for p in self._transition_targets(rent)}:
            raise _ApiError(422, MSG_BAD_TARGET)
        account = self._accounts_by_id()[rent.account_id]
        if account.balance_cents < target.price_cents:
            raise _ApiError(422, MSG_INSUFFICIENT_BALANCE)
        account.balance_cents -= target.price_cents
        rent.plan_id = target.id
        rent.price_cents = target.price_cents
        rent.active_till = self.now() + timedelta(minutes=target.minutes)

    def _transition_targets(self, rent: _Rent) -> list[_Plan]:
        current = self._plans[rent.plan_id]
        if rent.status != "active" or current.duration_type != "day":
            return []
        targets = [
            p
            for p in self._sorted_plans()
            if p.is_monthly
            and p.billing_type == "duration"
            and p.service_id == current.service_id
            and p.country_id == current.country_id
        ]
        return sorted(targets, key=lambda p: p.minutes)

    def _refundable(self, rent: _Rent) -> bool:
        """Active, no message received yet, and at most 20 minutes old (business clock)."""
        return (
            rent.status == "active"
            and not any(m.rent_id == rent.id for m in self._messages.values())
            and self.now() - rent.created_at <= REFUND_WINDOW
        )

    def _can_wake_up(self, rent: _Rent) -> bool:
        if rent.status != "active":
            return False
        end = rent.online_till or rent.wake_till
        return end is None or self.now() >= end

    def _tick(self) -> None:
        """Expire or auto-renew rents whose period is over."""
        now = self.now()
        accounts = self._accounts_by_id()
        for rent in self._rents.values():
            plan = self._plans[rent.plan_id]
            account = accounts[rent.account_id]
            while rent.status == "active" and rent.active_till <= now:
                if rent.renewal and account.balance_cents >= plan.renew_price_cents:
                    account.balance_cents -= plan.renew_price_cents
                    rent.active_till += timedelta(minutes=plan.minutes)
                else:
                    rent.status = "finished"

    def _new_phone(self, country: _Country, area_code: str | None) -> str:
        in_use = {r.phone for r in self._rents.values() if r.status == "active"}
        area = area_code or self._rng.choice(country.area_codes)
        while True:
            local = f"{self._rng.randrange(10**7):07d}"
            phone = f"{country.dial_code} {area} {local[:3]} {local[3:]}"
            if phone not in in_use:
                return phone

    def _uuid7(self) -> str:
        """A UUIDv7-style id, strictly increasing in creation order."""
        ms = max(int(self.now().timestamp() * 1000), self._last_ms)
        if ms == self._last_ms:
            self._ms_seq += 1
            if self._ms_seq > 0xFFF:
                ms, self._ms_seq = ms + 1, 0
        else:
            self._ms_seq = 0
        self._last_ms = ms
        value = (ms << 80) | (0x7 << 76) | (self._ms_seq << 64) | (0b10 << 62)
        return str(uuid.UUID(int=value | self._rng.getrandbits(62)))

    # ================================================================= internals: lookups

    def _accounts_by_id(self) -> dict[str, _Account]:
        return {a.id: a for a in self._accounts.values()}

    def _owned_rent(self, call: _Call) -> _Rent:
        rent = self._rents.get(call.params[0].lower())
        if rent is None or rent.account_id != _caller(call).id:
            raise _ApiError(404, MSG_RENT_NOT_FOUND)
        return rent

    def _account_rents(self, account: _Account) -> list[_Rent]:
        rents = [r for r in self._rents.values() if r.account_id == account.id]
        return sorted(rents, key=lambda r: (r.created_at, r.seq), reverse=True)

    def _rent_messages(self, rent: _Rent) -> list[_Message]:
        messages = [m for m in self._messages.values() if m.rent_id == rent.id]
        return sorted(messages, key=lambda m: uuid.UUID(m.id), reverse=True)

    def _account_messages(self, token: str) -> list[_Message]:
        account_id = self._accounts[token].id
        messages = [
            m for m in self._messages.values() if self._rents[m.rent_id].account_id == account_id
        ]
        return sorted(messages, key=lambda m: uuid.UUID(m.id), reverse=True)

    def _filter_messages(
        self,
        account: _Account,
        service_id: str | None,
        rent_id: str | None,
        phone: str | None,
        *,
        unread: bool,
    ) -> list[_Message]:
        return [
            m
            for m in self._account_messages(account.token)
            if (not unread or not m.read)
            and rent_id in (None, m.rent_id)
            and service_id in (None, self._rent_service(self._rents[m.rent_id]).id)
            and (not phone or _phone_matches(self._rents[m.rent_id].phone, phone))
        ]

    def _rent_service(self, rent: _Rent) -> _Service:
        return self._services[self._plans[rent.plan_id].service_id]

    def _sorted_plans(self) -> list[_Plan]:
        """Plans on offer in catalog (creation) order, like rows of a table."""
        return [plan for plan in self._plans.values() if plan.offered]

    # ================================================================= internals: views

    def _plan_summary(self, plan: _Plan) -> JSON:
        return {
            "id": plan.id,
            "billing_type": plan.billing_type,
            "duration_type": plan.duration_type,
            "duration_in_type": plan.duration_in_type,
            "duration_translation": _translation(plan.duration_in_type, plan.duration_type),
            "price": _money(plan.price_cents),
            "renew_price": _money(plan.renew_price_cents),
        }

    def _plan_full(self, plan: _Plan) -> JSON:
        service = self._services[plan.service_id]
        country = self._countries[plan.country_id]
        return {
            "id": plan.id,
            "service": {"id": service.id, "name": service.name},
            "country": {"id": country.id, "name": country.name},
            "billing_type": plan.billing_type,
            "duration_type": plan.duration_type,
            "duration_in_type": plan.duration_in_type,
            "duration_in_minutes": plan.minutes,
            "duration_translation": _translation(plan.duration_in_type, plan.duration_type),
            "price": _money(plan.price_cents),
            "renew_price": _money(plan.renew_price_cents),
            "is_monthly_supported": plan.is_monthly,
        }

    def _price_row(self, plan: _Plan) -> JSON:
        return {
            "service_name": self._services[plan.service_id].name,
            "period": plan.duration_in_type,
            "period_type": plan.duration_type,
            "period_type_label": UNIT_WORDS[plan.duration_type][0],
            "duration_translation": _translation(plan.duration_in_type, plan.duration_type),
            "price": _money(plan.price_cents),
            "renew_price": _money(plan.renew_price_cents),
            "country": self._countries[plan.country_id].name,
            "billing_type": plan.billing_type,
        }

    def _rent_view(self, rent: _Rent) -> JSON:
        service = self._rent_service(rent)
        return {
            "id": rent.id,
            "service": {"id": service.id, "name": service.name},
            "plan": self._plan_summary(self._plans[rent.plan_id]),
            "phone": rent.phone,
            "price": _money(rent.price_cents),
            "status": rent.status,
            "is_included_for_next_renewal": rent.renewal,
            "active_from": _iso(rent.active_from),
            "active_till": _iso(rent.active_till),
            "wake_from": _iso(rent.wake_from),
            "wake_till": _iso(rent.wake_till),
            "can_wake_up": self._can_wake_up(rent),
            "transition_options": [self._plan_summary(p) for p in self._transition_targets(rent)],
        }

    def _number_message_view(self, message: _Message) -> JSON:
        return {
            "id": message.id,
            "from": message.sender,
            "to": "+" + _digits(self._rents[message.rent_id].phone),
            "body": message.body,
            "code": message.code,
            "received_at": _iso(message.received_at),
        }

    def _message_view(self, message: _Message) -> JSON:
        rent = self._rents[message.rent_id]
        service = self._rent_service(rent)
        view = self._number_message_view(message)
        return {
            "id": view.pop("id"),
            "rent_id": rent.id,
            "service": {"id": service.id, "name": service.name},
            "phone": rent.phone,
        } | view


async def _read_body(request: web.Request) -> tuple[Any, dict[str, str] | None]:
    """``(json, form)`` of a request body, chosen by ``Content-Type`` as Laravel does."""
    raw = await request.read()
    if not raw:
        return None, None
    content_type = request.content_type
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return await request.json(), None
        except ValueError:
            return None, None
    if content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        return None, {k: v for k, v in form.items() if isinstance(v, str)}
    return None, None


def _api_path(path: str) -> str:
    """The path after ``/api`` (other paths are kept whole)."""
    return path[4:] if path.startswith("/api/") else path


def _bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _caller(call: _Call) -> _Account:
    if call.account is None:  # protected routes always have one
        raise _ApiError(401, MSG_UNAUTHENTICATED)
    return call.account


def _page_reply(rows: Sequence[JSON], page: int, per_page: int) -> _Reply:
    data, meta = _paginate(rows, page, per_page)
    return _Reply(200, {"success": True, "data": data, "meta": meta})


def _status_message(status: int) -> str:
    return {
        401: MSG_UNAUTHENTICATED,
        403: MSG_FORBIDDEN,
        404: "Not Found",
        422: "The given data was invalid.",
        429: MSG_TOO_MANY,
    }.get(status, MSG_SERVER_ERROR if status >= 500 else "Error")


# ---------------------------------------------------------------- the other shape (Shape.ALT)

_AMOUNTS = frozenset({"price", "renew_price", "balance"})
_NULLED = frozenset({"duration_translation", "period_type_label", "to"})
_UTC_SUFFIX = "+00:00"


def alt_shape(value: Any, key: str = "") -> Any:
    """The same answer as other clients and docs show it: amounts as strings, timestamps
    without an offset (meaning UTC), null in optional texts, an unknown field in every object,
    and transition options that name `plan_id` and give their length only as a text."""
    if isinstance(value, dict):
        if key == "transition_options_item":
            return {
                "plan_id": value["id"],
                "duration_translation": value["duration_translation"],
                "price": str(value["price"]),
                "note": {"unknown": True},
            }
        out: dict[str, Any] = {k: alt_shape(v, k) for k, v in value.items()}
        out["x_unknown"] = {"nested": [1, "two"]}
        return out
    if isinstance(value, list):
        item_key = "transition_options_item" if key == "transition_options" else key
        return [alt_shape(v, item_key) for v in value]
    if key in _AMOUNTS and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.2f}"
    if key in _NULLED:
        return None
    if isinstance(value, str) and value.endswith(_UTC_SUFFIX) and "T" in value:
        return value.removesuffix(_UTC_SUFFIX)
    return value
