"""Factories for the bot and the dispatcher, and the polling / webhook runners."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.fsm.storage.base import (
    DEFAULT_DESTINY,
    BaseEventIsolation,
    BaseStorage,
    DefaultKeyBuilder,
)
from aiogram.methods import GetMe
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.api.budget import RedisBudget
from bot.api.clients import Clients
from bot.api.http import HttpClient, RetryPolicy
from bot.config import EXIT_CONFIG, Role, Settings, load_settings
from bot.db.crypto import TokenCipher
from bot.db.engine import create_engine, create_session_factory
from bot.db.fsm import DialogIsolation, SqlStorage
from bot.db.migrate import upgrade_to_head
from bot.handlers import get_routers
from bot.i18n import create_i18n
from bot.instances import Instances
from bot.isolation import RenewedRedisIsolation
from bot.logs import setup_logging
from bot.metrics import Metrics
from bot.middlewares.access import AccessMiddleware
from bot.middlewares.context import DbSessionMiddleware, LocaleMiddleware, UserMiddleware
from bot.middlewares.errors import ErrorGuardMiddleware
from bot.middlewares.metrics import UpdateMetricsMiddleware
from bot.pace import RedisPace
from bot.poller import Poller, create_poller
from bot.poller.recovery import Recovery
from bot.polling import ConflictGuard, PollingConflict
from bot.reply_pace import ReplyPace
from bot.startup import TelegramSetup, Webhook
from bot.telegram_retry import RetryRequests

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
# docker stop waits 10 s before SIGKILL: at a stop, the updates being handled get this long,
# then the poller's polls and sends under way as long again
STOP_GRACE = 4.0
REACH_TIMEOUT = 10  # s, of one getMe at the start


@dataclass
class Deps:
    """Everything long-lived the handlers and jobs need; built once per process."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    cipher: TokenCipher
    clients: Clients
    i18n: I18n
    metrics: Metrics = field(default_factory=Metrics)
    # this process among the instances sharing the database (heartbeats, leases, claims)
    instance_id: str = field(default_factory=lambda: new_instance_id())
    # shared by the instances of one deployment (REDIS_URL): the Telegram pace, the GotSMS
    # budget, one-time start-up work; None for a single instance on SQLite
    redis: Redis | None = None

    async def close(self) -> None:
        await self.clients.close()
        await self.engine.dispose()
        if self.redis is not None:
            await self.redis.aclose()


def new_instance_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


async def build_deps(settings: Settings, *, api_policy: RetryPolicy | None = None) -> Deps:
    """`api_policy`: timeouts and retries of the GoSMS / GotSMS calls (tests shorten them)."""
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_overflow,
    )
    await upgrade_to_head(engine)
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    redis = _redis(settings)
    budget = RedisBudget(redis, settings.redis_namespace) if redis is not None else None
    return Deps(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        cipher=TokenCipher.from_settings(secret, settings.data_dir),
        clients=Clients(
            HttpClient(api_policy, budget=budget),
            gosms_url=settings.gosms_api_url,
            gotsms_url=settings.gotsms_api_url,
        ),
        i18n=create_i18n(),
        redis=redis,
    )


def shared_pace(deps: Deps) -> RedisPace | None:
    """The Telegram pace of every instance (None: the sender keeps its own)."""
    if deps.redis is None:
        return None
    return RedisPace(deps.redis, deps.settings.redis_namespace)


def _redis(settings: Settings) -> Redis | None:
    if not settings.redis_url:
        return None
    from redis.asyncio import BlockingConnectionPool, Redis

    # 128 polls at once each ask for the GotSMS budget: they wait for a connection instead of
    # failing over 100 (redis-py's default pool)
    pool = BlockingConnectionPool.from_url(settings.redis_url, max_connections=64, timeout=5)
    return Redis(connection_pool=pool)


def create_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    if session is None and settings.telegram_api_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    bot = Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    bot.session.middleware(RetryRequests())
    return bot


REDIS_PREFIX = "fsm"  # of the dialogs' keys in Redis


