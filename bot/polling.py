"""Polling mode is one instance per bot token: a second one is reported, not fought over.

Telegram ends a waiting getUpdates with 409 "terminated by other getUpdates request" when
another arrives for the same token, and aiogram's polling would try again forever: two
instances would take turns stealing each other's updates. `ConflictGuard` watches getUpdates:
an instance that has not yet polled alone for `settled` seconds (the one started second, or
both started together) stops at its first conflict; one that had polled alone that long
tolerates one conflict (a one-off getUpdates, an old process that is stopping) and polls on,
and stops at a second within `settled` seconds. Its retry ends the newcomer's waiting request,
so the instance that was serving keeps serving.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramConflictError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)
SETTLED = 15.0  # s; aiogram's own retries of a conflict come at most 5 s apart
RETRY_PAUSE = 0.5  # s
TERMINATED = "terminated by other getUpdates request"
WEBHOOK_ACTIVE = "while webhook is active"
ANOTHER_POLLER = (
    "another instance is polling this bot token: run one instance in polling mode, "
    "or use webhook mode for several"
)
WEBHOOK_SET = (
    "a webhook was set for this bot token while polling (an instance in webhook mode?): "
    "run every instance in the same mode"
)


class PollingConflict(Exception):
    """Polling stopped because another consumer takes this bot's updates."""


class ConflictGuard(BaseRequestMiddleware):
    """A Bot API request middleware for the polling bot. When it gives up, `conflict` is set
    (with `reason`) and the getUpdates call waits until polling is stopped."""

    settled = SETTLED
    pause = RETRY_PAUSE

    def __init__(self) -> None:
        self.conflict = asyncio.Event()
        self.reason = ""
        self._alone_since: float | None = None  # the first getUpdates, or the last conflict

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if method.__api_method__ != GetUpdates.__api_method__:
            return await make_request(bot, method)
        loop = asyncio.get_running_loop()
        if self._alone_since is None:
            self._alone_since = loop.time()
        while not self.conflict.is_set():
            try:
                return await make_request(bot, method)
            except TelegramConflictError as exc:
                if TERMINATED not in exc.message and WEBHOOK_ACTIVE not in exc.message:
                    raise  # not one of the two known: aiogram's loop logs it and tries again
                if not self._tolerated(exc.message, loop.time()):
                    break
            await asyncio.sleep(self.pause)
        await asyncio.Event().wait()  # until the runner stops polling (a cancel)
        raise AssertionError("unreachable")

    def _tolerated(self, message: str, now: float) -> bool:
        if WEBHOOK_ACTIVE in message:
            self._give_up(WEBHOOK_SET)
            return False
        assert self._alone_since is not None
        alone, self._alone_since = now - self._alone_since, now
        if alone < self.settled:
            self._give_up(ANOTHER_POLLER)
            return False
        log.warning(
            "another getUpdates request took this bot's updates after %.0f s of polling alone; "
            "polling on (another conflict within %.0f s stops this instance)",
            alone,
            self.settled,
        )
        return True

    def _give_up(self, reason: str) -> None:
        self.reason = reason
        self.conflict.set()
