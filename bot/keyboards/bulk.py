"""Buttons of /bulk."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.types import InlineKeyboardMarkup


def card_keyboard(card: Mapping[str, Any]) -> InlineKeyboardMarkup | None:
    """Pause / Resume / Cancel while it runs; Report and Retry failed once it is done."""
    raise NotImplementedError
