"""GotSMS client: one typed method per endpoint of the API."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from bot.api.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFound,
    ApiPermissionError,
    ApiRejected,
    ApiUnavailable,
)
from bot.api.http import JSON, ApiClient
from bot.api.lenient import Amount, Bool, Count, Id, Moment, Money, OptText, Text, Whole, to_flag

MAX_PER_PAGE = 100
ItemT = TypeVar("ItemT")


class Reason(StrEnum):
    """The 422 answers that get a message of their own."""

    OUT_OF_STOCK = "out_of_stock"
    TRANSITION_DAILY_ONLY = "transition_daily_only"
    RENEWAL_MONTHLY_ONLY = "renewal_monthly_only"
    REFUND_UNAVAILABLE = "refund_unavailable"
    INSUFFICIENT_BALANCE = "insufficient_balance"


_REASONS = {
    "no number available for this service.": Reason.OUT_OF_STOCK,
    "current rent plan must be daily for this transition endpoint.": Reason.TRANSITION_DAILY_ONLY,
    "auto renewal can be toggled only for monthly 1/3/6/12 plans.": Reason.RENEWAL_MONTHLY_ONLY,
    "refund not available for this rent.": Reason.REFUND_UNAVAILABLE,
}


def reason_of(message: str) -> Reason | None:
    text = message.strip().lower()
    if text in _REASONS:
        return _REASONS[text]
    if "balance" in text and ("insufficient" in text or "not enough" in text):
        return Reason.INSUFFICIENT_BALANCE
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Ref(_Model):
    id: Id
    name: Text = ""


class PricePlan(_Model):
    service_name: Text = ""
    period: Whole = 0
    period_type: Text = ""
    period_type_label: Text = ""
    duration_translation: Text = ""
    price: Money = None
    renew_price: Money = None
    country: Text = ""
    billing_type: Text = ""


class PriceGroup(_Model):
    name: Text = ""
    plans: list[PricePlan]


class Account(_Model):
    balance: Amount


class Plan(_Model):
    id: Id
    service: Ref
    country: Ref
    billing_type: Text = ""
    duration_type: Text = ""
    duration_in_type: Whole = 0
    duration_in_minutes: Count = None
    duration_translation: Text = ""
    price: Amount
    renew_price: Money = None
    is_monthly_supported: Bool = False


class RentPlan(_Model):
    id: Id
    billing_type: Text = ""
    duration_type: Text = ""
    duration_in_type: Whole = 0
    duration_translation: Text = ""
    price: Money = None
    renew_price: Money = None


class Rent(_Model):
    id: Id
    service: Ref
    plan: RentPlan
    phone: Text = ""
    price: Money = None
    status: Text = ""
    is_included_for_next_renewal: Bool = False
    active_from: Moment = None
    active_till: Moment = None
    wake_from: Moment = None
    wake_till: Moment = None
    can_wake_up: Bool = False
    transition_options: list[Any] = Field(default_factory=list)

    @field_validator("transition_options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        return value if isinstance(value, list) else []


class RentChange(_Model):
    id: Id
    status: OptText = None
    is_included_for_next_renewal: Annotated[bool | None, BeforeValidator(to_flag)] = None


class Message(_Model):
    id: Id
    rent_id: OptText = None
    service: Ref | None = None
    phone: OptText = None
    sender: OptText = Field(default=None, alias="from")
    to: OptText = None
    body: Text = ""
    code: OptText = None
    received_at: Moment = None


class NumberStatus(_Model):
    rent_id: Id
    status: Text = ""
    active_from: Moment = None
    active_till: Moment = None
    wake_from: Moment = None
    wake_till: Moment = None
    online_till: Moment = None
    wakeup_time_left_seconds: Count = None
    online_time_left_seconds: Count = None
    can_wake_up: Bool = False


class PageMeta(_Model):
    current_page: int = 1
    last_page: int = 1
    per_page: int = 20
    total: int = 0


class Page(_Model, Generic[ItemT]):
    data: list[ItemT]
    meta: PageMeta = PageMeta()


class CursorMeta(_Model):
    next_before_id: str | None = None
    count: int = 0


class NumberMessages(_Model):
    data: list[Message]
    meta: CursorMeta = CursorMeta()


class Envelope(_Model):
    success: bool = True
    message: str | None = None
    data: Any = None


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _page(page: int, per_page: int) -> dict[str, str | int]:
    return {"page": max(1, page), "per_page": min(max(1, per_page), MAX_PER_PAGE)}


def _compact(**params: str | int | None) -> dict[str, str | int]:
    return {key: value for key, value in params.items() if value not in (None, "")}


class GotSMSClient(ApiClient):
    service = "gotsms"
    track_quota = True

    def parse_error(self, status: int, data: JSON, text: str) -> ApiError:
        message = data.get("message") if isinstance(data, dict) else None
        detail = str(message) if message else f"HTTP {status}"
        if status == 401:
            return ApiAuthError(self.service, detail, status=status, code="unauthenticated")
        if status == 403:
            return ApiPermissionError(self.service, detail, status=status, code="forbidden")
        if status == 404:
            return ApiNotFound(self.service, detail, status=status)
        if status >= 500:
            return ApiUnavailable(self.service, detail, status=status)
        reason = reason_of(detail)
        return ApiRejected(
            self.service, detail, status=status, code=reason.value if reason else None
        )

    async def _data(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        return self.parse(Envelope, response.data).data

    # public
    async def pricelist(self) -> list[PriceGroup]:
        response = await self.request("GET", "/pricelist", auth=False)
        return self.parse(Page[PriceGroup], response.data).data

    # account and catalogue
    async def account(self) -> Account:
        return self.parse(Account, await self._data("GET", "/account"))

    async def services(
        self, search: str | None = None, page: int = 1, per_page: int = 25
    ) -> Page[Ref]:
        params = _compact(search=search) | _page(page, per_page)
        response = await self.request("GET", "/services", params=params)
        return self.parse(Page[Ref], response.data)

    async def plans(
        self,
        *,
        service_id: str | None = None,
        country_id: str | None = None,
        duration_type: str | None = None,
        billing_type: str | None = None,
        search: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> Page[Plan]:
        params = _compact(
            service_id=service_id,
            country_id=country_id,
            duration_type=duration_type,
            billing_type=billing_type,
            search=search,
        ) | _page(page, per_page)
        response = await self.request("GET", "/rents/plans", params=params)
        return self.parse(Page[Plan], response.data)

    # rents
    async def rents(
        self,
        *,
        status: str | None = None,
        service: str | None = None,
        phone: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> Page[Rent]:
        params = _compact(status=status, service=service, phone=phone) | _page(page, per_page)
        response = await self.request("GET", "/rents", params=params)
        return self.parse(Page[Rent], response.data)

    async def create_rent(self, plan_id: str, area_code: str | None = None) -> Rent:
        body = {"plan_id": plan_id} | ({"area_code": area_code} if area_code else {})
        return self.parse(Rent, await self._data("POST", "/rents", json=body))

    async def transition(self, rent_id: str, plan_id: str) -> RentChange:
        data = await self._data("POST", f"/rents/{rent_id}/transition", json={"plan_id": plan_id})
        return self.parse(RentChange, data)

    async def toggle_renewal(self, rent_id: str) -> RentChange:
        return self.parse(RentChange, await self._data("POST", f"/rents/{rent_id}/renewal/toggle"))

    async def refund(self, rent_id: str) -> RentChange:
        return self.parse(RentChange, await self._data("POST", f"/rents/{rent_id}/refund"))

    # messages
    async def messages(
        self,
        *,
        service_id: str | None = None,
        phone: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> Page[Message]:
        params = _compact(service_id=service_id, phone=phone) | _page(page, per_page)
        response = await self.request("GET", "/messages", params=params)
        return self.parse(Page[Message], response.data)

    async def unread_messages(
        self,
        *,
        service_id: str | None = None,
        rent_id: str | None = None,
        phone: str | None = None,
        mark_as_read: bool = False,
        page: int = 1,
        per_page: int = 20,
    ) -> Page[Message]:
        params = _compact(service_id=service_id, rent_id=rent_id, phone=phone)
        params |= _page(page, per_page) | {"mark_as_read": _flag(mark_as_read)}
        # Marking as read changes state: a retried request could hide a page the user never saw.
        response = await self.request(
            "GET", "/messages/unread", params=params, idempotent=not mark_as_read
        )
        return self.parse(Page[Message], response.data)

    # numbers
    async def wake_up(self, rent_id: str) -> str:
        response = await self.request("POST", f"/numbers/{rent_id}/wake-up")
        return self.parse(Envelope, response.data).message or ""

    async def number_messages(
        self, rent_id: str, *, limit: int = 20, before_id: str | None = None
    ) -> NumberMessages:
        params = _compact(limit=min(max(1, limit), MAX_PER_PAGE), before_id=before_id)
        response = await self.request("GET", f"/numbers/{rent_id}/messages", params=params)
        return self.parse(NumberMessages, response.data)

    async def number_status(self, rent_id: str) -> NumberStatus:
        return self.parse(NumberStatus, await self._data("GET", f"/numbers/{rent_id}/status"))
