"""Files sent with pushes, read from the database when the push goes (not kept in the outbox):
a push whose renderer names one (`Push.attach`) gets it as its document."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.campaigns import card
from bot.campaigns.report import report_csv
from bot.db.campaigns import CampaignRepo

Reader = Callable[[AsyncSession, Mapping[str, Any]], Awaitable[bytes]]


async def campaign_report(session: AsyncSession, payload: Mapping[str, Any]) -> bytes:
    rows = await CampaignRepo(session).rows(int(payload["campaign_id"]))
    await session.commit()
    return await asyncio.to_thread(report_csv, rows)


READERS: dict[str, Reader] = {card.DONE: campaign_report}
