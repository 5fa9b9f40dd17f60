"""Codes of a shared rent pushed into its group too: the outbox row (bot/poller/group_pushes.py:
how it looks). The row carries only what the group may see (GROUP_FIELDS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.group_links import GROUP_CODE
from bot.db.models import RentWatch
from bot.db.outbox_repo import OutboxRepo
from bot.poller.writes import Step

GROUP_FIELDS = ("service", "phone", "code", "body")  # all a group's push may carry


def group_key(chat_id: int, message_id: str) -> str:
    return f"{chat_id}:{message_id}"


def share_code(user_id: int, message_id: str, rent_id: str, payload: Mapping[str, Any]) -> Step:
    """A write step: the code goes into the rent's group too, once per group (in the same
    transaction as the owner's push)."""
    shown = {name: payload.get(name) for name in GROUP_FIELDS}

    async def step(session: AsyncSession) -> bool:
        watch = await session.get(RentWatch, rent_id)
        if watch is None or watch.user_id != user_id or watch.group_chat_id is None:
            return False
        chat_id = watch.group_chat_id
        key = group_key(chat_id, message_id)
        return await OutboxRepo(session).enqueue(user_id, GROUP_CODE, key, shown, chat_id=chat_id)

    return step
