"""What both benchmarks do to start their two child processes: a setup run, then the bot."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent


def bot_settings(cfg: dict[str, Any], bot_token: str, secret_key: str, **extra: Any) -> Any:
    """The bot's Settings for a benchmark's processes: the fakes' URLs and database from cfg."""
    from bot.config import Settings

    return Settings(
        _env_file=None,
        bot_token=bot_token,
        telegram_api_url=cfg["telegram_url"],
        gosms_api_url=cfg["gosms_url"],
        gotsms_api_url=cfg["gotsms_url"],
        database_url=cfg["database_url"],
        secret_key=secret_key,
        log_level="INFO",
        **extra,
    )


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
