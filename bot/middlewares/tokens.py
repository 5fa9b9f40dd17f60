"""Routers whose handlers need the user's own API client: no token, a short hint instead."""

from __future__ import annotations

from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.clients import Clients
from bot.db.crypto import TokenCipher, TokenDecryptError
from bot.db.models import Service, User
from bot.db.repo import CredentialRepo
from bot.middlewares.context import Handler
from bot.texts import service_name


def reconnect_hint(service: Service) -> str:
    """The stored token cannot be decrypted (the key changed, the row is damaged)."""
    return _(
        "I can no longer read your saved {service} token. Connect it again: "
        "<code>/token {word} YOUR_TOKEN</code>"
    ).format(service=service_name(service), word=service.value)


def connect_hint(service: Service) -> str:
    return _("Connect your {service} token first: <code>/token {word} YOUR_TOKEN</code>").format(
        service=service_name(service), word=service.value
    )


class NeedsToken(BaseMiddleware):
    """Puts `gotsms` / `gosms` (a client bound to the user's token) into the handler data."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        try:
            token = await self._token(data)
        except TokenDecryptError:
            await self._refuse(event, data, unreadable=True)
            return None
        if token is None:
            await self._refuse(event, data)
            return None
        clients: Clients = data["clients"]
        if self.service is Service.GOTSMS:
            data["gotsms"] = clients.gotsms(token)
        else:
            data["gosms"] = clients.gosms(token)
        return await handler(event, data)

    async def _token(self, data: dict[str, Any]) -> str | None:
        user: User | None = data.get("user")
        if user is None:
            return None
        cipher: TokenCipher = data["cipher"]
        sealed: dict[Service, bytes] | None = data.get("sealed_tokens")
        if sealed is not None:  # loaded with the user by UserMiddleware
            blob = sealed.get(self.service)
            return None if blob is None else cipher.decrypt(blob)
        session: AsyncSession = data["session"]
        return await CredentialRepo(session, cipher).token(user.id, self.service)

    async def _refuse(
        self, event: TelegramObject, data: dict[str, Any], *, unreadable: bool = False
    ) -> None:
        text = reconnect_hint(self.service) if unreadable else connect_hint(self.service)
        if isinstance(event, CallbackQuery):
            ack = data.get("ack")
            if ack is not None:
                short = (
                    _("I can no longer read your saved {service} token. Connect it again: /token")
                    if unreadable
                    else _("Connect your {service} token first: /token")
                )
                await ack(short.format(service=service_name(self.service)), alert=True)
            return
        if isinstance(event, Message):
            await event.answer(text)
