"""A Bot API request middleware: waits out a short 429 and retries a 5xx or network error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)
_CALLER_WAITS = ContextVar("caller_waits_out_429", default=False)


@contextlib.contextmanager
def leave_429s_to_caller() -> Iterator[None]:
    """Within it, a 429 is raised at once: for the sender, which pauses the chat in the shared
    pace (every instance then waits) and queues the push again instead of holding a send slot."""
    token = _CALLER_WAITS.set(True)
    try:
        yield
    finally:
        _CALLER_WAITS.reset(token)


def sender_is_calling() -> bool:
    """Whether the call is the outbox sender's (which took its slot of the pace already)."""
    return _CALLER_WAITS.get()


class RetryRequests(BaseRequestMiddleware):
    """Replies to the user survive Telegram's transient errors.

    A 429 means the call was not executed, so it is always safe to repeat after `retry_after`
    (when that is short; a long wait, or any under `leave_429s_to_caller`, is the caller's
    business). A 5xx or network error is retried with backoff (at most `max_backoff`). Five
    attempts: with 30 % of the calls failing, one reply in 400 is lost instead of one in 40, and
    then the error middleware still tries to say so.
    getUpdates is left to aiogram's polling loop, which has its own backoff.

    It also keeps the parsed-answer type of each method alive: aiogram builds `Response[T]` on
    every call, and pydantic caches such generic classes only weakly, so after each garbage
    collection they were built again (several ms each; ~10 % of the CPU of a busy bot).
    """

    def __init__(
        self,
        attempts: int = 5,
        max_wait: float = 5.0,
        backoff: float = 0.5,
        max_backoff: float = 2.0,
    ) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.backoff = backoff
        self._answer_types: dict[type[TelegramMethod[Any]], type[Response[Any]]] = {}
        self.max_backoff = max_backoff

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if type(method) not in self._answer_types:
            self._answer_types[type(method)] = Response[method.__returning__]  # type: ignore[name-defined]
        if method.__api_method__ == GetUpdates.__api_method__:
            return await make_request(bot, method)
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if (
                    attempt == self.attempts
                    or exc.retry_after > self.max_wait
                    or _CALLER_WAITS.get()
                ):
                    raise
                delay = float(exc.retry_after)
            except (TelegramServerError, TelegramNetworkError) as exc:
                if attempt == self.attempts:
                    raise
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                log.info("%s failed (%s), retrying", type(method).__name__, exc.message)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")
