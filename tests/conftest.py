"""Fixtures: the three test doubles, settings pointing at them, a harness for the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bot.app import REDIS_PREFIX, Deps, build_deps, create_bot, create_dispatcher
from bot.config import Settings
from tests.backends import (  # REDIS_URL and RedisPlace: for the modules that import them
    REDIS_URL,  # noqa: F401
    Backend,
    Place,
    RedisPlace,
    Servers,
    place_for,
    skipped_summary,
)
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import CallbackQueryRecord, FakeTelegram, StoredMessage

GOTSMS_TOKEN = "gotsms-token-8f3a9c2e51d74b6a"
GOSMS_TOKEN = "gosms-key-5b7e1f0c9d2a4e8b"
SECRET_KEY = "test-secret-key-0123456789"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def tg(backend: Place) -> AsyncIterator[FakeTelegram]:
    fake = (
        FakeTelegram() if backend.bot_token is None else FakeTelegram(bot_token=backend.bot_token)
    )
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def gotsms() -> AsyncIterator[FakeGotSMS]:
    fake = FakeGotSMS()
    await fake.start()
    fake.add_account(GOTSMS_TOKEN, balance=100.0)
    yield fake
    await fake.close()
    assert not fake.errors, fake.errors


@pytest.fixture
async def gosms() -> AsyncIterator[FakeGoSMS]:
    fake = FakeGoSMS()
    await fake.start()
    fake.add_account(GOSMS_TOKEN)
    yield fake
    await fake.close()


@pytest.fixture
def settings(
    tmp_path: Path, tg: FakeTelegram, gotsms: FakeGotSMS, gosms: FakeGoSMS, backend: Place
) -> Settings:
    shared: dict[str, Any] = {}
    if backend.redis is not None:
        shared = {"redis_url": backend.redis.url, "redis_namespace": backend.redis.prefix}
    return Settings(
        _env_file=None,
        bot_token=tg.bot_token,
        telegram_api_url=tg.url,
        gosms_api_url=gosms.url,
        gotsms_api_url=gotsms.url,
        database_url=backend.database_url(tmp_path / "data" / "bot.db"),
        secret_key=SECRET_KEY,
        **shared,
    )


class Harness:
    """Feeds updates through the real dispatcher; reads what the user sees from the fake."""

    def __init__(self, tg: FakeTelegram, deps: Deps, bot: Bot, dp: Dispatcher) -> None:
        self.tg = tg
        self.deps = deps
        self.bot = bot
        self.dp = dp

    async def feed(self, update: dict[str, Any]) -> None:
        await self.dp.feed_update(
            self.bot, Update.model_validate(update, context={"bot": self.bot})
        )

    async def send(self, user_id: int, text: str, **kwargs: object) -> None:
        await self.feed(self.tg.message_update(user_id, text, **kwargs))  # type: ignore[arg-type]

    def find_button(self, chat_id: int, label: str) -> tuple[int, str]:
        for message in reversed(self.tg.bot_messages(chat_id)):
            for row in message.buttons:
                for button in row:
                    if label in button.text and button.callback_data is not None:
                        return message.message_id, button.callback_data
        raise AssertionError(f"no button {label!r} in chat {chat_id}")

    def press_update(
        self, user_id: int, label: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        message_id, data = self.find_button(chat_id or user_id, label)
        return self.tg.callback_update(user_id, message_id, data, chat_id=chat_id)

    async def press(
        self, user_id: int, label: str, *, chat_id: int | None = None
    ) -> CallbackQueryRecord:
        update = self.press_update(user_id, label, chat_id=chat_id)
        await self.feed(update)
        query_id = update["callback_query"]["id"]
        return self.tg.callback_answers[query_id]

    def last(self, chat_id: int) -> StoredMessage:
        return self.tg.last_bot_message(chat_id)


# Modules whose tests run on each backend: the database, repository, dialog, confirmation,
# poller, sender, restart and money-safety tests. A test of SQLite itself (its file, WAL,
# locking, dialogs in its table) is marked sqlite_only.
ON_POSTGRES = frozenset(
    {
        "test_repo",
        "test_db_load",
        "test_redis_mode",
        "test_tokens",
        "test_notify",
        "test_gosms_send",
        "test_gotsms_catalog",
        "test_gotsms_rent",
        "test_money_safety",
        "test_sender",
        "test_poller_alerts",
        "test_poller_codes",
        "test_poller_faults",
        "test_poller_isolation",
        "test_poller_live",
        "test_poller_sms",
        "test_restart",
        "test_crash",
        "test_bulk_runner",
        "test_bulk_repo",
        "test_wake",
        "test_rent_fast",
        "test_groups_link",
        "test_nocode",
        "test_nocode_kill",
        "test_access",
        "test_admin",
        "test_forget",
        "test_retention",
        "test_broadcast",
    }
)
# ... and those whose dialogs and kept searches run once more on SQLite with dialogs in Redis
ON_SQLITE_REDIS = frozenset(
    {
        "test_gotsms_catalog",
        "test_gosms_send",
        "test_tokens",
        "test_gotsms_rent",
        "test_redis_mode",
        "test_forget",
    }
)


def backends_of(module: str, definition: pytest.Function) -> list[Backend]:
    backends = [Backend.SQLITE]
    if module in ON_SQLITE_REDIS:
        backends.append(Backend.SQLITE_REDIS)
    if module in ON_POSTGRES and definition.get_closest_marker("sqlite_only") is None:
        backends.append(Backend.POSTGRES)
    return backends


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    chosen = any("backend" in m.args[0] for m in metafunc.definition.iter_markers("parametrize"))
    module = metafunc.module.__name__.rpartition(".")[2]
    backends = backends_of(module, metafunc.definition)
    if len(backends) > 1 and not chosen:
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    place = Servers(os.environ.get("PYTEST_XDIST_WORKER", "main"))
    yield place
    place.close()


@pytest.fixture
async def backend(request: pytest.FixtureRequest, servers: Servers) -> AsyncIterator[Place]:
    """SQLite unless parametrized otherwise (see ON_POSTGRES): a server that does not answer
    skips the test, or fails it with CI=true."""
    async for place in place_for(servers, getattr(request, "param", Backend.SQLITE)):
        yield place


@pytest.fixture
def storage(backend: Place) -> RedisPlace | None:
    """Where the dialogs are: None in the database, else Redis under a prefix of the test's."""
    return backend.redis