def _storage(deps: Deps, redis_prefix: str) -> tuple[BaseStorage, BaseEventIsolation]:
    """Dialogs live in Redis when several instances share it, else in the database: either way
    a dialog goes on where it was after a restart."""
    if deps.settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        # destiny: a kept search is a second dialog of the same chat (bot/services/gotsms.py)
        keys = DefaultKeyBuilder(prefix=redis_prefix, with_destiny=True)
        # a dialog left alone that long goes, as the daily retention prunes them from the database
        idle = timedelta(days=deps.settings.retention_days)
        storage = RedisStorage.from_url(
            deps.settings.redis_url, key_builder=keys, state_ttl=idle, data_ttl=idle
        )
        return storage, RenewedRedisIsolation(storage.redis, keys)
    sql = SqlStorage(deps.session_factory)
    return sql, DialogIsolation(sql)


async def upgrade_dialog_keys(redis: Redis, prefix: str = REDIS_PREFIX) -> int:
    """Dialogs kept in Redis before the keys carried a destiny (`fsm:chat:user:state`) get the
    default one (`fsm:chat:user:default:state`), so they go on after the upgrade. Safe to run
    again and on several instances at once; returns how many keys moved."""
    from redis.exceptions import ResponseError

    moved = 0
    async for raw in redis.scan_iter(match=f"{prefix}:*"):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        *head, owner, part = key.split(":")
        if part not in ("state", "data") or not owner.lstrip("-").isdigit():
            continue  # a new key (its destiny before the part), or a lock
        new = ":".join([*head, owner, DEFAULT_DESTINY, part])
        try:
            if await redis.renamenx(key, new):
                moved += 1
            else:  # written anew since: the old one is stale
                await redis.delete(key)
        except ResponseError:  # moved by another instance a moment ago
            continue
    return moved


def create_dispatcher(deps: Deps, *, redis_prefix: str = REDIS_PREFIX) -> Dispatcher:
    storage, isolation = _storage(deps, redis_prefix)
    dp = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        disable_fsm=True,  # registered below, after UserMiddleware (which preloads the dialog)
        settings=deps.settings,
        cipher=deps.cipher,
        clients=deps.clients,
        deps=deps,
    )
    dp.update.outer_middleware(ErrorGuardMiddleware(deps.i18n))  # first: it sees every error
    dp.update.outer_middleware(UpdateMetricsMiddleware(deps.metrics))
    # before anything that creates a user, a dialog or loads a token
    dp.update.outer_middleware(AccessMiddleware(deps.settings, deps.session_factory, deps.i18n))
    dp.update.outer_middleware(DbSessionMiddleware(deps.session_factory))
    dp.update.outer_middleware(UserMiddleware(dp.fsm))
    dp.update.outer_middleware(dp.fsm)  # the dialog's lock and state
    dp.update.outer_middleware(LocaleMiddleware(deps.i18n))
    dp.include_routers(*get_routers())
    return dp


async def set_commands(bot: Bot, i18n: I18n) -> None:
    """The command menu in each language, where Telegram's differs."""
    await TelegramSetup(bot, i18n, None, "").commands()


async def _set_up_telegram(bot: Bot, deps: Deps, webhook: Webhook | None) -> None:
    """The webhook (webhook mode) and the command menu, once per deployment."""
    setup = TelegramSetup(bot, deps.i18n, deps.redis, deps.settings.redis_namespace)
    if webhook is not None:  # without its webhook the instance gets no update: a failure stops
        await setup.run(webhook, commands=False)
    try:
        await setup.run(None)
    except TelegramAPIError as exc:
        log.warning("command menu not set: %s", exc.message)


async def _on_startup(
    bot: Bot, deps: Deps, dispatcher: Dispatcher, webhook: Webhook | None = None
) -> None:
    """`webhook`: what to register in webhook mode (an instance that takes updates sets it)."""
    role = deps.settings.role
    if deps.settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        storage = dispatcher.storage
        assert isinstance(storage, RedisStorage)
        assert isinstance(storage.key_builder, DefaultKeyBuilder)
        if moved := await upgrade_dialog_keys(storage.redis, storage.key_builder.prefix):
            log.info("%d dialog key(s) in Redis given their destiny", moved)
    if role is not Role.WORKER:
        await _set_up_telegram(bot, deps, webhook)
        if (replies := shared_pace(deps)) is not None:
            bot.session.middleware(ReplyPace(replies))
    if role is Role.WEB:  # updates only: the workers poll, send and take over
        await _start_instance(deps, dispatcher, None)
        return
    poller = create_poller(
        bot,
        deps.session_factory,
        deps.cipher,
        deps.clients,
        deps.i18n,
        deps.settings.poll_interval,
        metrics=deps.metrics,
        instance_id=deps.instance_id,
        pace=shared_pace(deps),
        retention_days=deps.settings.retention_days,
    )
    await _start_instance(deps, dispatcher, poller)
    poller.grace = STOP_GRACE
    poller.start()
    dispatcher["poller"] = poller


