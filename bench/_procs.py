"""What the benchmarks do to start their child processes (a setup run, then the bot), the
server database and Redis they may run on, and the CPU of processes read from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
# the servers the benchmarks make their own database and key prefix on (and drop afterwards)
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bot_settings(cfg: dict[str, Any], bot_token: str, secret_key: str, **extra: Any) -> Any:
    """The bot's Settings for a benchmark's processes: the fakes' URLs, the database and (on a
    server database) Redis from cfg."""
    from bot.config import Settings

    return Settings(
        _env_file=None,
        bot_token=bot_token,
        telegram_api_url=cfg["telegram_url"],
        gosms_api_url=cfg["gosms_url"],
        gotsms_api_url=cfg["gotsms_url"],
        database_url=cfg["database_url"],
        redis_url=cfg.get("redis_url"),
        redis_namespace=cfg.get("redis_namespace", "sms-desk"),
        secret_key=secret_key,
        log_level="INFO",
        **extra,
    )


def bot_environment(
    cfg: dict[str, Any], bot_token: str, secret_key: str, **extra: str
) -> dict[str, str]:
    """The same settings as bot_settings, as the environment of `python -m bot`."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_URL", "_KEY", "BOT_TOKEN"))}
    env |= {
        "BOT_TOKEN": bot_token,
        "TELEGRAM_API_URL": cfg["telegram_url"],
        "GOSMS_API_URL": cfg["gosms_url"],
        "GOTSMS_API_URL": cfg["gotsms_url"],
        "DATABASE_URL": cfg["database_url"],
        "SECRET_KEY": secret_key,
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    }
    if cfg.get("redis_url"):
        env |= {"REDIS_URL": cfg["redis_url"], "REDIS_NAMESPACE": cfg["redis_namespace"]}
    return env | {k.upper(): v for k, v in extra.items()}


async def _admin(statement: str) -> None:
    from sqlalchemy import text

    from bot.db.engine import create_engine

    engine = create_engine(POSTGRES_URL)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def server_place(prefix: str) -> AsyncIterator[dict[str, str]]:
    """A new PostgreSQL database and a Redis namespace of their own (others share both
    servers), dropped and deleted afterwards: the cfg keys database_url, database,
    redis_url and redis_namespace."""
    from redis.asyncio import Redis
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    redis = Redis.from_url(REDIS_URL)
    try:
        yield {
            "database_url": make_url(POSTGRES_URL).set(database=name).render_as_string(False),
            "database": name,
            "redis_url": REDIS_URL,
            "redis_namespace": name,
        }
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        keys = [key async for key in redis.scan_iter(match=f"{name}:*")]
        for first in range(0, len(keys), 1000):
            await redis.delete(*keys[first : first + 1000])
        await redis.aclose()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (all its threads) from /proc; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def processes(matching: str) -> list[int]:
    """The pids whose command line contains `matching`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if matching in cmdline:
            found.append(int(entry.name))
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def child_env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(ROOT)}


async def run_setup(script: str, cfg: dict[str, Any]) -> None:
    """`script --_setup CFG` to its end (fills the database)."""
    setup = await asyncio.create_subprocess_exec(
        sys.executable, script, "--_setup", json.dumps(cfg), cwd=ROOT, env=child_env()
    )
    if await setup.wait() != 0:
        raise RuntimeError("setup failed")


async def start_bot(
    script: str, cfg: dict[str, Any], stderr: IO[bytes], limit: int
) -> asyncio.subprocess.Process:
    """`script --_bot CFG`, talking JSON lines on stdout and reading orders on stdin."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        "--_bot",
        json.dumps(cfg),
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        limit=limit,
    )


async def read_json(stream: asyncio.StreamReader, kind: str, within: float) -> dict[str, Any]:
    """The next line the bot process printed as JSON with this "kind"; other output is skipped."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"bot process: no {kind!r} within {within:.0f} s")
        line = await asyncio.wait_for(stream.readline(), left)
        if not line:
            raise RuntimeError(f"bot process ended before {kind!r}")
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if data.get("kind") == kind:
            return data
