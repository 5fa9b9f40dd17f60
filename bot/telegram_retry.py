"""A Bot API request middleware: waits out a short 429 and retries a 5xx or network error."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)


class RetryRequests(BaseRequestMiddleware):
    """Replies to the user survive Telegram's transient errors.

    A 429 means the call was not executed, so it is always safe to repeat after `retry_after`
    (when that is short; a long wait is the caller's business). A 5xx or network error is retried
    with backoff. getUpdates is left to aiogram's polling loop, which has its own backoff.
    """

    def __init__(self, attempts: int = 3, max_wait: float = 5.0, backoff: float = 0.5) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.backoff = backoff

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if method.__api_method__ == GetUpdates.__api_method__:
            return await make_request(bot, method)
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.attempts or exc.retry_after > self.max_wait:
                    raise
                delay = float(exc.retry_after)
            except (TelegramServerError, TelegramNetworkError) as exc:
                if attempt == self.attempts:
                    raise
                delay = self.backoff * 2 ** (attempt - 1)
                log.info("%s failed (%s), retrying", type(method).__name__, exc.message)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")