async def _start_instance(deps: Deps, dispatcher: Dispatcher, poller: Poller | None) -> None:
    """This instance beats; with a poller it takes over the work of dead instances (for the
    only instance, on SQLite: at once, from the process that ran before)."""
    wake = poller.sender.wake if poller is not None else lambda: None
    recovery = Recovery(
        deps.session_factory,
        deps.cipher,
        deps.clients,
        instance_id=deps.instance_id,
        on_queued=wake,
    )
    instances = Instances(
        deps.session_factory,
        deps.instance_id,
        role=deps.settings.role,
        # the only instance: SQLite, and no web / worker split (which is two at least)
        single=deps.settings.is_sqlite and deps.settings.role is Role.ALL,
        metrics=deps.metrics,
        recovery=recovery,
        on_queued=wake,
    )
    await instances.start()
    dispatcher["instances"] = instances


async def _on_shutdown(dispatcher: Dispatcher, deps: Deps) -> None:
    poller: Poller | None = dispatcher.workflow_data.pop("poller", None)
    if poller is not None:
        await poller.stop()
    instances: Instances | None = dispatcher.workflow_data.pop("instances", None)
    released = 0
    try:
        released = await instances.stop() if instances is not None else 0
    except Exception as exc:  # the next start (or a living instance) takes its claims over
        log.warning("claims not let go at stop (%s: %.200s)", type(exc).__name__, exc)
    if poller is not None:
        log.info("stopped cleanly: poller and sender done, %d push(es) cut off let go", released)


class TokenRefused(Exception):
    """Telegram answered 401 to the bot token."""


def _stop_on_signals() -> asyncio.Event:
    """SIGTERM (docker stop) and SIGINT set the event; the runner then shuts down in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _signalled, stop, sig)
    return stop


def _signalled(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("%s received: stopping", sig.name)
    stop.set()


async def reach_telegram(
    bot: Bot, where: str, stop: asyncio.Event, *, first: float = 1.0, most: float = 30.0
) -> bool:
    """Waits until Telegram answers (False: stopped first). While it cannot be reached (no
    network yet, a wrong TELEGRAM_API_URL) one line says so and getMe is tried again, the wait
    doubling from `first` to `most` seconds. A refused token raises TokenRefused."""
    loop = asyncio.get_running_loop()
    began, delay, failed = loop.time(), first, False
    while not stop.is_set():
        try:
            await bot.session.make_request(bot, GetMe(), timeout=REACH_TIMEOUT)  # no retries
        except TelegramUnauthorizedError:
            raise TokenRefused from None
        except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter) as exc:
            if not failed:
                log.warning(
                    "Telegram cannot be reached at %s (%s); trying again every %.0f s at most",
                    where,
                    exc.message,
                    most,
                )
            failed = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, most)
            continue
        if failed:
            log.info("Telegram reached after %.0f s", loop.time() - began)
        return True
    return False


def _telegram_address(settings: Settings) -> str:
    return str(settings.telegram_api_url or "https://api.telegram.org/")


async def _close(bot: Bot, dp: Dispatcher, deps: Deps) -> None:
    await dp.fsm.storage.close()  # the Redis connections, when dialogs live there
    await dp.fsm.events_isolation.close()
    await bot.session.close()
    await deps.close()


GC_YOUNG_OBJECTS = 7_000


def freeze_startup_heap() -> None:
    """Takes what exists before the first update (modules, pydantic's and SQLAlchemy's
    schemas, the routers, the pools) out of the garbage collector's sight, for good, and
    lets the youngest generation grow to GC_YOUNG_OBJECTS before it is collected.

    The startup objects live as long as the process, and each full collection walked all of
    them (about 270,000, 150 ms). An update allocates thousands of short-lived objects: at
    Python's default of 700, young collections ran several times per update, and the objects
    caught alive in them were promoted and walked again in the older generations.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_OBJECTS, middle, oldest)


