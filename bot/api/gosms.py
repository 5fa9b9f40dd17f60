"""GoSMS client: one typed method per endpoint of the API."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.api.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFound,
    ApiPermissionError,
    ApiRejected,
    ApiUnavailable,
)
from bot.api.http import JSON, ApiClient
from bot.api.lenient import Count, Flag, Id, Moment, OptText, Text, Whole

MAX_LIMIT = 100
AUTH_CODES = frozenset({1002, 1003, 3000})
PERMISSION_CODES = frozenset({1005, 1007, 1009, 1011, 1013, 1014})
NOT_FOUND_CODES = frozenset({1008, 1012})


class SmsStatus(IntEnum):
    WAITING = 0
    PROCESSING = 1
    SENT = 2
    SEND_ERROR = 3
    DELIVERED = 4
    DELIVERY_ERROR = 5

    @property
    def is_final(self) -> bool:
        return self in (SmsStatus.SEND_ERROR, SmsStatus.DELIVERED, SmsStatus.DELIVERY_ERROR)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Sms(_Model):
    id: Id
    message: Text = ""
    status: int
    callback_id: OptText = ""
    device_id: OptText = ""
    phone_number: Text = ""
    message_status: Text = ""
    time_create: Whole = 0
    to_sim: Count = None


class Pagination(_Model):
    total_records: Whole = 0
    limit: Whole = 0
    offset: Whole = 1


class SmsPage(_Model):
    pagination: Pagination = Pagination()
    sms_list: list[Sms] = Field(default_factory=list)


class SentSms(_Model):
    id: Id


class DeviceInfo(_Model):
    """Older docs name the device `id`, newer ones only `device_id`; either is read."""

    id: Id
    device_id: Text = ""
    device_battery_state: Text = ""
    device_name: Text = ""
    is_active: Flag = None
    is_charging: Flag = None
    last_online_date: Moment = None
    console_data: Text = ""

    @model_validator(mode="before")
    @classmethod
    def _either_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("id") and data.get("device_id"):
            return data | {"id": data["device_id"]}
        return data


def _device_body(device_id: str) -> dict[str, str]:
    # Older docs call the field `id`, newer ones `device_id`: the API accepts both, send both.
    return {"id": device_id, "device_id": device_id}


class GoSMSClient(ApiClient):
    service = "gosms"

    def parse_error(self, status: int, data: JSON, text: str) -> ApiError:
        errors = data.get("errors") if isinstance(data, dict) else None
        code = errors.get("code") if isinstance(errors, dict) else None
        message = errors.get("message") if isinstance(errors, dict) else None
        detail = str(message) if message else f"HTTP {status}"
        code = code if isinstance(code, int) else None
        if status >= 500:
            return ApiUnavailable(self.service, detail, status=status)
        if code in AUTH_CODES or (status == 401 and code is None):
            return ApiAuthError(self.service, detail, status=status, code=code)
        if code in PERMISSION_CODES or (status == 403 and code is None):
            return ApiPermissionError(self.service, detail, status=status, code=code)
        if code in NOT_FOUND_CODES or (status == 404 and code is None):
            return ApiNotFound(self.service, detail, status=status, code=code)
        return ApiRejected(self.service, detail, status=status, code=code)

    # sms
    async def send_sms(
        self,
        phone_number: str,
        message: str,
        *,
        device_id: str | None = None,
        to_sim: int | None = None,
        callback_id: str | None = None,
    ) -> str:
        body: dict[str, str | int] = {"message": message, "phone_number": phone_number}
        if device_id:
            body["device_id"] = device_id
            if to_sim is not None:
                body["to_sim"] = to_sim
        if callback_id:
            body["callback_id"] = callback_id
        response = await self.request("POST", "/sms/send", json=body, idempotent=False)
        return self.parse(SentSms, response.data).id

    async def get_sms(self, sms_id: str) -> Sms:
        response = await self.request("POST", "/sms/get", json={"id": sms_id}, idempotent=True)
        return self.parse(Sms, response.data)

    async def delete_sms(self, sms_id: str) -> None:
        await self.request("DELETE", "/sms/del", json={"id": sms_id}, idempotent=True)

    async def list_sms(
        self, *, limit: int = 10, page: int = 1, search: str | None = None
    ) -> SmsPage:
        params: dict[str, str | int] = {
            "limit": min(max(1, limit), MAX_LIMIT),
            "offset": max(1, page),
        }
        if search:
            params["search"] = search
        response = await self.request("GET", "/sms", params=params)
        return self.parse(SmsPage, response.data)

    # devices
    async def device_info(self, device_id: str) -> DeviceInfo:
        response = await self.request(
            "POST", "/devices/get/info", json=_device_body(device_id), idempotent=True
        )
        return self.parse(DeviceInfo, response.data)

    async def set_device_active(self, device_id: str, is_active: bool) -> None:
        # `is_active` is always sent: leaving it out switches the device off.
        body = _device_body(device_id) | {"is_active": is_active}
        await self.request("POST", "/devices/edit", json=body, idempotent=True)

    async def delete_device(self, device_id: str) -> None:
        await self.request("POST", "/devices/del", json=_device_body(device_id), idempotent=True)
