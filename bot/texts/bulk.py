"""Texts of /bulk: the summary, the progress card, the stops and the final note (HTML-escaped)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def card_text(card: Mapping[str, Any]) -> str:
    """The progress card (bot/campaigns/card.py's payload): a bar, sent / delivered / failed /
    waiting, the pace and the time left, or the final state."""
    raise NotImplementedError