async def run_polling(settings: Settings) -> None:
    from bot.web import start_site

    stop = _stop_on_signals()  # until aiogram's polling takes the signals over
    deps = await build_deps(settings)
    bot = create_bot(settings)
    dp = create_dispatcher(deps)
    dp.startup.register(_on_startup)
    dp.shutdown.register(_on_shutdown)
    freeze_startup_heap()
    health = await start_site(deps, lambda: dp.workflow_data.get("poller"))
    try:
        if not await reach_telegram(bot, _telegram_address(settings), stop):
            return
        if settings.role is Role.WORKER:  # no getUpdates: the web instance takes the updates
            await _run_without_updates(bot, dp, stop)
        else:
            await _poll(bot, dp)
    finally:
        if health is not None:
            await health.cleanup()
        await _close(bot, dp, deps)


async def _poll(bot: Bot, dp: Dispatcher) -> None:
    """aiogram's polling, stopped with PollingConflict when another takes the updates."""
    guard = ConflictGuard()
    bot.session.middleware(guard)
    await bot.delete_webhook(drop_pending_updates=False)
    polling = asyncio.create_task(
        dp.start_polling(bot, allowed_updates=dp.resolve_used_update_types()), name="polling"
    )
    conflict = asyncio.create_task(guard.conflict.wait())
    try:
        await asyncio.wait({polling, conflict}, return_when=asyncio.FIRST_COMPLETED)
        if guard.conflict.is_set() and not polling.done():
            await dp.stop_polling()  # the dispatcher's shutdown runs: a clean stop
        await polling
    finally:
        for task in (conflict, polling):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if guard.conflict.is_set():
        raise PollingConflict(guard.reason)


async def _run_without_updates(bot: Bot, dp: Dispatcher, stop: asyncio.Event) -> None:
    """A worker: the dispatcher's startup (the poller and the sender) until a signal, then its
    shutdown."""
    data = {"dispatcher": dp, "bots": (bot,), **dp.workflow_data}
    await dp.emit_startup(bot=bot, **data)
    log.info("worker running: no updates taken here")
    try:
        await stop.wait()
    finally:
        await dp.emit_shutdown(bot=bot, **data)


async def run_webhook(settings: Settings) -> None:
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web
    from yarl import URL

    from bot.web import add_routes

    assert settings.webhook_url is not None
    stop = _stop_on_signals()
    deps = await build_deps(settings)
    bot = create_bot(settings)
    dp = create_dispatcher(deps)
    dp.startup.register(_on_startup)
    dp.shutdown.register(_on_shutdown)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    app = web.Application()
    path = URL(settings.webhook_url).path or "/"
    takes_updates = settings.role is not Role.WORKER
    if takes_updates:  # the startup sets the webhook where Telegram's differs
        dp["webhook"] = Webhook(settings.webhook_url, secret, dp.resolve_used_update_types())
        SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret).register(app, path=path)
    add_routes(app, deps, lambda: dp.workflow_data.get("poller"))
    setup_application(app, dp, bot=bot)
    freeze_startup_heap()
    runner = web.AppRunner(app, shutdown_timeout=STOP_GRACE)
    try:
        if not await reach_telegram(bot, _telegram_address(settings), stop):
            return
        await runner.setup()  # startup: the webhook is set, the poller starts
        site = web.TCPSite(runner, settings.web_host, settings.web_port)
        await site.start()
        where = f"{settings.web_host}:{settings.web_port}"
        if takes_updates:
            log.info("webhook server on %s%s", where, path)
        else:
            log.info("worker: health and metrics on %s, no updates taken here", where)
        await stop.wait()
    finally:  # the server stops taking updates, then the dispatcher's shutdown runs
        await runner.cleanup()
        await _close(bot, dp, deps)


def main(settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    secrets = [settings.bot_token.get_secret_value()]
    if settings.secret_key:
        secrets.append(settings.secret_key.get_secret_value())
    setup_logging(settings.log_level, secrets)
    runner = run_webhook if settings.webhook_url else run_polling
    try:
        asyncio.run(runner(settings))
    except TokenRefused:
        log.error("Telegram refused BOT_TOKEN (401 Unauthorized): check it with @BotFather")
        raise SystemExit(EXIT_CONFIG) from None
    except PollingConflict as exc:
        log.error("%s", exc)
        raise SystemExit(EXIT_CONFIG) from None
