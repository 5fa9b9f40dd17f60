"""Counts updates by kind and outcome, and how long each took (`/metrics`)."""

from __future__ import annotations

import time
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update
from aiogram.types.update import UpdateTypeLookupError

from bot.metrics import Metrics
from bot.middlewares.context import Handler


class UpdateMetricsMiddleware(BaseMiddleware):
    """Just inside the error guard: it sees an error on its way to the guard's reply.

    Outcomes: `ok`, `unhandled` (no handler took it), `error` (the user got an error reply)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        began = time.perf_counter()
        outcome = "error"
        try:
            result = await handler(event, data)
            outcome = "unhandled" if result is UNHANDLED else "ok"
            return result
        finally:
            self.metrics.update_handled(_kind(event), outcome, time.perf_counter() - began)


def _kind(update: Update) -> str:
    try:
        return update.event_type
    except UpdateTypeLookupError:  # a kind newer than this aiogram
        return "unknown"
