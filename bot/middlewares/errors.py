"""The outermost update middleware: every callback query answered, every error a short reply.

Outermost, so that it also answers when a middleware fails before the handler (the database,
the dialog storage), and so that an error reaches DbSessionMiddleware, which rolls the
update's session back.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, TelegramObject, Update
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.api.errors import ApiError
from bot.keyboards.callbacks import ConfirmCb
from bot.middlewares.context import Handler, update_locale
from bot.texts import api_error_text

log = logging.getLogger(__name__)


class Ack:
    """Answers a callback query once. Handlers call it first, before any slow work."""

    def __init__(self, query: CallbackQuery) -> None:
        self.query = query
        self.done = False

    async def __call__(self, text: str | None = None, *, alert: bool = False) -> None:
        if self.done:
            return
        self.done = True
        try:
            await self.query.answer(text, show_alert=alert)
        except TelegramBadRequest as exc:  # too old: the user pressed long ago
            log.info("callback query %s not answered: %s", self.query.id, exc.message)


class ErrorGuardMiddleware(BaseMiddleware):
    def __init__(self, i18n: I18n) -> None:
        self.i18n = i18n  # the locale middleware's context is gone when an error gets here

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        ack = Ack(event.callback_query) if event.callback_query else None
        if ack is not None:
            data["ack"] = ack
        try:
            return await handler(event, data)
        except Exception as exc:
            with self.i18n.context(), self.i18n.use_locale(update_locale(data)):
                text = _report(event, exc)
            await self._tell(event, data, text, ack)
        finally:
            if ack is not None:
                await ack()
        return None

    @staticmethod
    async def _tell(event: Update, data: dict[str, Any], text: str, ack: Ack | None) -> None:
        if ack is not None and not ack.done:
            await ack(text, alert=True)
            return
        chat = data.get("event_chat")
        bot: Bot | None = data.get("bot")
        if chat is None or bot is None:
            return
        try:
            await bot.send_message(chat.id, text)
        except TelegramAPIError as exc:
            log.warning("update %s: could not tell the user: %s", event.update_id, exc.message)


def _report(event: Update, exc: Exception) -> str:
    """Logs the error; returns what the user is told."""
    if isinstance(exc, ApiError):
        log.warning("update %s: %s", event.update_id, exc)
        return api_error_text(exc)
    if isinstance(exc, TelegramAPIError):
        log.warning("update %s: Telegram refused a call: %s", event.update_id, exc.message)
        text = _("Telegram refused that action. Please try again.")
    else:
        log.error("update %s failed", event.update_id, exc_info=exc)
        text = _("Something went wrong on my side. Please try again.")
    return _after_yes(event) or text


def _after_yes(event: Update) -> str | None:
    """After a Yes, "try again" could pay twice: the action may have run before the failure."""
    query = event.callback_query
    if query is None or not query.data or not query.data.startswith(f"{ConfirmCb.__prefix__}:"):
        return None
    try:
        confirmed = ConfirmCb.unpack(query.data).ok
    except (TypeError, ValueError):
        return None
    if not confirmed:
        return None
    return _(
        "I could not show the result, but what you confirmed may have been done. "
        "Look at /rents, /sms or /devices before you try it again."
    )
