"""Tell the poller that a number was just rented or woken up: its codes are awaited now."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import utcnow
from bot.db.outbox_repo import PollStateRepo
from bot.poller.codes import JOB as CODES_JOB
from bot.poller.codes import RENTS_JOB, CodesTiming


async def watch_fresh_rent(session: AsyncSession, user_id: int) -> None:
    """Codes are polled every POLL_INTERVAL for the next 30 minutes; rents are looked at now."""
    now = utcnow()
    repo = PollStateRepo(session)
    await repo.heat(user_id, CODES_JOB, now + CodesTiming.hot_window)
    await repo.poke(user_id, RENTS_JOB, now)
    await session.commit()
