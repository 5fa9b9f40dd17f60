"""Tell each user about the confirmed action that an instance died in the middle of.

A "yes" marks its confirmation running (`running_since`, on the instance `running_on`) in the
same UPDATE that consumes it, and the update's session clears the mark when the handler is done,
whatever the outcome. A mark left on an instance that stopped beating (bot/instances.py), or on
none, is an action cut off by a crash: it never runs again (the confirmation is used), and the
user gets one push (outbox, keyed by the confirmation) that says so. One living instance settles
each: it moves the mark to itself first, and only the one whose move went through goes on. For
a rent the bot asks GotSMS: a new rent of the confirmed plan since the press means it went
through (the push shows the number, and its codes are watched at once); none means nothing was
rented. Every other action, or a rent GotSMS cannot be asked about, says where to look.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.api.clients import Clients
from bot.api.errors import ApiError
from bot.db.crypto import TokenCipher, TokenDecryptError
from bot.db.models import Confirmation, Service
from bot.db.outbox_repo import OutboxRepo
from bot.db.repo import ConfirmationRepo, CredentialRepo
from bot.keyboards.gotsms import RENT
from bot.services.watch import watch_fresh_rent

log = logging.getLogger(__name__)
KIND = "interrupted"
CLOCK_SKEW = timedelta(seconds=30)  # GotSMS's clock may differ a little from ours
RECENT_RENTS = 20


class Recovery:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        cipher: TokenCipher,
        clients: Clients,
        *,
        instance_id: str = "",
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.session_factory = session_factory
        self.cipher = cipher
        self.clients = clients
        self.instance_id = instance_id
        self.on_queued = on_queued

    async def take_over(self, dead: Collection[str | None]) -> int:
        """Queues one push per action cut off on a `dead` instance (None: on no instance)
        that this one got to settle; how many."""
        async with self.session_factory() as session:
            running = await ConfirmationRepo(session).running_on(dead)
        settled = 0
        for row in running:
            try:
                settled += await self._take(row)
            except Exception:
                log.exception("interrupted action %s could not be settled", row.id)
        if settled:
            log.info("%d action(s) cut off by a stopped instance, users told", settled)
            self.on_queued()
        return settled

    async def _take(self, row: Confirmation) -> bool:
        async with self.session_factory() as session:
            if not await ConfirmationRepo(session).take_running(row, self.instance_id):
                return False  # another instance settles it, or it ended after all
        await self._settle(row)
        return True

    async def _settle(self, row: Confirmation) -> None:
        payload: dict[str, Any] = {"action": row.action}
        try:
            confirmed = json.loads(row.payload or "{}")
        except ValueError:
            confirmed = {}
        if isinstance(confirmed, dict) and isinstance(confirmed.get("phone"), str):
            payload["phone"] = confirmed["phone"]
        if row.action == RENT and isinstance(confirmed, dict) and row.running_since is not None:
            payload |= await self._rent_outcome(row.user_id, confirmed, row.running_since)
        async with self.session_factory() as session:
            await OutboxRepo(session).enqueue(row.user_id, KIND, row.id, payload)
            await ConfirmationRepo(session).stop_running([row.id])
            await session.commit()
            if payload.get("outcome") == "done":
                await watch_fresh_rent(session, row.user_id)

    async def _rent_outcome(
        self, user_id: int, confirmed: dict[str, Any], since: datetime
    ) -> dict[str, Any]:
        try:
            async with self.session_factory() as session:
                token = await CredentialRepo(session, self.cipher).token(user_id, Service.GOTSMS)
        except TokenDecryptError:
            log.warning("rent outcome unknown for user %s: the token cannot be read", user_id)
            return {"outcome": "unknown"}
        if token is None:
            return {"outcome": "unknown"}
        try:
            rents = (await self.clients.gotsms(token).rents(per_page=RECENT_RENTS)).data
        except ApiError as error:
            log.info("rent outcome unknown for user %s: %s", user_id, type(error).__name__)
            return {"outcome": "unknown"}
        for rent in rents:
            started = rent.active_from
            if (
                rent.plan.id == confirmed.get("plan_id")
                and started
                and started >= since - CLOCK_SKEW
            ):
                return {"outcome": "done", "rent": rent.model_dump(mode="json", by_alias=True)}
        return {"outcome": "not_done"}
