"""A strict in-process test double of the GoSMS REST API (``https://api.gosms.ru/v1``).

It follows ``shared/api/gosms-*.{en.md,ru.txt}`` and product.md section 1, and is deliberately no
looser than the real API: a client that works against it has had its bodies, ids, auth header,
error handling and rate limiting checked.

Usage::

    fake = FakeGoSMS()
    await fake.start()
    fake.add_account("tok")
    device = fake.add_device("tok")
    ...  # point the client at fake.url ("http://127.0.0.1:PORT/v1")
    await fake.close()

Every request passes these steps in this order; the first one that answers wins:

1. recorded in ``requests`` (its ``status`` is filled in when it is answered);
2. ``set_latency`` delay;
3. ``set_down(True)`` → 503 with an HTML body, as a reverse proxy would answer;
4. unknown path or wrong method → 404 ``{"errors": {"code": 404, "message": "Not Found"}}``;
5. rate limit: more than ``per_endpoint_rps`` requests to one endpoint (method + path) by one token
   within any sliding second → 429, code 429, header ``Retry-After: 1``. Requests without a token
   share one bucket. Limited requests change no state and do not use up the budget;
   ``per_endpoint_rps=0`` switches the limit off;
6. ``fail_next`` rules, then ``set_fault_rates`` (5xx → 500 code 500, 429 as above, slow → delay);
7. auth: missing/malformed header (the scheme must be exactly ``Bearer``), unknown or deleted
   token → 401/1003; blocked account → 403/3000; key switched off → 403/1002;
8. permission of the token → 403 with 1005 send, 1007 get, 1009 delete, 1011 list,
   1013 device info, 1014 device edit and delete;
9. body: not JSON or not a JSON object → 400/2009; then the endpoint's own checks.

Error codes of the endpoints (all HTTP 400 unless noted):

- 2001 message empty or only whitespace; 2002 message longer than 300 characters;
  2003 message contains a backtick; 2004 phone empty; 2005 phone not ASCII digits only;
  2006 phone length not 3-30; 2007 id missing or malformed (neither a 24-hex ObjectID nor a
  UUID; also for a non-empty ``callback_id``); 2008 ``limit`` missing, not a number or outside
  1..100; 2009 everything else that is bad input: ``offset`` not a number or < 1, a field of the
  wrong type (``to_sim`` must be an int, not a bool), ``to_sim`` < 0 or >= the device's SIM
  count, ``id`` and ``device_id`` both given but different.
- ``/sms/send`` checks, in order: body fields (2001-2007, 2009), 1017 ``to_sim`` without
  ``device_id``, 1004 the account has no devices, 1016 ``device_id`` is not one of the account's
  devices, 2009 ``to_sim`` out of range, 1015 the chosen device (or every device, when no
  ``device_id``) is inactive, 403/1006 the account's monthly limit is used up (only SMS sent
  through the API count; the month never rolls over).
- 404/1008 SMS not found (also another account's SMS); 1010 delete younger than 5 minutes
  (``fake.now() - time_create < 300``); 404/1012 device not found (also another account's).

``/sms`` answers ``total_records`` as the number of SMS matching ``search`` (all of them without
a search), echoes the requested ``limit`` and ``offset``, and a page past the end is an empty list.
``/devices/edit`` without ``is_active`` (or with ``null``) deactivates the device, as documented.
The device info ``device_id`` is the phone's hardware id, not the id the device is addressed by.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

from tests.fakes.shapes import Shape

__all__ = [
    "PERMISSIONS",
    "STATUS_TEXT",
    "FakeGoSMS",
    "GoSMSError",
    "RecordedRequest",
]

PERMISSIONS: Final = frozenset({"send", "get", "delete", "list", "device_info", "device_edit"})

STATUS_TEXT: Final[Mapping[int, str]] = {
    0: "Ждет обработки",
    1: "Взято в обработку",
    2: "Отправлено",
    3: "Ошибка отправки",
    4: "Доставлено",
    5: "Ошибка доставки",
}

_NEXT_STATUS: Final[Mapping[int, int]] = {0: 1, 1: 2, 2: 4}

_ERRORS: Final[Mapping[int, tuple[int, str]]] = {
    1002: (403, "The API key is switched off"),
    1003: (401, "The API key does not exist"),
    1004: (400, "No devices registered"),
    1005: (403, "The API key may not send SMS"),
    1006: (403, "The monthly tariff limit is reached"),
    1007: (403, "The API key may not read SMS"),
    1008: (404, "SMS not found"),
    1009: (403, "The API key may not delete SMS"),
    1010: (400, "An SMS can be deleted only 5 minutes after creation"),
    1011: (403, "The API key may not list SMS"),
    1012: (404, "Device not found"),
    1013: (403, "The API key may not read devices"),
    1014: (403, "The API key may not edit or delete devices"),
    1015: (400, "No enabled device"),
    1016: (400, "Unknown device_id"),
    1017: (400, "to_sim requires device_id"),
    2001: (400, "message is empty"),
    2002: (400, "message is longer than 300 characters"),
    2003: (400, "message must not contain a backtick"),
    2004: (400, "phone_number is empty"),
    2005: (400, "phone_number must contain digits only"),
    2006: (400, "phone_number must be 3 to 30 digits long"),
    2007: (400, "malformed id"),
    2008: (400, "limit must be a number from 1 to 100"),
    2009: (400, "bad input"),
    3000: (403, "The account is blocked"),
}

_HTTP_REASONS: Final[Mapping[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_DOWN_HTML: Final = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
    "<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DIGITS = re.compile(r"[0-9]+")
_MAX_MESSAGE = 300
_DELETE_AFTER = 300
_MAX_LIMIT = 100

_dumps = partial(json.dumps, ensure_ascii=False)


class GoSMSError(Exception):
    """An API error; the fake answers it as ``{"errors": {"code": ..., "message": ...}}``."""

    def __init__(self, code: int, message: str | None = None) -> None:
        status, default = _ERRORS[code]
        super().__init__(f"{code}: {message or default}")
        self.status = status
        self.code = code
        self.message = message or default


@dataclass
class RecordedRequest:
    """One request as the fake saw it. ``status`` is 0 while the request is being answered."""

    method: str
    path: str  # after /v1, e.g. "/sms/send"
    query: dict[str, str]
    json: Any  # the parsed body, None when empty or not JSON
    token: str | None  # from "Authorization: Bearer <token>", None when absent or malformed
    status: int
    at: float  # time.monotonic() on arrival


@dataclass
class _Account:
    token: str
    active: bool
    permissions: frozenset[str]
    monthly_limit: int | None
    blocked: bool
    sent: int = 0


@dataclass
class _Device:
    id: str
    token: str
    hardware_id: str
    name: str
    battery: int
    charging: bool
    active: bool
    last_online: datetime
    console: str
    sims: int

    def to_api_alt(self) -> dict[str, Any]:
        """The newer doc's device: only `device_id`, a numeric battery, booleans as 1/0 and
        strings, no console when it is empty, one field we do not know."""
        return {
            "device_id": self.id,
            "device_battery_state": self.battery,
            "device_name": self.name,
            "is_active": 1 if self.active else 0,
            "is_charging": "true" if self.charging else "false",
            "last_online_date": _iso_millis(self.last_online),
            "sim_count": self.sims,
        } | ({"console_data": self.console} if self.console else {})

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.hardware_id,
            "device_battery_state": str(self.battery),
            "device_name": self.name,
            "is_active": self.active,
            "is_charging": self.charging,
            "last_online_date": _iso_millis(self.last_online),
            "console_data": self.console,
        }


_DEVICE_FIELDS: Final = frozenset(f.name for f in fields(_Device)) - {"id", "token"}


@dataclass
class _Sms:
    id: str
    token: str
    message: str
    phone_number: str
    status: int
    time_create: int
    device_id: str
    to_sim: int | None
    callback_id: str
    seq: int

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message": self.message,
            "status": self.status,
            "callback_id": self.callback_id,
            "device_id": self.device_id,
            "phone_number": self.phone_number,
            "message_status": STATUS_TEXT[self.status],
            "time_create": self.time_create,
            "to_sim": self.to_sim,
        }

    def matches(self, search: str) -> bool:
        needle = search.casefold()
        haystacks = (self.message, STATUS_TEXT[self.status], self.phone_number)
        return any(needle in text.casefold() for text in haystacks)


@dataclass
class _Injected:
    path_prefix: str
    status: int
    code: int
    message: str
    times: int


@dataclass
class _FaultRates:
    rate_5xx: float = 0.0
    rate_429: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 0.0
    rng: random.Random = field(default_factory=random.Random)


Body = dict[str, Any]
Query = Mapping[str, str]
Handler = Callable[[_Account, Body, Query], web.Response]


@dataclass(frozen=True)
class _Route:
    permission: str
    denied_code: int
    handler: Handler
    has_body: bool = True


# ---------------------------------------------------------------- small pure helpers


def _iso_millis(moment: datetime) -> str:
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _is_id(value: str) -> bool:
    return bool(_OBJECT_ID.fullmatch(value) or _UUID.fullmatch(value))


def _bearer(header: str | None) -> str | None:
    if header is None or not header.startswith("Bearer "):
        return None
    token = header.removeprefix("Bearer ").strip()
    return token or None


def _parse_json(raw: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False, None


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def _error(status: int, code: int, message: str) -> web.Response:
    headers = {"Retry-After": "1"} if status == 429 else None
    return _json({"errors": {"code": code, "message": message}}, status=status, headers=headers)


def _http_error(status: int) -> web.Response:
    return _error(status, status, _HTTP_REASONS.get(status, "Error"))


def _string(body: Body, key: str) -> str | None:
    """The string at ``key``; None when absent or null; 2009 when of another type."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise GoSMSError(2009, f"{key} must be a string")


