"""Field types that read every variant the API docs and other clients show.

A value that cannot be read becomes None (or the field's empty value), never a failed model:
the card shows "—" for that field and the rest of it works.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def to_flag(value: Any) -> bool | None:
    """true/false, 1/0 and their strings; None when unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def to_text(value: Any) -> str:
    """A string; numbers are written out; null and anything else is ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return ""


def to_id(value: Any) -> Any:
    """Ids as strings or numbers; anything else is left for the model to refuse."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def to_optional_text(value: Any) -> str | None:
    return to_text(value) if value is not None else None


def to_money(value: Any) -> Decimal | None:
    """A number or a numeric string ("1.50", "1,50", "$ 2"); None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", ".").lstrip("$€£ ").strip()
    else:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _or_raw(read: Any, raw: Any) -> Any:
    """What was read, else the raw value for the model to refuse (for fields it cannot lack)."""
    return raw if read is None else read


def to_count(value: Any) -> int | None:
    """An integer, also from "3" or 3.0; None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def to_moment(value: Any) -> datetime | None:
    """An aware datetime from ISO 8601 (no offset means UTC) or unix seconds; None when
    unreadable."""
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "T", 1)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


Id = Annotated[str, BeforeValidator(to_id)]
Flag = Annotated[bool | None, BeforeValidator(to_flag)]
Text = Annotated[str, BeforeValidator(to_text)]
OptText = Annotated[str | None, BeforeValidator(to_optional_text)]
Bool = Annotated[bool, BeforeValidator(lambda value: bool(to_flag(value)))]
Whole = Annotated[int, BeforeValidator(lambda value: to_count(value) or 0)]
Amount = Annotated[Decimal, BeforeValidator(lambda value: _or_raw(to_money(value), value))]
Money = Annotated[Decimal | None, BeforeValidator(to_money)]
Count = Annotated[int | None, BeforeValidator(to_count)]
Moment = Annotated[datetime | None, BeforeValidator(to_moment)]