@pytest.fixture
async def harness(settings: Settings, tg: FakeTelegram, backend: Place) -> AsyncIterator[Harness]:
    deps = await build_deps(settings)
    bot = create_bot(settings)
    prefix = backend.redis.prefix if backend.redis is not None else REDIS_PREFIX
    dp = create_dispatcher(deps, redis_prefix=prefix)
    yield Harness(tg, deps, bot, dp)
    await dp.fsm.storage.close()
    await dp.fsm.events_isolation.close()
    await bot.session.close()
    await deps.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per missing server: how many tests it skipped (the skips are quiet otherwise)."""
    reasons = []
    for report in terminalreporter.stats.get("skipped", []):
        if isinstance(report.longrepr, tuple):
            reasons.append(str(report.longrepr[2]).removeprefix("Skipped: "))
    for line in skipped_summary(reasons):
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture(autouse=True)
def no_tracebacks_or_secrets(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No test may log an unexpected exception, or a token."""
    caplog.set_level(logging.INFO)
    yield
    records = [r for phase in ("setup", "call") for r in caplog.get_records(phase)]
    for record in [*records, *caplog.records]:
        assert record.exc_info is None or record.levelno < logging.ERROR, record.getMessage()
        text = record.getMessage()
        for secret in (GOTSMS_TOKEN, GOSMS_TOKEN, SECRET_KEY):
            assert secret not in text, f"secret in the log: {record.name}"


class BotProcess:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.output = bytearray()
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(4096):
            self.output += chunk

    async def stop(self) -> int:
        """SIGTERM (a no-op on a process already killed) and wait for the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 20)
        if self._reader is not None:
            await self._reader
        return code

    @property
    def log(self) -> str:
        return self.output.decode(errors="replace")


@pytest.fixture
def bot_env(
    tmp_path: Path, tg: FakeTelegram, gotsms: FakeGotSMS, gosms: FakeGoSMS, backend: Place
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_URL", "_KEY", "BOT_TOKEN"))}
    env |= {
        "BOT_TOKEN": tg.bot_token,
        "TELEGRAM_API_URL": tg.url + "/",
        "GOTSMS_API_URL": gotsms.url,
        "GOSMS_API_URL": gosms.url + "/",
        "LOG_LEVEL": "DEBUG",
        "PYTHONPATH": str(ROOT),
    }
    return env | backend.env(tmp_path / "state" / "bot.db", SECRET_KEY)
