from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings, describe_error

ROOT = Path(__file__).resolve().parent.parent


def make(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[arg-type]


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.endswith(("_API_URL", "DATABASE_URL", "POLL_INTERVAL", "SECRET_KEY")):
            monkeypatch.delenv(name)
    settings = make(bot_token="123:abc")
    assert settings.gosms_api_url == "https://api.gosms.ru/v1"
    assert settings.gotsms_api_url == "https://app.gotsms.org/api"
    assert settings.database_url == "sqlite+aiosqlite:///data/bot.db"
    assert settings.poll_interval == 3
    assert settings.telegram_api_url is None
    assert settings.log_level == "INFO"


def test_trailing_slash_is_the_same_base() -> None:
    with_slash = make(bot_token="1:a", gotsms_api_url="http://127.0.0.1:9/api/")
    without = make(bot_token="1:a", gotsms_api_url="http://127.0.0.1:9/api")
    assert with_slash.gotsms_api_url == without.gotsms_api_url == "http://127.0.0.1:9/api"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "BOT_TOKEN is required"),
        ({"bot_token": "nonsense"}, "BOT_TOKEN must look like"),
        (
            {"bot_token": "1:a", "gosms_api_url": "api.gosms.ru"},
            "GOSMS_API_URL must be an http(s) URL",
        ),
        ({"bot_token": "1:a", "secret_key": "short"}, "SECRET_KEY must be at least 16"),
        ({"bot_token": "1:a", "poll_interval": "0"}, "POLL_INTERVAL"),
        ({"bot_token": "1:a", "database_url": "not a url"}, "DATABASE_URL is not a valid"),
        (
            {"bot_token": "1:a", "webhook_url": "http://bot.example/hook"},
            "WEBHOOK_URL must be an https",
        ),
    ],
)
def test_bad_settings_give_one_clear_line(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    with pytest.raises(ValidationError) as caught:
        make(**env)
    line = describe_error(caught.value)
    assert expected in line
    assert "\n" not in line


def test_secret_values_are_not_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        make(bot_token="1:a", secret_key="tiny-secret")
    assert "tiny-secret" not in describe_error(caught.value)


def test_data_dir_is_the_folder_of_the_sqlite_file(tmp_path: Path) -> None:
    settings = make(bot_token="1:a", database_url=f"sqlite+aiosqlite:///{tmp_path}/x/bot.db")
    assert settings.data_dir == tmp_path / "x"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "BOT_TOKEN is required"),
        ({"BOT_TOKEN": "1:a", "TELEGRAM_API_URL": "localhost:8081"}, "TELEGRAM_API_URL"),
    ],
)
def test_python_m_bot_exits_2_with_one_line(
    env: dict[str, str], needle: str, tmp_path: Path
) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "TELEGRAM_API_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        env=clean | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"SECRET_KEY": "k" * 32}, ["REDIS_URL"]),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, ["SECRET_KEY"]),
        ({}, ["REDIS_URL", "SECRET_KEY"]),
    ],
)
def test_a_server_database_without_redis_or_a_key_is_refused_in_one_line(
    env: dict[str, str], missing: list[str], tmp_path: Path
) -> None:
    """Several instances share a PostgreSQL database: started without Redis (dialogs, event
    isolation, the Telegram pace) or without the shared key, the bot says what is missing."""
    clean = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SECRET_KEY", "BOT_TOKEN")
    }
    result = subprocess.run(
        [sys.executable, "-c", "from bot.config import load_settings; load_settings()"],
        env=clean
        | env
        | {
            "BOT_TOKEN": "123:abc",
            "DATABASE_URL": "postgresql+asyncpg://127.0.0.1:5432/sms_desk",
            "PYTHONPATH": str(ROOT),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in missing:
        assert name in lines[0]
    assert "non-SQLite DATABASE_URL" in lines[0]
    for name in {"REDIS_URL", "SECRET_KEY"} - set(missing):
        assert name not in lines[0], "only what is missing is named"


def test_sqlite_needs_neither_redis_nor_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    settings = make(bot_token="1:a", database_url="sqlite+aiosqlite:///data/bot.db")
    assert settings.is_sqlite
