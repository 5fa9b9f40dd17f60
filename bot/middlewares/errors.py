"""The innermost update middleware: every callback query answered, every error a short reply."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, TelegramObject, Update
from aiogram.utils.i18n import gettext as _

from bot.api.errors import ApiError
from bot.keyboards.callbacks import ConfirmCb
from bot.middlewares.context import Handler
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
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        ack = Ack(event.callback_query) if event.callback_query else None
        if ack is not None:
            data["ack"] = ack
        try:
            return await handler(event, data)
        except ApiError as exc:
            log.warning("update %s: %s", event.update_id, exc)
            await self._tell(event, data, api_error_text(exc), ack)
        except TelegramAPIError as exc:
            log.warning("update %s: Telegram refused a call: %s", event.update_id, exc.message)
            text = _("Telegram refused that action. Please try again.")
            await self._tell(event, data, _after_yes(event) or text, ack)
        except Exception:
            log.exception("update %s failed", event.update_id)
            text = _("Something went wrong on my side. Please try again.")
            await self._tell(event, data, _after_yes(event) or text, ack)
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
