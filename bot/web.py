"""`/healthz` and `/metrics`, served by every instance in both modes.

In webhook mode they are routes of the webhook server; in polling mode (and for a worker, which
takes no updates) a small server on WEB_HOST:WEB_PORT serves only them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy import text

from bot.config import Role
from bot.db.admin_stats import collect, publish
from bot.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from bot.app import Deps
    from bot.poller import Poller

log = logging.getLogger(__name__)
CHECK_TIMEOUT = 2.0  # s, of each check: a probe must answer before its own timeout
# The scheduler starts a round every 0.2 s; a round longer than this is a poller that hangs.
STALLED_AFTER = 30.0  # s

PollerOf = Callable[[], "Poller | None"]


class Health:
    """What `/healthz` checks: the database answers, Redis answers (when configured), and the
    poller of an instance that runs one is alive."""

    def __init__(self, deps: Deps, poller: PollerOf) -> None:
        self.deps = deps
        self.poller = poller

    async def check(self) -> tuple[bool, dict[str, str]]:
        report = {
            "database": await self._database(),
            "redis": await self._redis(),
            "poller": self._poller(),
        }
        healthy = report["database"] == "ok" and report["redis"] in ("ok", "unused")
        return healthy and report["poller"] in ("ok", "off"), report

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT), self.deps.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure is the answer, not an error of the probe
            log.debug("health: the database does not answer (%s)", type(exc).__name__)
            return "unreachable"
        return "ok"

    async def _redis(self) -> str:
        redis = self.deps.redis
        if redis is None:
            return "unused"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await redis.ping()
        except Exception as exc:
            log.debug("health: Redis does not answer (%s)", type(exc).__name__)
            return "unreachable"
        return "ok"

    def _poller(self) -> str:
        if self.deps.settings.role is Role.WEB:
            return "off"
        poller = self.poller()
        if poller is None:
            return "starting"
        if not poller.tasks or any(task.done() for task in poller.tasks):
            return "stopped"
        if time.monotonic() - poller.scheduler.last_round > STALLED_AFTER:
            return "stalled"
        return "ok"


def add_routes(app: web.Application, deps: Deps, poller: PollerOf) -> None:
    health = Health(deps, poller)

    async def healthz(_request: web.Request) -> web.Response:
        healthy, report = await health.check()
        return web.Response(
            status=200 if healthy else 503,
            text=json.dumps(report),
            content_type="application/json",
        )

    async def metrics(_request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT), deps.session_factory() as session:
                limits = deps.clients.http.rate_limits
                publish(await collect(session, limits, latency=False), deps.metrics)
        except Exception as exc:  # the other figures are still worth reading
            log.warning("metrics: the deployment's figures not counted (%s)", type(exc).__name__)
        body = deps.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)


async def start_site(deps: Deps, poller: PollerOf) -> web.AppRunner | None:
    """The server of polling mode: `/healthz` and `/metrics` only. A port already taken is one
    warning: the bot serves its users without them (None)."""
    app = web.Application()
    add_routes(app, deps, poller)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    settings = deps.settings
    try:
        await web.TCPSite(runner, settings.web_host, settings.web_port).start()
    except OSError as exc:
        await runner.cleanup()
        log.warning(
            "health and metrics not served: %s:%s cannot be listened on (%s); set WEB_PORT",
            settings.web_host,
            settings.web_port,
            exc.strerror or exc,
        )
        return None
    log.info("health and metrics on %s:%s", settings.web_host, settings.web_port)
    return runner
