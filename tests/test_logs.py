from __future__ import annotations

import logging

import pytest

from bot.logs import RedactSecrets

BOT_TOKEN = "123456:AAH-secret_bot_token"


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("x", logging.ERROR, __file__, 1, message, args, exc_info)


@pytest.mark.parametrize(
    "message",
    [
        f"url http://api/bot{BOT_TOKEN}/getMe failed",
        "Authorization: Bearer user-api-token-999",
        f"token {BOT_TOKEN}",
    ],
)
def test_secrets_are_removed_from_messages(message: str) -> None:
    item = record(message)
    RedactSecrets([BOT_TOKEN]).filter(item)
    text = item.getMessage()
    assert BOT_TOKEN not in text
    assert "user-api-token-999" not in text
    assert "***" in text


def test_secrets_are_removed_from_arguments_and_tracebacks() -> None:
    try:
        raise RuntimeError(f"boom {BOT_TOKEN}")
    except RuntimeError as error:
        item = record("failed: %s", BOT_TOKEN, exc=error)
    RedactSecrets([BOT_TOKEN]).filter(item)
    formatted = logging.Formatter().format(item)
    assert BOT_TOKEN not in formatted
    assert "RuntimeError: boom ***" in formatted