def _object_id(body: Body, key: str = "id") -> str:
    value = _string(body, key)
    if not value or not _is_id(value):
        raise GoSMSError(2007, f"{key} is missing or malformed")
    return value.lower()


def _check_message(message: str | None) -> str:
    if message is None or not message.strip():
        raise GoSMSError(2001)
    if len(message) > _MAX_MESSAGE:
        raise GoSMSError(2002)
    if "`" in message:
        raise GoSMSError(2003)
    return message


def _check_phone(phone: str | None) -> str:
    if not phone:
        raise GoSMSError(2004)
    if not _DIGITS.fullmatch(phone):
        raise GoSMSError(2005)
    if not 3 <= len(phone) <= 30:
        raise GoSMSError(2006)
    return phone


def _check_to_sim(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise GoSMSError(2009, "to_sim must be an integer")
    return value


def _optional_id(body: Body, key: str) -> str:
    value = _string(body, key) or ""
    if value and not _is_id(value):
        raise GoSMSError(2007, f"{key} is malformed")
    return value.lower()


def _device_ref(body: Body) -> str:
    """The device id of a /devices/* body, given as ``id`` or ``device_id`` (or both, equal)."""
    by_id, by_device_id = _string(body, "id"), _string(body, "device_id")
    if by_id is not None and by_device_id is not None and by_id != by_device_id:
        raise GoSMSError(2009, "id and device_id differ")
    value = by_id if by_id is not None else by_device_id
    if not value or not _is_id(value):
        raise GoSMSError(2007, "device id is missing or malformed")
    return value.lower()


def _query_int(query: Query, key: str, code: int, default: int | None = None) -> int:
    raw = query.get(key)
    if raw is None and default is not None:
        return default
    if raw is None or not _DIGITS.fullmatch(raw):
        raise GoSMSError(code, f"{key} must be a number")
    return int(raw)


def _new_object_id(unix_ts: float, counter: int) -> str:
    return f"{int(unix_ts) & 0xFFFFFFFF:08x}{secrets.token_hex(5)}{counter & 0xFFFFFF:06x}"


# ---------------------------------------------------------------- the fake


class FakeGoSMS:
    """The GoSMS API on ``127.0.0.1:<random port>``, with hooks to set up state and faults."""

    def __init__(self, *, per_endpoint_rps: int = 10) -> None:
        self.per_endpoint_rps = per_endpoint_rps
        self.shape = Shape.DOCS
        self.requests: list[RecordedRequest] = []
        self._accounts: dict[str, _Account] = {}
        self._devices: dict[str, _Device] = {}
        self._sms: dict[str, _Sms] = {}
        self._seq = itertools.count(1)
        self._clock_offset = 0.0
        self._latency = 0.0
        self._down = False
        self._injected: list[_Injected] = []
        self._faults = _FaultRates()
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._routes: dict[tuple[str, str], _Route] = {
            ("POST", "/sms/send"): _Route("send", 1005, self._send),
            ("POST", "/sms/get"): _Route("get", 1007, self._get),
            ("DELETE", "/sms/del"): _Route("delete", 1009, self._delete),
            ("GET", "/sms"): _Route("list", 1011, self._list, has_body=False),
            ("POST", "/devices/get/info"): _Route("device_info", 1013, self._device_info),
            ("POST", "/devices/edit"): _Route("device_edit", 1014, self._device_edit),
            ("POST", "/devices/del"): _Route("device_edit", 1014, self._device_del),
        }

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The API base, ``http://127.0.0.1:PORT/v1``; routes are ``url + "/sms/send"`` etc."""
        if self._url is None:
            raise RuntimeError("FakeGoSMS is not started")
        return self._url

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeGoSMS is already started")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self._url = f"http://127.0.0.1:{port}/v1"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------ recorded requests

    def requests_for(self, token: str, path_prefix: str | None = None) -> list[RecordedRequest]:
        """The requests made with ``token``, only those under ``path_prefix`` if given."""
        return [
            r
            for r in self.requests
            if r.token == token and (path_prefix is None or r.path.startswith(path_prefix))
        ]

    # ------------------------------------------------------------ clock

    def now(self) -> float:
        """The fake's unix time: the real time plus everything given to ``advance_clock``."""
        return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the fake's clock forward (for the 5-minute delete rule and new timestamps)."""
        self._clock_offset += seconds

    # ------------------------------------------------------------ accounts

    def add_account(
        self,
        token: str,
        *,
        active: bool = True,
        permissions: set[str] | None = None,
        monthly_limit: int | None = None,
        blocked: bool = False,
    ) -> None:
        """Register an API key. ``permissions=None`` grants all of ``PERMISSIONS``."""
        granted = PERMISSIONS if permissions is None else frozenset(permissions)
        unknown = granted - PERMISSIONS
        if unknown:
            raise ValueError(f"unknown permissions: {sorted(unknown)}")
        if token in self._accounts:
            raise ValueError("account already exists")
        self._accounts[token] = _Account(token, active, granted, monthly_limit, blocked)

    def set_key_active(self, token: str, active: bool) -> None:
        """Switch the key on or off in the panel (off → 1002)."""
        self._account(token).active = active

    def delete_key(self, token: str) -> None:
        """Delete the key with its devices and SMS: the token answers 1003 from now on."""
        del self._accounts[token]
        self._devices = {k: d for k, d in self._devices.items() if d.token != token}
        self._sms = {k: s for k, s in self._sms.items() if s.token != token}

    def block(self, token: str, blocked: bool = True) -> None:
        """Block (or with ``blocked=False`` unblock) the account: 3000."""
        self._account(token).blocked = blocked

    def set_monthly_limit(self, token: str, limit: int | None, *, sent: int = 0) -> None:
        """Set the monthly SMS limit (None = unlimited) and the number already sent this month."""
        account = self._account(token)
        account.monthly_limit = limit
        account.sent = sent

    def _account(self, token: str) -> _Account:
        try:
            return self._accounts[token]
        except KeyError:
            raise KeyError(f"no account for token {token!r}") from None

    # ------------------------------------------------------------ devices

    def add_device(
        self,
        token: str,
        *,
        device_id: str | None = None,
        name: str = "Poco M3",
        battery: int = 57,
        charging: bool = True,
        active: bool = True,
        last_online: datetime | None = None,
        console: str = "",
        sims: int = 2,
    ) -> str:
        """Register a device of ``token``'s account and return its id (a new ObjectID by default).

        ``device_id`` may be a 24-hex ObjectID or a UUID; it is stored lower-cased.
        """
        self._account(token)
        key = (device_id or _new_object_id(self.now(), next(self._seq))).lower()
        if not _is_id(key):
            raise ValueError(f"device id {device_id!r} is neither an ObjectID nor a UUID")
        if key in self._devices:
            raise ValueError(f"device {key} already exists")
        moment = last_online or datetime.now(UTC) + timedelta(seconds=self._clock_offset)
        self._devices[key] = _Device(
            id=key,
            token=token,
            hardware_id=secrets.token_hex(8),
            name=name,
            battery=battery,
            charging=charging,
            active=active,
            last_online=moment,
            console=console,
            sims=sims,
        )
        return key

    def set_device(self, device_id: str, **changes: Any) -> None:
        """Change fields of a device: name, battery, charging, active, last_online, console,
        sims, hardware_id (the ``device_id`` of the info answer)."""
        device = self._device(device_id)
        unknown = set(changes) - _DEVICE_FIELDS
        if unknown:
            raise TypeError(f"unknown device fields: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(device, name, value)

    def device(self, device_id: str) -> dict[str, Any]:
        """The device's state: id, token, hardware_id, name, battery, charging, active,
        last_online (datetime), console, sims."""
        device = self._device(device_id)
        return {f.name: getattr(device, f.name) for f in fields(device)}

    def has_device(self, device_id: str) -> bool:
        return device_id.lower() in self._devices

    def _device(self, device_id: str) -> _Device:
        try:
            return self._devices[device_id.lower()]
        except KeyError:
            raise KeyError(f"no device {device_id!r}") from None

    # ------------------------------------------------------------ sms

    def sms(self, sms_id: str) -> dict[str, Any]:
        """The SMS exactly as ``/sms/get`` would answer it."""
        return self._sms_record(sms_id).to_api()

    def sms_of(self, token: str) -> list[dict[str, Any]]:
        """All SMS of the account, newest first, as ``/sms`` lists them."""
        return [s.to_api() for s in self._newest_first(token)]

    def set_status(self, sms_id: str, status: int) -> None:
        if status not in STATUS_TEXT:
            raise ValueError(f"status must be 0..5, not {status}")
        self._sms_record(sms_id).status = status

    def advance(self, sms_id: str) -> int:
        """Move the SMS one step along 0 → 1 → 2 → 4; final statuses stay. Returns the status."""
        record = self._sms_record(sms_id)
        record.status = _NEXT_STATUS.get(record.status, record.status)
        return record.status

    def set_created(self, sms_id: str, unix_ts: int) -> None:
        self._sms_record(sms_id).time_create = unix_ts

    def add_sms(
        self,
        token: str,
        *,
        message: str = "Hello",
        phone_number: str = "79999999999",
        status: int = 0,
        time_create: int | None = None,
        device_id: str = "",
        to_sim: int | None = None,
        callback_id: str = "",
    ) -> str:
        """Seed an SMS without any API checks (it does not count to the monthly limit)."""
        self._account(token)
        if status not in STATUS_TEXT:
            raise ValueError(f"status must be 0..5, not {status}")
        created = int(self.now()) if time_create is None else time_create
        return self._create_sms(
            token, message, phone_number, created, device_id, to_sim, callback_id, status
        )

    def _create_sms(
        self,
        token: str,
        message: str,
        phone_number: str,
        created: int,
        device_id: str,
        to_sim: int | None,
        callback_id: str,
        status: int = 0,
    ) -> str:
        seq = next(self._seq)
        sms_id = _new_object_id(created, seq)
        self._sms[sms_id] = _Sms(
            id=sms_id,
            token=token,
            message=message,
            phone_number=phone_number,
            status=status,
            time_create=created,
            device_id=device_id,
            to_sim=to_sim,
            callback_id=callback_id,
            seq=seq,
        )
        return sms_id

    def _sms_record(self, sms_id: str) -> _Sms:
        try:
            return self._sms[sms_id.lower()]
        except KeyError:
            raise KeyError(f"no SMS {sms_id!r}") from None

    def _newest_first(self, token: str) -> list[_Sms]:
        own = [s for s in self._sms.values() if s.token == token]
        return sorted(own, key=lambda s: (s.time_create, s.seq), reverse=True)

    # ------------------------------------------------------------ faults

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        *,
        code: int | None = None,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests whose path (after /v1) starts with ``path_prefix``
        with ``status`` and ``{"errors": {"code": code or status, "message": ...}}``.
        Such requests change no state. Rules are used in the order they were added."""
        reason = message or _HTTP_REASONS.get(status, "Error")
        self._injected.append(_Injected(path_prefix, status, code or status, reason, times))

    def set_fault_rates(
        self,
        rate_5xx: float = 0.0,
        rate_429: float = 0.0,
        rate_slow: float = 0.0,
        slow_seconds: float = 0.0,
        seed: int | None = None,
    ) -> None:
        """Random faults per request: a 500 with probability ``rate_5xx``, else a 429 with
        ``rate_429``; independently a delay of ``slow_seconds`` with ``rate_slow``.
        Call without arguments to switch them off."""
        for rate in (rate_5xx, rate_429, rate_slow):
            if not 0.0 <= rate <= 1.0:
                raise ValueError("rates must be within 0..1")
        if rate_5xx + rate_429 > 1.0:
            raise ValueError("rate_5xx + rate_429 must not exceed 1")
        self._faults = _FaultRates(rate_5xx, rate_429, rate_slow, slow_seconds, random.Random(seed))

    def set_latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds``."""
        self._latency = seconds

    def set_down(self, down: bool) -> None:
        """While down, every request gets a 503 with an HTML body, like a proxy in front."""
        self._down = down

    # ------------------------------------------------------------ the request pipeline

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        under_v1 = request.path.startswith("/v1/")
        path = request.path.removeprefix("/v1") if under_v1 else request.path
        query = {key: request.query.getone(key) for key in request.query}
        is_json, parsed = _parse_json(raw)
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=query,
            json=parsed if is_json else None,
            token=_bearer(request.headers.get("Authorization")),
            status=0,
            at=time.monotonic(),
        )
        self.requests.append(record)
        route = self._routes.get((request.method, path)) if under_v1 else None
        response = await self._answer(record, route, is_json, parsed)
        record.status = response.status
        return response

    async def _answer(
        self, record: RecordedRequest, route: _Route | None, is_json: bool, parsed: Any
    ) -> web.Response:
        if self._latency > 0:
            await asyncio.sleep(self._latency)
        if self._down:
            return web.Response(status=503, text=_DOWN_HTML, content_type="text/html")
        if route is None:
            return _http_error(404)
        if self._rate_limited(record.token or "", f"{record.method} {record.path}"):
            return _http_error(429)
        fault = self._take_injected(record.path) or await self._random_fault()
        if fault is not None:
            return fault
        try:
            account = self._authenticate(record.token)
            if route.permission not in account.permissions:
                raise GoSMSError(route.denied_code)
            body = self._body(is_json, parsed) if route.has_body else {}
            return route.handler(account, body, record.query)
        except GoSMSError as error:
            return _error(error.status, error.code, error.message)

    def _rate_limited(self, token: str, endpoint: str) -> bool:
        if self.per_endpoint_rps <= 0:
            return False
        now = time.monotonic()
        hits = self._hits.setdefault((token, endpoint), deque())
        while hits and now - hits[0] >= 1.0:
            hits.popleft()
        if len(hits) >= self.per_endpoint_rps:
            return True
        hits.append(now)
        return False

    def _take_injected(self, path: str) -> web.Response | None:
        for rule in self._injected:
            if path.startswith(rule.path_prefix):
                rule.times -= 1
                if rule.times <= 0:
                    self._injected.remove(rule)
                return _error(rule.status, rule.code, rule.message)
        return None

    async def _random_fault(self) -> web.Response | None:
        faults = self._faults
        roll = faults.rng.random()
        if roll < faults.rate_5xx:
            return _http_error(500)
        if roll < faults.rate_5xx + faults.rate_429:
            return _http_error(429)
        if faults.rate_slow > 0 and faults.rng.random() < faults.rate_slow:
            await asyncio.sleep(faults.slow_seconds)
        return None

    def _authenticate(self, token: str | None) -> _Account:
        account = self._accounts.get(token) if token else None
        if account is None:
            raise GoSMSError(1003)
        if account.blocked:
            raise GoSMSError(3000)
        if not account.active:
            raise GoSMSError(1002)
        return account

    @staticmethod
    def _body(is_json: bool, parsed: Any) -> Body:
        if not is_json or not isinstance(parsed, dict):
            raise GoSMSError(2009, "the body must be a JSON object")
        return parsed

    # ------------------------------------------------------------ endpoints

    def _send(self, account: _Account, body: Body, _query: Query) -> web.Response:
        message = _check_message(_string(body, "message"))
        phone = _check_phone(_string(body, "phone_number"))
        callback_id = _optional_id(body, "callback_id")
        device_id = _optional_id(body, "device_id")
        to_sim = _check_to_sim(body.get("to_sim"))
        if to_sim is not None and not device_id:
            raise GoSMSError(1017)
        self._choose_device(account, device_id, to_sim)
        if account.monthly_limit is not None and account.sent >= account.monthly_limit:
            raise GoSMSError(1006)
        account.sent += 1
        created = int(self.now())
        sms_id = self._create_sms(
            account.token, message, phone, created, device_id, to_sim, callback_id
        )
        return _json({"id": sms_id})

    def _choose_device(self, account: _Account, device_id: str, to_sim: int | None) -> None:
        own = [d for d in self._devices.values() if d.token == account.token]
        if not own:
            raise GoSMSError(1004)
        if not device_id:
            if not any(d.active for d in own):
                raise GoSMSError(1015)
            return
        device = self._devices.get(device_id)
        if device is None or device.token != account.token:
            raise GoSMSError(1016)
        if to_sim is not None and not 0 <= to_sim < device.sims:
            raise GoSMSError(2009, f"to_sim must be from 0 to {device.sims - 1}")
        if not device.active:
            raise GoSMSError(1015)

    def _own_sms(self, account: _Account, body: Body) -> _Sms:
        record = self._sms.get(_object_id(body))
        if record is None or record.token != account.token:
            raise GoSMSError(1008)
        return record

    def _get(self, account: _Account, body: Body, _query: Query) -> web.Response:
        return _json(self._own_sms(account, body).to_api())

    def _delete(self, account: _Account, body: Body, _query: Query) -> web.Response:
        record = self._own_sms(account, body)
        if self.now() - record.time_create < _DELETE_AFTER:
            raise GoSMSError(1010)
        del self._sms[record.id]
        return web.Response(status=204)

    def _list(self, account: _Account, _body: Body, query: Query) -> web.Response:
        limit = _query_int(query, "limit", 2008)
        if not 1 <= limit <= _MAX_LIMIT:
            raise GoSMSError(2008)
        offset = _query_int(query, "offset", 2009, default=1)
        if offset < 1:
            raise GoSMSError(2009, "offset must be 1 or more")
        search = query.get("search", "")
        matching = [s for s in self._newest_first(account.token) if not search or s.matches(search)]
        page = matching[(offset - 1) * limit : offset * limit]
        return _json(
            {
                "pagination": {"total_records": len(matching), "limit": limit, "offset": offset},
                "sms_list": [s.to_api() for s in page],
            }
        )

    def _own_device(self, account: _Account, body: Body) -> _Device:
        device = self._devices.get(_device_ref(body))
        if device is None or device.token != account.token:
            raise GoSMSError(1012)
        return device

    def _device_info(self, account: _Account, body: Body, _query: Query) -> web.Response:
        device = self._own_device(account, body)
        return _json(device.to_api_alt() if self.shape is Shape.ALT else device.to_api())

    def _device_edit(self, account: _Account, body: Body, _query: Query) -> web.Response:
        is_active = body.get("is_active")
        if is_active is not None and not isinstance(is_active, bool):
            raise GoSMSError(2009, "is_active must be a boolean")
        device = self._own_device(account, body)
        device.active = bool(is_active)  # missing (or null) means false: the device is switched off
        return web.Response(status=204)

    def _device_del(self, account: _Account, body: Body, _query: Query) -> web.Response:
        device = self._own_device(account, body)
        del self._devices[device.id]
        return web.Response(status=204)
