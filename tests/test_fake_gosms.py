"""Tests of the GoSMS test double itself, driven with a plain aiohttp.ClientSession."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.fakes.gosms import STATUS_TEXT, FakeGoSMS
from tests.fakes.shapes import Shape

TOKEN = "token-main"
OTHER = "token-other"
DEVICE = "6622a8bbd963898821ebf934"
UUID_DEVICE = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
MISSING_ID = "0123456789abcdef01234567"
SMS_KEYS = {
    "id",
    "message",
    "status",
    "callback_id",
    "device_id",
    "phone_number",
    "message_status",
    "time_create",
    "to_sim",
}
_NO_BODY: Any = object()


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def code(self) -> int:
        code = self.body["errors"]["code"]
        assert isinstance(code, int)
        return code


@dataclass
class Api:
    fake: FakeGoSMS
    session: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        json: Any = _NO_BODY,
        *,
        token: str | None = TOKEN,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        kwargs: dict[str, Any] = {"headers": headers, "params": params, "data": data}
        if json is not _NO_BODY:
            kwargs["json"] = json
        async with self.session.request(method, self.fake.url + path, **kwargs) as response:
            text = await response.text()
            body: Any = None
            if response.content_type == "application/json":
                body = await response.json()
            elif text:
                body = text
            return Reply(response.status, body, dict(response.headers))

    async def send(self, token: str = TOKEN, **fields: Any) -> Reply:
        body = {"message": "Hello", "phone_number": "79999999999"} | fields
        return await self.call("POST", "/sms/send", body, token=token)

    async def sent_id(self, **fields: Any) -> str:
        reply = await self.send(**fields)
        assert reply.status == 200, reply.body
        sms_id = reply.body["id"]
        assert isinstance(sms_id, str)
        return sms_id


@pytest.fixture
async def fake() -> AsyncIterator[FakeGoSMS]:
    async with FakeGoSMS() as server:
        server.add_account(TOKEN)
        server.add_device(TOKEN, device_id=DEVICE)
        server.add_account(OTHER)
        yield server


@pytest.fixture
async def api(fake: FakeGoSMS) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(fake, session)


def assert_error(reply: Reply, status: int, code: int) -> None:
    assert reply.status == status, reply.body
    assert reply.body == {"errors": {"code": code, "message": reply.body["errors"]["message"]}}
    assert isinstance(reply.body["errors"]["message"], str)
    assert reply.body["errors"]["message"]


# ---------------------------------------------------------------- success shapes


async def test_url_is_loopback_v1_base(fake: FakeGoSMS) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", fake.url)


async def test_send_returns_object_id_and_starts_waiting(api: Api, fake: FakeGoSMS) -> None:
    reply = await api.send()
    assert reply.status == 200
    assert set(reply.body) == {"id"}
    assert re.fullmatch(r"[0-9a-f]{24}", reply.body["id"])
    sms = fake.sms(reply.body["id"])
    assert (sms["status"], sms["message_status"]) == (0, "Ждет обработки")


async def test_get_answers_the_documented_sms_object(api: Api, fake: FakeGoSMS) -> None:
    sms_id = await api.sent_id(message="Привет", callback_id=MISSING_ID)
    reply = await api.call("POST", "/sms/get", {"id": sms_id})
    assert reply.status == 200
    assert set(reply.body) == SMS_KEYS
    assert reply.body["id"] == sms_id
    assert reply.body["message"] == "Привет"
    assert reply.body["phone_number"] == "79999999999"
    assert (reply.body["status"], reply.body["message_status"]) == (0, "Ждет обработки")
    assert (reply.body["device_id"], reply.body["to_sim"]) == ("", None)
    assert reply.body["callback_id"] == MISSING_ID
    assert abs(reply.body["time_create"] - time.time()) < 5


async def test_send_to_a_device_and_sim(api: Api) -> None:
    sms_id = await api.sent_id(device_id=DEVICE, to_sim=1)
    reply = await api.call("POST", "/sms/get", {"id": sms_id})
    assert (reply.body["device_id"], reply.body["to_sim"]) == (DEVICE, 1)


async def test_status_texts_follow_advance(api: Api, fake: FakeGoSMS) -> None:
    sms_id = await api.sent_id()
    seen = []
    for _ in range(4):
        fake.advance(sms_id)
        reply = await api.call("POST", "/sms/get", {"id": sms_id})
        seen.append((reply.body["status"], reply.body["message_status"]))
    assert seen == [
        (1, "Взято в обработку"),
        (2, "Отправлено"),
        (4, "Доставлено"),
        (4, "Доставлено"),
    ]
    fake.set_status(sms_id, 5)
    assert fake.sms(sms_id)["message_status"] == STATUS_TEXT[5] == "Ошибка доставки"


async def test_delete_takes_a_json_body_and_waits_five_minutes(api: Api, fake: FakeGoSMS) -> None:
    sms_id = await api.sent_id()
    assert_error(await api.call("DELETE", "/sms/del", {"id": sms_id}), 400, 1010)
    fake.advance_clock(300)
    reply = await api.call("DELETE", "/sms/del", {"id": sms_id})
    assert (reply.status, reply.body) == (204, None)
    assert_error(await api.call("POST", "/sms/get", {"id": sms_id}), 404, 1008)


async def test_delete_without_body_is_bad_input(api: Api) -> None:
    assert_error(await api.call("DELETE", "/sms/del"), 400, 2009)


async def test_list_pages_newest_first(api: Api, fake: FakeGoSMS) -> None:
    ids = [fake.add_sms(TOKEN, message=f"m{i}", time_create=1_700_000_000 + i) for i in range(5)]
    fake.add_sms(OTHER, message="not mine")
    pages = []
    for page in (1, 2, 3, 4):
        params = {"limit": "2", "offset": str(page)}
        reply = await api.call("GET", "/sms", params=params)
        assert reply.status == 200
        assert reply.body["pagination"] == {"total_records": 5, "limit": 2, "offset": page}
        assert all(set(sms) == SMS_KEYS for sms in reply.body["sms_list"])
        pages.append([sms["id"] for sms in reply.body["sms_list"]])
    newest_first = ids[::-1]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:], []]


async def test_list_offset_defaults_to_the_first_page(api: Api, fake: FakeGoSMS) -> None:
    fake.add_sms(TOKEN)
    reply = await api.call("GET", "/sms", params={"limit": "1"})
    assert reply.body["pagination"] == {"total_records": 1, "limit": 1, "offset": 1}
    assert len(reply.body["sms_list"]) == 1


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("HELLO", {"hello world"}),
        ("доставлено", {"delivered one"}),
        ("7001", {"by phone"}),
        ("", {"hello world", "delivered one", "by phone"}),
    ],
)
async def test_list_search(api: Api, fake: FakeGoSMS, search: str, expected: set[str]) -> None:
    fake.add_sms(TOKEN, message="hello world", phone_number="79990000000")
    fake.add_sms(TOKEN, message="delivered one", phone_number="79990000001", status=4)
    fake.add_sms(TOKEN, message="by phone", phone_number="79997001000")
    reply = await api.call("GET", "/sms", params={"limit": "100", "search": search})
    assert {sms["message"] for sms in reply.body["sms_list"]} == expected
    assert reply.body["pagination"]["total_records"] == len(expected)


async def test_device_info_shape(api: Api, fake: FakeGoSMS) -> None:
    reply = await api.call("POST", "/devices/get/info", {"id": DEVICE, "device_id": DEVICE})
    assert reply.status == 200
    body = reply.body
    assert list(body) == [
        "id",
        "device_id",
        "device_battery_state",
        "device_name",
        "is_active",
        "is_charging",
        "last_online_date",
        "console_data",
    ]
    assert body["id"] == DEVICE
    assert body["device_id"] == fake.device(DEVICE)["hardware_id"] != DEVICE
    assert (body["device_battery_state"], body["device_name"]) == ("57", "Poco M3")
    assert (body["is_active"], body["is_charging"], body["console_data"]) == (True, True, "")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["last_online_date"])


@pytest.mark.parametrize("device_id", [DEVICE.upper(), UUID_DEVICE, UUID_DEVICE.upper()])
async def test_object_id_and_uuid_device_ids(api: Api, fake: FakeGoSMS, device_id: str) -> None:
    if not fake.has_device(device_id):
        fake.add_device(TOKEN, device_id=device_id, name="Pixel")
    reply = await api.call("POST", "/devices/get/info", {"id": device_id, "device_id": device_id})
    assert reply.status == 200
    assert reply.body["id"] == device_id.lower()
    assert (await api.send(device_id=device_id)).status == 200


@pytest.mark.parametrize("keys", [("id",), ("device_id",), ("id", "device_id")])
async def test_device_id_under_either_key(api: Api, keys: tuple[str, ...]) -> None:
    body = dict.fromkeys(keys, DEVICE)
    assert (await api.call("POST", "/devices/get/info", body)).status == 200
    assert (await api.call("POST", "/devices/edit", body | {"is_active": True})).status == 204
    assert (await api.call("POST", "/devices/del", body)).status == 204


async def test_device_id_keys_that_differ_are_bad_input(api: Api, fake: FakeGoSMS) -> None:
    other = fake.add_device(TOKEN)
    for path in ("/devices/get/info", "/devices/edit", "/devices/del"):
        reply = await api.call("POST", path, {"id": DEVICE, "device_id": other})
        assert_error(reply, 400, 2009)
    assert fake.has_device(DEVICE)
    assert fake.has_device(other)


async def test_edit_without_is_active_deactivates(api: Api, fake: FakeGoSMS) -> None:
    reply = await api.call("POST", "/devices/edit", {"id": DEVICE, "device_id": DEVICE})
    assert (reply.status, fake.device(DEVICE)["active"]) == (204, False)
    await api.call("POST", "/devices/edit", {"id": DEVICE, "is_active": True})
    assert fake.device(DEVICE)["active"] is True
    await api.call("POST", "/devices/edit", {"id": DEVICE, "is_active": False})
    assert fake.device(DEVICE)["active"] is False


async def test_edit_is_active_must_be_a_boolean(api: Api, fake: FakeGoSMS) -> None:
    reply = await api.call("POST", "/devices/edit", {"id": DEVICE, "is_active": "true"})
    assert_error(reply, 400, 2009)
    assert fake.device(DEVICE)["active"] is True


async def test_device_delete(api: Api, fake: FakeGoSMS) -> None:
    reply = await api.call("POST", "/devices/del", {"id": DEVICE, "device_id": DEVICE})
    assert (reply.status, fake.has_device(DEVICE)) == (204, False)
    assert_error(await api.call("POST", "/devices/get/info", {"id": DEVICE}), 404, 1012)


async def test_set_device_shows_in_info(api: Api, fake: FakeGoSMS) -> None:
    fake.set_device(DEVICE, battery=9, charging=False, console="<b>boot</b>", name="A & B")
    body = (await api.call("POST", "/devices/get/info", {"id": DEVICE})).body
    assert body["device_battery_state"] == "9"
    assert (body["is_charging"], body["console_data"], body["device_name"]) == (
        False,
        "<b>boot</b>",
        "A & B",
    )
    with pytest.raises(TypeError):
        fake.set_device(DEVICE, colour="red")


# ---------------------------------------------------------------- auth and account errors


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"bearer {TOKEN}"}, {"X": TOKEN}],
)
async def test_unknown_or_missing_token_is_1003(api: Api, headers: dict[str, str]) -> None:
    url = api.fake.url + "/sms"
    async with api.session.get(url, params={"limit": "1"}, headers=headers) as response:
        body = await response.json()
    assert (response.status, body["errors"]["code"]) == (401, 1003)


async def test_deleted_key_is_1003(api: Api, fake: FakeGoSMS) -> None:
    fake.delete_key(TOKEN)
    assert_error(await api.call("GET", "/sms", params={"limit": "1"}), 401, 1003)


async def test_switched_off_key_is_1002(api: Api, fake: FakeGoSMS) -> None:
    fake.set_key_active(TOKEN, False)
    assert_error(await api.send(), 403, 1002)
    fake.set_key_active(TOKEN, True)
    assert (await api.send()).status == 200


async def test_blocked_account_is_3000(api: Api, fake: FakeGoSMS) -> None:
    fake.block(TOKEN)
    assert_error(await api.call("GET", "/sms", params={"limit": "1"}), 403, 3000)


@pytest.mark.parametrize(
    ("permission", "method", "path", "code"),
    [
        ("send", "POST", "/sms/send", 1005),
        ("get", "POST", "/sms/get", 1007),
        ("delete", "DELETE", "/sms/del", 1009),
        ("list", "GET", "/sms?limit=1", 1011),
        ("device_info", "POST", "/devices/get/info", 1013),
        ("device_edit", "POST", "/devices/edit", 1014),
        ("device_edit", "POST", "/devices/del", 1014),
    ],
)
async def test_missing_permission(
    api: Api, fake: FakeGoSMS, permission: str, method: str, path: str, code: int
) -> None:
    all_but_one = {"send", "get", "delete", "list", "device_info", "device_edit"} - {permission}
    fake.add_account("narrow", permissions=all_but_one)
    fake.add_device("narrow", device_id=MISSING_ID)
    reply = await api.call(method, path, {"id": MISSING_ID}, token="narrow")
    assert_error(reply, 403, code)
    assert fake.has_device(MISSING_ID)


async def test_unknown_permission_name_is_refused(fake: FakeGoSMS) -> None:
    with pytest.raises(ValueError, match="unknown permissions"):
        fake.add_account("x", permissions={"sned"})


async def test_monthly_limit_is_1006(api: Api, fake: FakeGoSMS) -> None:
    fake.add_account("metered", monthly_limit=1)
    fake.add_device("metered")
    fake.add_sms("metered")  # seeded SMS do not count
    assert (await api.send("metered")).status == 200
    assert_error(await api.send("metered"), 403, 1006)
    assert len(fake.sms_of("metered")) == 2


# ---------------------------------------------------------------- sms and device errors


async def test_no_devices_is_1004(api: Api) -> None:
    assert_error(await api.send(OTHER), 400, 1004)


async def test_no_enabled_device_is_1015(api: Api, fake: FakeGoSMS) -> None:
    fake.set_device(DEVICE, active=False)
    assert_error(await api.send(), 400, 1015)
    assert_error(await api.send(device_id=DEVICE), 400, 1015)
    assert fake.sms_of(TOKEN) == []


async def test_unknown_device_on_send_is_1016(api: Api, fake: FakeGoSMS) -> None:
    foreign = fake.add_device(OTHER)
    assert_error(await api.send(device_id=MISSING_ID), 400, 1016)
    assert_error(await api.send(device_id=foreign), 400, 1016)


async def test_to_sim_without_device_is_1017(api: Api) -> None:
    assert_error(await api.send(to_sim=0), 400, 1017)
    assert_error(await api.send(device_id="", to_sim=1), 400, 1017)


@pytest.mark.parametrize("to_sim", [-1, 2, True, "0", 0.0])
async def test_bad_to_sim_is_2009(api: Api, to_sim: Any) -> None:
    assert_error(await api.send(device_id=DEVICE, to_sim=to_sim), 400, 2009)


async def test_sms_not_found_is_1008(api: Api, fake: FakeGoSMS) -> None:
    foreign = fake.add_sms(OTHER)
    assert_error(await api.call("POST", "/sms/get", {"id": MISSING_ID}), 404, 1008)
    assert_error(await api.call("POST", "/sms/get", {"id": foreign}), 404, 1008)
    assert_error(await api.call("DELETE", "/sms/del", {"id": foreign}), 404, 1008)


async def test_device_not_found_is_1012(api: Api, fake: FakeGoSMS) -> None:
    foreign = fake.add_device(OTHER)
    for path in ("/devices/get/info", "/devices/edit", "/devices/del"):
        for device_id in (MISSING_ID, UUID_DEVICE, foreign):
            reply = await api.call("POST", path, {"id": device_id, "device_id": device_id})
            assert_error(reply, 404, 1012)
    assert fake.device(foreign)["active"] is True


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"message": ""}, 2001),
        ({"message": "   "}, 2001),
        ({"message": None}, 2001),
        ({"message": "x" * 301}, 2002),
        ({"message": "run `rm`"}, 2003),
        ({"phone_number": ""}, 2004),
        ({"phone_number": "+79999999999"}, 2005),
        ({"phone_number": "7999 999"}, 2005),
        ({"phone_number": "12"}, 2006),
        ({"phone_number": "1" * 31}, 2006),
        ({"device_id": "not-an-id"}, 2007),
        ({"callback_id": "123"}, 2007),
        ({"message": 5}, 2009),
        ({"phone_number": 79999999999}, 2009),
    ],
)
async def test_send_bad_input(api: Api, fake: FakeGoSMS, fields: dict[str, Any], code: int) -> None:
    assert_error(await api.send(**fields), 400, code)
    assert fake.sms_of(TOKEN) == []


@pytest.mark.parametrize(("message", "phone"), [("x" * 300, "123"), ("ё", "1" * 30)])
async def test_send_edge_lengths_pass(api: Api, message: str, phone: str) -> None:
    assert (await api.send(message=message, phone_number=phone)).status == 200


@pytest.mark.parametrize(
    "body", [{}, {"id": "xyz"}, {"id": ""}, {"id": "6654a4e8f1527149588c89fz"}]
)
async def test_malformed_sms_id_is_2007(api: Api, body: dict[str, str]) -> None:
    assert_error(await api.call("POST", "/sms/get", body), 400, 2007)


async def test_malformed_device_id_is_2007(api: Api) -> None:
    reply = await api.call("POST", "/devices/get/info", {"id": "3f2504e0-4f89-11d3-9a0c"})
    assert_error(reply, 400, 2007)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, 2008),
        ({"limit": "0"}, 2008),
        ({"limit": "101"}, 2008),
        ({"limit": "ten"}, 2008),
        ({"limit": "5", "offset": "0"}, 2009),
        ({"limit": "5", "offset": "-1"}, 2009),
        ({"limit": "5", "offset": "one"}, 2009),
    ],
)
async def test_list_bad_query(api: Api, params: dict[str, str], code: int) -> None:
    assert_error(await api.call("GET", "/sms", params=params), 400, code)


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"id"', b"\xff"])
async def test_body_must_be_a_json_object(api: Api, raw: bytes) -> None:
    assert_error(await api.call("POST", "/sms/get", data=raw), 400, 2009)


@pytest.mark.parametrize(("method", "path"), [("GET", "/sms/send"), ("POST", "/nope")])
async def test_unknown_route_is_404(api: Api, method: str, path: str) -> None:
    assert_error(await api.call(method, path, {}), 404, 404)


# ---------------------------------------------------------------- rate limit and faults


async def test_eleventh_request_in_a_second_is_429(api: Api, fake: FakeGoSMS) -> None:
    replies = await asyncio.gather(
        *(api.call("GET", "/sms", params={"limit": "1"}) for _ in range(11))
    )
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] * 10 + [429]
    limited = next(reply for reply in replies if reply.status == 429)
    assert limited.body == {"errors": {"code": 429, "message": "Too Many Requests"}}
    assert limited.headers["Retry-After"] == "1"
    assert (await api.call("POST", "/sms/get", {"id": MISSING_ID})).status == 404
    other = await api.call("GET", "/sms", params={"limit": "1"}, token=OTHER)
    assert other.status == 200
    await asyncio.sleep(1.05)
    assert (await api.call("GET", "/sms", params={"limit": "1"})).status == 200


async def test_limited_requests_change_no_state(api: Api, fake: FakeGoSMS) -> None:
    replies = await asyncio.gather(*(api.send() for _ in range(12)))
    assert sorted(reply.status for reply in replies) == [200] * 10 + [429] * 2
    assert len(fake.sms_of(TOKEN)) == 10
    assert [r.status for r in fake.requests_for(TOKEN, "/sms/send")].count(429) == 2


async def test_rate_limit_is_configurable() -> None:
    async with FakeGoSMS(per_endpoint_rps=2) as fake, aiohttp.ClientSession() as session:
        fake.add_account(TOKEN)
        api = Api(fake, session)
        statuses = [(await api.call("GET", "/sms", params={"limit": "1"})).status for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_fail_next(api: Api, fake: FakeGoSMS) -> None:
    fake.fail_next("/sms/send", 500, code=1, message="boom", times=2)
    fake.fail_next("/devices", 429)
    for _ in range(2):
        reply = await api.send()
        assert (reply.status, reply.body) == (500, {"errors": {"code": 1, "message": "boom"}})
    reply = await api.call("POST", "/devices/get/info", {"id": DEVICE})
    assert (reply.status, reply.code, reply.headers["Retry-After"]) == (429, 429, "1")
    assert len(fake.sms_of(TOKEN)) == 0
    assert (await api.send()).status == 200
    assert (await api.call("POST", "/devices/get/info", {"id": DEVICE})).status == 200


async def test_down_answers_html_503(api: Api, fake: FakeGoSMS) -> None:
    fake.set_down(True)
    reply = await api.send()
    assert reply.status == 503
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "503" in reply.body
    assert fake.sms_of(TOKEN) == []
    fake.set_down(False)
    assert (await api.send()).status == 200


async def test_fault_rates(api: Api, fake: FakeGoSMS) -> None:
    fake.set_fault_rates(rate_5xx=1.0, seed=1)
    assert_error(await api.send(), 500, 500)
    fake.set_fault_rates(rate_429=1.0, seed=1)
    assert_error(await api.send(), 429, 429)
    fake.set_fault_rates(rate_slow=1.0, slow_seconds=0.2, seed=1)
    started = time.monotonic()
    assert (await api.send()).status == 200
    assert time.monotonic() - started >= 0.2
    fake.set_fault_rates()
    assert (await api.send()).status == 200
    with pytest.raises(ValueError, match="exceed"):
        fake.set_fault_rates(rate_5xx=0.6, rate_429=0.6)


async def test_seeded_fault_rates_repeat(api: Api, fake: FakeGoSMS) -> None:
    fake.per_endpoint_rps = 0  # no rate limit
    runs = []
    for _ in range(2):
        fake.set_fault_rates(rate_5xx=0.5, seed=7)
        runs.append([(await api.call("POST", "/sms/get", {"id": "x"})).status for _ in range(8)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {400, 500}


async def test_latency(api: Api, fake: FakeGoSMS) -> None:
    fake.set_latency(0.2)
    started = time.monotonic()
    assert (await api.send()).status == 200
    assert time.monotonic() - started >= 0.2


# ---------------------------------------------------------------- recording


async def test_requests_are_recorded(api: Api, fake: FakeGoSMS) -> None:
    sms_id = await api.sent_id()
    await api.call("GET", "/sms", params={"limit": "5", "search": "Hel"})
    await api.call("POST", "/sms/get", {"id": sms_id}, token=None)
    send, listing, anonymous = fake.requests
    assert (send.method, send.path, send.token, send.status) == ("POST", "/sms/send", TOKEN, 200)
    assert send.json == {"message": "Hello", "phone_number": "79999999999"}
    assert (listing.query, listing.json) == ({"limit": "5", "search": "Hel"}, None)
    assert (anonymous.token, anonymous.status) == (None, 401)
    assert send.at <= listing.at <= anonymous.at
    assert fake.requests_for(TOKEN) == [send, listing]
    assert fake.requests_for(TOKEN, "/sms/send") == [send]
    assert fake.requests_for(OTHER) == []


async def test_device_info_in_the_newer_docs_shape(api: Api, fake: FakeGoSMS) -> None:
    fake.shape = Shape.ALT
    reply = await api.call("POST", "/devices/get/info", {"id": DEVICE, "device_id": DEVICE})
    body = reply.body
    assert "id" not in body
    assert body["device_id"] == DEVICE, "the newer doc names the device by device_id alone"
    assert (body["device_battery_state"], body["is_active"], body["is_charging"]) == (57, 1, "true")
    assert "console_data" not in body, "an empty console is left out"
    fake.shape = Shape.DOCS
    assert "console_data" in (await api.call("POST", "/devices/get/info", {"id": DEVICE})).body
