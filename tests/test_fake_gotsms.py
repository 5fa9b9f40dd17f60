"""Tests of the GotSMS test double itself, driven with plain aiohttp requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.shapes import Shape

TOKEN = "token-alice"
OTHER = "token-bob"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class Client:
    """A thin helper around one ``aiohttp.ClientSession`` aimed at the fake."""

    def __init__(self, fake: FakeGotSMS, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = TOKEN,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Answer:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.fake.url + path, headers=headers, params=params, json=json
        ) as response:
            is_json = response.content_type == "application/json"
            body = await response.json() if is_json else await response.text()
            return Answer(response.status, body, dict(response.headers))

    async def get(self, path: str, **params: str) -> Answer:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, json: dict[str, Any] | None = None) -> Answer:
        return await self.call("POST", path, json=json)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGotSMS]:
    async with FakeGotSMS() as server:
        server.add_account(TOKEN, balance=100.0)
        server.add_account(OTHER, balance=100.0)
        yield server
        assert server.errors == []


@pytest.fixture
async def client(fake: FakeGotSMS) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(fake, session)


def plan_id(fake: FakeGotSMS, service: str, kind: str, amount: int) -> str:
    return str(fake.plan_by(service, kind, amount)["id"])


async def rent(client: Client, service: str = "Telegram", kind: str = "day", n: int = 1) -> Any:
    answer = await client.post("/rents", {"plan_id": plan_id(client.fake, service, kind, n)})
    assert answer.status == 201, answer.body
    return answer.body["data"]


# ------------------------------------------------------------------------------ auth


async def test_missing_or_unknown_token_is_401(client: Client) -> None:
    for token in (None, "nope"):
        answer = await client.call("GET", "/account", token=token)
        assert answer.status == 401
        assert answer.body == {"success": False, "message": "Unauthenticated."}


async def test_forbidden_token_is_403(client: Client) -> None:
    client.fake.forbid(TOKEN)
    answer = await client.get("/account")
    assert answer.status == 403
    assert answer.body["success"] is False


async def test_unknown_route_is_404(client: Client) -> None:
    answer = await client.get("/nothing")
    assert answer.status == 404
    assert answer.body["success"] is False


# ------------------------------------------------------------------------------ catalog


async def test_pricelist_needs_no_token(client: Client) -> None:
    answer = await client.call("GET", "/pricelist", token=None)
    assert answer.status == 200
    services = {row["name"]: row["plans"] for row in answer.body["data"]}
    assert {"Telegram", "WhatsApp", "Google", "Discord"} <= services.keys()
    day = next(p for p in services["Telegram"] if p["period_type"] == "day" and p["period"] == 1)
    assert day == {
        "service_name": "Telegram",
        "period": 1,
        "period_type": "day",
        "period_type_label": "day",
        "duration_translation": "1 day",
        "price": 1,
        "renew_price": 1,
        "country": "USA",
        "billing_type": "duration",
    }
    assert "X-RateLimit-Remaining" in answer.headers


async def test_account_balance(client: Client) -> None:
    client.fake.set_balance(TOKEN, 125.5)
    answer = await client.get("/account")
    assert answer.status == 200
    assert answer.body == {"success": True, "data": {"balance": 125.5}}


async def test_services_search_and_pagination(client: Client) -> None:
    found = await client.get("/services", search="gram")
    assert [s["name"] for s in found.body["data"]] == ["Instagram", "Telegram"]
    assert found.body["meta"] == {"current_page": 1, "last_page": 1, "per_page": 25, "total": 2}

    total = len(client.fake.services)
    page2 = await client.get("/services", per_page="5", page="2")
    assert len(page2.body["data"]) == 5
    assert page2.body["meta"]["last_page"] == -(-total // 5)
    assert page2.body["meta"]["current_page"] == 2

    too_big = await client.get("/services", per_page="101")
    assert too_big.status == 422
    assert too_big.body["message"] == "The per page field must not be greater than 100."
    assert "per_page" in too_big.body["errors"]


async def test_plans_filters(client: Client) -> None:
    telegram = next(s["id"] for s in client.fake.services if s["name"] == "Telegram")
    usa = next(c["id"] for c in client.fake.countries if c["name"] == "USA")
    answer = await client.get(
        "/rents/plans", service_id=telegram, country_id=usa, duration_type="month"
    )
    plans = answer.body["data"]
    assert [p["duration_in_type"] for p in plans] == [1, 3, 6, 12]
    assert all(p["is_monthly_supported"] for p in plans)
    assert plans[0]["duration_in_minutes"] == 43200
    assert set(plans[0]) == {
        "id",
        "service",
        "country",
        "billing_type",
        "duration_type",
        "duration_in_type",
        "duration_in_minutes",
        "duration_translation",
        "price",
        "renew_price",
        "is_monthly_supported",
    }
    sms = await client.get("/rents/plans", billing_type="sms")
    assert [p["billing_type"] for p in sms.body["data"]] == ["sms"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"duration_type": "days"}, "The selected duration type is invalid."),
        ({"billing_type": "free"}, "The selected billing type is invalid."),
        ({"service_id": "123"}, "The service id field must be a valid UUID."),
        ({"per_page": "0"}, "The per page field must be at least 1."),
        ({"page": "x"}, "The page field must be an integer."),
    ],
)
async def test_plans_validation(client: Client, params: dict[str, str], message: str) -> None:
    answer = await client.get("/rents/plans", **params)
    assert answer.status == 422
    assert answer.body["success"] is False
    assert answer.body["message"] == message
    assert list(answer.body["errors"]) == list(params)


# ------------------------------------------------------------------------------ rents


async def test_rent_create_deducts_and_lists(client: Client) -> None:
    target = client.fake.plan_by("WhatsApp", "day", 1)
    answer = await client.post("/rents", {"plan_id": target["id"], "area_code": "415"})
    assert answer.status == 201
    assert answer.body["message"] == "Rent created successfully."
    created = answer.body["data"]
    assert created["phone"].startswith("+1 415 ")
    assert created["status"] == "active"
    assert created["plan"]["id"] == target["id"]
    assert created["can_wake_up"] is True
    assert len(created["transition_options"]) == 4
    assert client.fake.balance(TOKEN) == round(100 - target["price"], 2)
    assert client.fake.plan_by("WhatsApp", "day", 1)["stock"] == target["stock"] - 1

    listed = await client.get("/rents", status="active")
    assert listed.body["data"] == [created]
    assert listed.body["meta"]["per_page"] == 20
    assert (await client.get("/rents", status="finished")).body["data"] == []
    assert (await client.get("/rents", phone="415")).body["meta"]["total"] == 1
    assert (await client.get("/rents", service="tele")).body["data"] == []


async def test_rents_are_newest_first_and_expire(client: Client) -> None:
    first = await rent(client)
    second = await rent(client, "Google")
    listed = await client.get("/rents")
    assert [r["id"] for r in listed.body["data"]] == [second["id"], first["id"]]
    client.fake.advance(86400 + 1)
    statuses = {r["id"]: r["status"] for r in (await client.get("/rents")).body["data"]}
    assert statuses == {first["id"]: "finished", second["id"]: "finished"}


async def test_rent_validation(client: Client) -> None:
    missing = await client.post("/rents", {})
    assert missing.status == 422
    assert missing.body["message"] == "The plan id field is required."
    bad = await client.post("/rents", {"plan_id": "not-a-uuid"})
    assert bad.body["errors"] == {"plan_id": ["The plan id field must be a valid UUID."]}
    unknown = await client.post("/rents", {"plan_id": "9d3f8f6a-1b2c-4d5e-8f90-1a2b3c4d5e6f"})
    assert unknown.body["message"] == "The selected plan id is invalid."
    assert client.fake.balance(TOKEN) == 100.0


async def test_out_of_stock(client: Client) -> None:
    target = plan_id(client.fake, "Discord", "day", 1)
    client.fake.set_stock(target, 0)
    answer = await client.post("/rents", {"plan_id": target})
    assert answer.status == 422
    assert answer.body == {"success": False, "message": "No number available for this service."}
    assert client.fake.balance(TOKEN) == 100.0


async def test_insufficient_balance(client: Client) -> None:
    client.fake.set_balance(TOKEN, 0.5)
    answer = await client.post("/rents", {"plan_id": plan_id(client.fake, "Telegram", "day", 1)})
    assert answer.status == 422
    assert answer.body == {"success": False, "message": "Insufficient balance."}
    assert client.fake.balance(TOKEN) == 0.5
    assert client.fake.rents_of(TOKEN) == []


async def test_transition_rules_and_success(client: Client) -> None:
    monthly = await rent(client, "Telegram", "month", 1)
    three = plan_id(client.fake, "Telegram", "month", 3)
    refused = await client.post(f"/rents/{monthly['id']}/transition", {"plan_id": three})
    assert refused.status == 422
    assert (
        refused.body["message"] == "Current rent plan must be daily for this transition endpoint."
    )

    daily = await rent(client, "Telegram", "day", 1)
    assert three in [o["id"] for o in daily["transition_options"]]
    wrong = plan_id(client.fake, "Google", "month", 3)
    other_service = await client.post(f"/rents/{daily['id']}/transition", {"plan_id": wrong})
    assert other_service.status == 422

    before = client.fake.balance(TOKEN)
    price = client.fake.plan_by("Telegram", "month", 3)["price"]
    answer = await client.post(f"/rents/{daily['id']}/transition", {"plan_id": three})
    assert answer.status == 200
    assert answer.body == {
        "success": True,
        "message": "Plan transitioned successfully.",
        "data": {"id": daily["id"], "status": "active"},
    }
    assert client.fake.balance(TOKEN) == round(before - price, 2)
    moved = next(r for r in client.fake.rents_of(TOKEN) if r["id"] == daily["id"])
    assert moved["plan"]["id"] == three
    assert moved["phone"] == daily["phone"]
    assert moved["transition_options"] == []


async def test_renewal_toggle_only_for_monthly(client: Client) -> None:
    daily = await rent(client, "Telegram", "day", 7)
    refused = await client.post(f"/rents/{daily['id']}/renewal/toggle")
    assert refused.status == 422
    assert refused.body["message"] == "Auto renewal can be toggled only for monthly 1/3/6/12 plans."

    monthly = await rent(client, "Telegram", "month", 6)
    on = await client.post(f"/rents/{monthly['id']}/renewal/toggle")
    assert on.body == {
        "success": True,
        "message": "Auto renewal enabled.",
        "data": {"id": monthly["id"], "is_included_for_next_renewal": True},
    }
    off = await client.post(f"/rents/{monthly['id']}/renewal/toggle")
    assert off.body["message"] == "Auto renewal disabled."
    assert off.body["data"]["is_included_for_next_renewal"] is False


async def test_refund_rules_and_balance_back(client: Client) -> None:
    fake = client.fake
    with_sms = await rent(client)
    fake.inject_message(with_sms["id"], "Your code is 1234")
    refused = await client.post(f"/rents/{with_sms['id']}/refund")
    assert refused.status == 422
    assert refused.body == {"success": False, "message": "Refund not available for this rent."}

    old = await rent(client)
    fake.set_rent_created(old["id"], fake.now() - timedelta(minutes=21))
    assert (await client.post(f"/rents/{old['id']}/refund")).status == 422

    fresh = await rent(client, "WhatsApp", "month", 1)
    before = fake.balance(TOKEN)
    answer = await client.post(f"/rents/{fresh['id']}/refund")
    assert answer.status == 200
    assert answer.body == {
        "success": True,
        "message": "Rent has been refunded successfully.",
        "data": {"id": fresh["id"], "status": "finished"},
    }
    assert fake.balance(TOKEN) == round(before + fresh["price"], 2)
    again = await client.post(f"/rents/{fresh['id']}/refund")
    assert again.status == 422
    assert fake.balance(TOKEN) == round(before + fresh["price"], 2)


async def test_other_tokens_rent_is_404(client: Client) -> None:
    theirs = client.fake.create_rent(OTHER, plan_id(client.fake, "Telegram", "day", 1))
    for method, path in [
        ("POST", f"/rents/{theirs['id']}/refund"),
        ("POST", f"/rents/{theirs['id']}/renewal/toggle"),
        ("POST", f"/numbers/{theirs['id']}/wake-up"),
        ("GET", f"/numbers/{theirs['id']}/status"),
        ("GET", f"/numbers/{theirs['id']}/messages"),
        ("GET", "/numbers/not-a-uuid/status"),
    ]:
        answer = await client.call(method, path)
        assert answer.status == 404, path
        assert answer.body["success"] is False
        assert isinstance(answer.body["message"], str)
    assert client.fake.rents_of(OTHER)[0]["status"] == "active"


# ------------------------------------------------------------------------------ numbers


async def test_wake_up_and_status_times(client: Client) -> None:
    fake = client.fake
    rented = await rent(client)
    idle = await client.get(f"/numbers/{rented['id']}/status")
    assert idle.body["data"]["can_wake_up"] is True
    assert idle.body["data"]["wake_from"] is None

    woke = await client.post(f"/numbers/{rented['id']}/wake-up")
    assert woke.body == {"success": True, "message": "Wake up request sent."}
    again = await client.post(f"/numbers/{rented['id']}/wake-up")
    assert again.status == 422

    fake.advance(180)
    status = (await client.get(f"/numbers/{rented['id']}/status")).body["data"]
    assert set(status) == {
        "rent_id",
        "status",
        "active_from",
        "active_till",
        "wake_from",
        "wake_till",
        "online_till",
        "wakeup_time_left_seconds",
        "online_time_left_seconds",
        "can_wake_up",
    }
    assert 118 <= status["wakeup_time_left_seconds"] <= 121
    assert status["online_time_left_seconds"] == 1800
    assert status["can_wake_up"] is False

    fake.advance(600)
    later = (await client.get(f"/numbers/{rented['id']}/status")).body["data"]
    assert later["wakeup_time_left_seconds"] == 0
    assert 1318 <= later["online_time_left_seconds"] <= 1321
    fake.advance(1400)
    listed = (await client.get("/rents")).body["data"][0]
    assert listed["can_wake_up"] is True
    assert listed["wake_from"] == status["wake_from"]


async def test_number_messages_before_id_paging(client: Client) -> None:
    rented = await rent(client)
    bodies = [f"Code {1000 + i}" for i in range(5)]
    for body in bodies:
        client.fake.inject_message(rented["id"], body)
    path = f"/numbers/{rented['id']}/messages"

    first = await client.get(path, limit="2")
    assert [m["body"] for m in first.body["data"]] == ["Code 1004", "Code 1003"]
    assert first.body["data"][0]["code"] == "1004"
    assert first.body["meta"] == {"next_before_id": first.body["data"][1]["id"], "count": 2}
    assert set(first.body["data"][0]) == {"id", "from", "to", "body", "code", "received_at"}

    seen = [m["body"] for m in first.body["data"]]
    cursor = first.body["meta"]["next_before_id"]
    while cursor is not None:
        page = await client.get(path, limit="2", before_id=cursor)
        seen += [m["body"] for m in page.body["data"]]
        cursor = page.body["meta"]["next_before_id"]
    assert seen == bodies[::-1]
    assert (await client.get(path, limit="101")).status == 422


# ------------------------------------------------------------------------------ messages


async def test_unread_and_mark_as_read(client: Client) -> None:
    fake = client.fake
    rented = await rent(client)
    for i in range(3):
        fake.inject_message(rented["id"], f"Your verification code is 55500{i}")

    rejected = await client.get("/messages/unread", mark_as_read="true")
    assert rejected.status == 422
    assert "mark_as_read" in rejected.body["errors"]
    assert len(fake.unread_of(TOKEN)) == 3

    page = await client.get("/messages/unread", per_page="2", mark_as_read="1")
    assert [m["code"] for m in page.body["data"]] == ["555002", "555001"]
    assert page.body["meta"]["total"] == 3
    message = page.body["data"][0]
    assert set(message) == {
        "id",
        "rent_id",
        "service",
        "phone",
        "from",
        "to",
        "body",
        "code",
        "received_at",
    }
    assert message["rent_id"] == rented["id"]
    assert message["phone"] == rented["phone"]
    assert [m["code"] for m in fake.unread_of(TOKEN)] == ["555000"]

    rest = await client.get("/messages/unread", mark_as_read="0")
    assert [m["code"] for m in rest.body["data"]] == ["555000"]
    assert len(fake.unread_of(TOKEN)) == 1
    history = await client.get("/messages", phone=rented["phone"])
    assert history.body["meta"]["total"] == 3


async def test_messages_validation(client: Client) -> None:
    too_long = await client.get("/messages", phone="1" * 33)
    assert too_long.status == 422
    assert too_long.body["message"] == "The phone field must not be greater than 32 characters."
    not_uuid = await client.get("/messages", service_id="telegram")
    assert not_uuid.body["errors"] == {"service_id": ["The service id field must be a valid UUID."]}
    assert (await client.get("/messages", per_page="100")).status == 200


# ------------------------------------------------------------------------------ rate limit


async def test_rate_limit_31st_request_is_429(client: Client) -> None:
    remaining = []
    for _ in range(30):
        answer = await client.get("/account")
        assert answer.status == 200
        assert answer.headers["X-RateLimit-Limit"] == "30"
        assert int(answer.headers["X-RateLimit-Reset"]) >= int(time.time())
        remaining.append(int(answer.headers["X-RateLimit-Remaining"]))
    assert remaining == list(range(29, -1, -1))

    target = plan_id(client.fake, "Telegram", "day", 1)
    limited = await client.post("/rents", {"plan_id": target})
    assert limited.status == 429
    assert limited.body == {"success": False, "message": "Too Many Attempts."}
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert client.fake.balance(TOKEN) == 100.0  # a limited request changes nothing
    assert client.fake.rents_of(TOKEN) == []
    assert client.fake.calls_per_minute(TOKEN) == 31

    other = await client.call("GET", "/account", token=OTHER)
    assert other.status == 200  # budgets are per token


async def test_rate_limit_window_slides() -> None:
    async with FakeGotSMS(rate_limit=2, window=0.3) as fake, aiohttp.ClientSession() as session:
        fake.add_account(TOKEN)
        client = Client(fake, session)
        assert (await client.get("/account")).status == 200
        assert (await client.get("/pricelist")).status == 200  # shares the token budget
        limited = await client.get("/services")
        assert limited.status == 429
        assert limited.headers["Retry-After"] == "1"
        public = await client.call("GET", "/pricelist", token=None)
        assert public.headers["X-RateLimit-Remaining"] == "1"  # per client IP without a token
        await asyncio.sleep(0.35)
        assert (await client.get("/account")).status == 200


# ------------------------------------------------------------------------------ faults


async def test_fail_next(client: Client) -> None:
    fake = client.fake
    fake.fail_next("/account", 503, times=2, retry_after=7)
    for _ in range(2):
        answer = await client.get("/account")
        assert answer.status == 503
        assert answer.headers["Retry-After"] == "7"
        assert answer.body["success"] is False
    assert (await client.get("/account")).status == 200

    fake.fail_next("/rents", 500, method="POST", after=True)
    target = plan_id(fake, "Telegram", "day", 1)
    lost = await client.post("/rents", {"plan_id": target})
    assert lost.status == 500
    assert len(fake.rents_of(TOKEN)) == 1  # the rent happened anyway

    assert [r.status for r in fake.requests_for(TOKEN, "/account")] == [503, 503, 200]


async def test_down_answers_html_503(client: Client) -> None:
    client.fake.set_down(True)
    answer = await client.get("/account")
    assert answer.status == 503
    assert "<html>" in answer.body
    client.fake.set_down(False)
    assert (await client.get("/account")).status == 200


async def test_requests_are_recorded(client: Client) -> None:
    await client.get("/services", search="tele")
    recorded = client.fake.requests[-1]
    assert (recorded.method, recorded.path, recorded.query) == (
        "GET",
        "/services",
        {"search": "tele"},
    )
    assert recorded.token == TOKEN
    assert recorded.status == 200
    assert recorded.headers["Accept"] == "application/json"


async def test_body_is_read_by_content_type(client: Client) -> None:
    target = plan_id(client.fake, "Telegram", "day", 1)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    url = client.fake.url + "/rents"
    raw_json = f'{{"plan_id": "{target}"}}'
    async with client.session.post(url, data=raw_json, headers=headers) as untyped:
        assert untyped.status == 422  # JSON text without a JSON Content-Type is not read
    async with client.session.post(url, data={"plan_id": target}, headers=headers) as form:
        assert form.status == 201  # form bodies are accepted, as by Laravel
    wrong_method = await client.call("GET", f"/rents/{target}/refund")
    assert wrong_method.status == 405


async def test_auto_renewal_at_expiry(client: Client) -> None:
    fake = client.fake
    monthly = await rent(client, "Telegram", "month", 1)
    await client.post(f"/rents/{monthly['id']}/renewal/toggle")
    balance = fake.balance(TOKEN)
    fake.advance(30 * 86400 + 1)
    renewed = fake.rents_of(TOKEN)[0]
    assert renewed["status"] == "active"
    assert renewed["active_till"] > monthly["active_till"]
    assert fake.balance(TOKEN) == round(balance - monthly["plan"]["renew_price"], 2)
    fake.set_balance(TOKEN, 0)
    fake.advance(30 * 86400 + 1)
    assert fake.rents_of(TOKEN)[0]["status"] == "finished"


async def test_random_faults_and_latency(client: Client) -> None:
    fake = client.fake
    fake.set_fault_rates(rate_5xx=1.0, seed=1)
    assert (await client.get("/account")).status == 500
    fake.set_fault_rates(rate_429=1.0, seed=1)
    limited = await client.get("/account")
    assert limited.status == 429
    assert limited.headers["Retry-After"] in {"1", "2", "3"}
    fake.set_fault_rates()
    fake.set_latency(0.2)
    started = time.monotonic()
    assert (await client.get("/account")).status == 200
    assert time.monotonic() - started >= 0.2
    assert fake.max_calls_in_window(TOKEN) == 3


async def test_the_other_shape_of_answers(client: Client) -> None:
    client.fake.shape = Shape.ALT
    assert (await client.get("/account")).body["data"]["balance"] == "100.00"
    daily = await rent(client)
    assert isinstance(daily["price"], str)
    assert "+" not in daily["active_till"], "no offset: UTC"
    assert daily["plan"]["duration_translation"] is None
    assert "x_unknown" in daily
    assert "x_unknown" in daily["service"]
    [option, *_] = daily["transition_options"]
    assert set(option) == {"plan_id", "duration_translation", "price", "note"}
    refused = await client.post("/rents", {"plan_id": "nope"})
    assert "x_unknown" not in refused.body, "errors keep their documented shape"
