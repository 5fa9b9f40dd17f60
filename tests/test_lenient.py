"""The answer models read every variant the docs and other clients show; a field they cannot
read becomes None (shown as "—"), never a failed answer."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from bot.api.gosms import DeviceInfo
from bot.api.gotsms import Account, Message, NumberStatus, Rent

OBJECT_ID = "6622a8bbd963898821ebf934"
RENT: dict[str, Any] = {
    "id": "r-1",
    "service": {"id": "s-1", "name": "Telegram", "extra": [1]},
    "plan": {
        "id": "p-1",
        "billing_type": "duration",
        "duration_type": "day",
        "duration_in_type": "1",
        "duration_translation": None,
        "price": "1.50",
        "renew_price": None,
    },
    "phone": "+1 800 123 4567",
    "price": "1,50",
    "status": "active",
    "is_included_for_next_renewal": "0",
    "active_from": "2026-03-11T12:00:00",
    "active_till": "2026-03-12 15:00:00+03:00",
    "wake_from": None,
    "can_wake_up": "true",
    "transition_options": None,
    "unknown": {"deep": True},
}


@pytest.mark.parametrize(
    "answer",
    [
        {"device_id": OBJECT_ID, "device_battery_state": 85, "is_active": 1, "is_charging": "0"},
        {"id": OBJECT_ID, "device_battery_state": "85", "is_active": "true", "is_charging": False},
        {"device_id": OBJECT_ID, "device_battery_state": 85.0, "is_active": True, "x": None},
    ],
)
def test_device_variants_read_alike(answer: dict[str, Any]) -> None:
    info = DeviceInfo.model_validate(answer)
    assert info.id == OBJECT_ID
    assert info.device_battery_state.startswith("85")
    assert (info.is_active, info.is_charging in (False, None)) == (True, True)
    assert info.console_data == ""


def test_unreadable_device_fields_are_none_not_a_failure() -> None:
    info = DeviceInfo.model_validate(
        {"id": OBJECT_ID, "is_active": "perhaps", "last_online_date": "yesterday"}
    )
    assert (info.is_active, info.last_online_date) == (None, None)
    with pytest.raises(ValidationError):
        DeviceInfo.model_validate({"device_name": "no id at all"})


def test_rent_variants_and_aware_timestamps() -> None:
    rent = Rent.model_validate(RENT)
    assert rent.price == Decimal("1.50")
    assert rent.plan.price == Decimal("1.50")
    assert rent.plan.duration_in_type == 1
    assert rent.plan.duration_translation == ""
    assert rent.active_from == datetime(2026, 3, 11, 12, tzinfo=UTC), "no offset means UTC"
    assert rent.active_till is not None
    assert rent.active_till.astimezone(UTC).hour == 12
    assert (rent.can_wake_up, rent.is_included_for_next_renewal) == (True, False)
    assert rent.transition_options == []
    unreadable = Rent.model_validate(RENT | {"price": "ask us", "active_till": "soon"})
    assert (unreadable.price, unreadable.active_till) == (None, None)


def test_amounts_timestamps_and_nulls_elsewhere() -> None:
    assert Account.model_validate({"balance": "12.5"}).balance == Decimal("12.5")
    assert Account.model_validate({"balance": 7}).balance == Decimal(7)
    with pytest.raises(ValidationError):
        Account.model_validate({"balance": "n/a"})  # a balance card without the balance: refuse
    message = Message.model_validate(
        {"id": 5, "from": None, "body": None, "code": 123456, "received_at": 1773230400}
    )
    assert (message.id, message.sender, message.body, message.code) == ("5", None, "", "123456")
    assert message.received_at == datetime(2026, 3, 11, 12, tzinfo=UTC)
    status = NumberStatus.model_validate(
        {
            "rent_id": "r",
            "status": "active",
            "online_till": "2026-03-11T12:00:00.000Z",
            "wakeup_time_left_seconds": "120",
            "can_wake_up": 0,
        }
    )
    assert status.online_till is not None
    assert status.online_till.tzinfo is not None
    assert (status.wakeup_time_left_seconds, status.can_wake_up) == (120, False)
