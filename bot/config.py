"""Settings from the environment (and an optional `.env` file)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

EXIT_CONFIG = 2
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/bot.db"
LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]


class Role(StrEnum):
    """What one instance does: `web` takes updates only, `worker` runs the poller and the
    sender only, `all` both."""

    ALL = "all"
    WEB = "web"
    WORKER = "worker"


def _http_url(value: str) -> str:
    """A base URL with scheme and host; the trailing slash is dropped so joins are uniform."""
    from yarl import URL

    url = URL(value.strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http(s) URL with a host")
    return str(url).rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class Access(StrEnum):
    OPEN = "open"  # anyone may use the bot
    ALLOWLIST = "allowlist"  # ALLOWED_USERS, the admins and those /admin allow let in


def _ids_and_names(value: str) -> tuple[frozenset[int], frozenset[str]]:
    """ "123, @Bob 456" → ({123, 456}, {"bob"}): Telegram ids and @usernames (lower case)."""
    ids: set[int] = set()
    names: set[str] = set()
    for item in value.replace(",", " ").split():
        if item.lstrip("-").isdigit():
            ids.add(int(item))
        elif item.startswith("@") and len(item) > 1:
            names.add(item[1:].lower())
        else:
            raise ValueError(f"{item!r} is neither a Telegram id nor an @username")
    return frozenset(ids), frozenset(names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr
    telegram_api_url: HttpUrl | None = None
    gosms_api_url: HttpUrl = "https://api.gosms.ru/v1"
    gotsms_api_url: HttpUrl = "https://app.gotsms.org/api"
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: SecretStr | None = None
    poll_interval: float = Field(default=3.0, gt=0, le=3600)
    webhook_url: HttpUrl | None = None
    webhook_secret: SecretStr | None = None
    web_host: str = "0.0.0.0"  # noqa: S104 - webhook server listens on all interfaces by design
    web_port: int = Field(default=8080, ge=1, le=65535)
    redis_url: str | None = None
    # the start of every key of this deployment in Redis but the dialogs' (two bots may share one)
    redis_namespace: str = Field(default="sms-desk", min_length=1, max_length=64)
    log_level: LogLevel = "INFO"
    role: Role = Role.ALL
    # connections per instance, of a server database (SQLite's pool is fixed: bot/db/engine.py)
    db_pool_size: int = Field(default=30, ge=1, le=500)
    db_pool_overflow: int = Field(default=0, ge=0, le=500)
    # /bulk campaigns: rows of one campaign, the size of a list file, seconds between two SMS
    # of one device
    bulk_max_rows: int = Field(default=5000, ge=1, le=100_000)
    bulk_max_file_bytes: int = Field(default=1024 * 1024, ge=1024, le=20 * 1024 * 1024)
    bulk_device_pace: float = Field(default=3.0, ge=0.1, le=3600)
    # who may use the bot, and its operators (ids or @usernames, separated by commas or spaces)
    access: Access = Access.OPEN
    allowed_users: str = ""
    admin_ids: str = ""
    # history older than this is pruned daily (sent pushes, used confirmations, ended dialogs)
    retention_days: int = Field(default=30, ge=1, le=3650)

    @field_validator("allowed_users", "admin_ids")
    @classmethod
    def _id_list(cls, value: str) -> str:
        _ids_and_names(value)
        return value

    @field_validator("access", mode="before")
    @classmethod
    def _access_lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def allowed(self) -> tuple[frozenset[int], frozenset[str]]:
        """ALLOWED_USERS: (Telegram ids, lower-case usernames without the @)."""
        return _ids_and_names(self.allowed_users)

    @property
    def admins(self) -> frozenset[int]:
        """ADMIN_IDS: the operators' Telegram ids (usernames are not accepted: they change)."""
        return _ids_and_names(self.admin_ids)[0]

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        bot_id, sep, rest = value.get_secret_value().partition(":")
        if not (sep and bot_id.isdigit() and rest):
            raise ValueError("must look like 123456:ABC-DEF…")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _https_webhook(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https:// URL (Telegram sends webhooks over HTTPS only)")
        return value

    @field_validator("secret_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            make_url(value)
        except ArgumentError:
            raise ValueError("is not a valid SQLAlchemy URL") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("role", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shared_setup(self) -> Settings:
        """A server database means several instances may share it: they need one key to read
        each other's tokens, and Redis for dialogs, event isolation and the Telegram pace."""
        if self.is_sqlite:
            return self
        missing = [
            name
            for name, value in (("REDIS_URL", self.redis_url), ("SECRET_KEY", self.secret_key))
            if not value
        ]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} required with a non-SQLite DATABASE_URL "
                "(several instances share its state)"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def data_dir(self) -> Path:
        """The folder of the SQLite file, or `./data` for other databases."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(str(url.database)).expanduser().resolve().parent
        return Path("data").resolve()


def describe_error(error: ValidationError) -> str:
    """One line naming each bad variable, never echoing its value."""
    parts = []
    for item in error.errors():
        reason = (
            "is required"
            if item["type"] == "missing"
            else item["msg"].removeprefix("Value error, ")
        )
        parts.append(f"{str(item['loc'][0]).upper()} {reason}" if item["loc"] else reason)
    return "configuration error: " + "; ".join(parts)


def load_settings() -> Settings:
    """Settings from the environment, or one clear line on stderr and exit code 2."""
    try:
        return Settings()
    except ValidationError as error:
        print(describe_error(error), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
