"""What one deployment sets at Telegram once, not at every start of every instance: the webhook
and the command menu.

Each is read first (getWebhookInfo, getMyCommands) and set only where it differs. Telegram does
not return the webhook's secret, so a fingerprint of what was set (URL, update types, a hash of
the secret) is kept in Redis; without Redis (one instance) a webhook with a secret is set at
every start, since a changed secret could not be seen. With Redis a short lock makes instances
that start together take turns: the first sets, the others find it set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.utils.i18n import I18n

from bot.commands import COMMANDS
from bot.i18n import LANGUAGES

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
LOCK_TTL = 30.0  # s: a holder that died lets the others go on after this long
LOCK_POLL = 0.1  # s
# deletes the lock only while it is still ours (it may have run out and been taken since)
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str | None
    allowed_updates: Sequence[str]

    def fingerprint(self) -> str:
        secret = hashlib.sha256((self.secret or "").encode()).hexdigest()
        parts = [self.url, ",".join(sorted(self.allowed_updates)), secret]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@contextlib.asynccontextmanager
async def deployment_lock(redis: Redis | None, key: str) -> AsyncIterator[None]:
    """Held by one instance of the deployment at a time (a no-op without Redis)."""
    if redis is None:
        yield
        return
    token = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOCK_TTL
    while not await redis.set(key, token, nx=True, px=int(LOCK_TTL * 1000)):
        if loop.time() > deadline:
            break  # the lock runs out by itself: its holder is gone
        await asyncio.sleep(LOCK_POLL)
    try:
        yield
    finally:
        await redis.eval(_UNLOCK, 1, key, token)


class TelegramSetup:
    """Sets the webhook and the command menu where Telegram's differ from this deployment's."""

    def __init__(self, bot: Bot, i18n: I18n, redis: Redis | None, namespace: str) -> None:
        self.bot = bot
        self.i18n = i18n
        self.redis = redis
        self.namespace = namespace

    async def run(self, webhook: Webhook | None, *, commands: bool = True) -> None:
        async with deployment_lock(self.redis, f"{self.namespace}:startup:lock"):
            if webhook is not None:
                await self.webhook(webhook)
            if commands:
                await self.commands()

    async def webhook(self, wanted: Webhook) -> bool:
        """True if it was set now."""
        info = await self.bot.get_webhook_info()
        same = info.url == wanted.url and set(info.allowed_updates or ()) == set(
            wanted.allowed_updates
        )
        key = f"{self.namespace}:webhook"
        if self.redis is not None:
            stored = await self.redis.get(key)
            if isinstance(stored, bytes):
                stored = stored.decode()
            same = same and stored == wanted.fingerprint()
        elif wanted.secret is not None:
            same = False  # the secret cannot be compared without a fingerprint
        if same:
            log.info("webhook already set")
            return False
        await self.bot.set_webhook(
            wanted.url,
            secret_token=wanted.secret,
            allowed_updates=list(wanted.allowed_updates),
        )
        if self.redis is not None:
            await self.redis.set(key, wanted.fingerprint())
        log.info("webhook set")
        return True

    async def commands(self) -> int:
        """The command menu of each language; how many were set now."""
        changed = 0
        scope = BotCommandScopeDefault()
        for language in LANGUAGES:
            wanted = [
                BotCommand(command=name, description=self.i18n.gettext(text, locale=language))
                for name, text in COMMANDS
            ]
            code = None if language == self.i18n.default_locale else language
            current = await self.bot.get_my_commands(scope=scope, language_code=code)
            if _pairs(current) == _pairs(wanted):
                continue
            await self.bot.set_my_commands(wanted, scope=scope, language_code=code)
            changed += 1
        if changed:
            log.info("command menu set in %d language(s)", changed)
        return changed


def _pairs(commands: Sequence[BotCommand]) -> list[tuple[str, str]]:
    return [(c.command, c.description) for c in commands]
