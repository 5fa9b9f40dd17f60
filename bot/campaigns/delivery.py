"""Campaign rows followed to delivery by the GoSMS SMS job (bot/poller/sms.py).

The job reads which SENT rows of a user still wait for a final GoSMS status, asks GoSMS about
them together with the user's other SMS (pages of `/sms`), and hands `record` to its writes: the
statuses land in the rows, and each campaign whose counts moved gets one card push.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.gosms import SmsStatus
from bot.campaigns.card import CARD, card_key, card_payload
from bot.db.campaigns import CampaignRepo
from bot.db.models import Campaign, CampaignRow, RowState, utcnow
from bot.db.outbox_repo import OutboxRepo

FINAL = tuple(int(s) for s in SmsStatus if s.is_final)


class Followed(NamedTuple):
    """A sent row whose delivery is not known yet."""

    row_id: int
    campaign_id: int
    sms_id: str
    sms_status: int | None


class Change(NamedTuple):
    row_id: int
    campaign_id: int
    status: int
    final: bool  # the status is final: the campaign's counts move


async def in_flight(session: AsyncSession, user_id: int, since: datetime) -> list[Followed]:
    """The user's SENT rows, of any campaign, tried after `since` and not final yet."""
    query = (
        select(CampaignRow.id, CampaignRow.campaign_id, CampaignRow.sms_id, CampaignRow.sms_status)
        .join(Campaign, Campaign.id == CampaignRow.campaign_id)
        .where(
            Campaign.user_id == user_id,
            CampaignRow.state == RowState.SENT,
            CampaignRow.sms_id.is_not(None),
            CampaignRow.tried_at > since,
            or_(CampaignRow.sms_status.is_(None), CampaignRow.sms_status.not_in(FINAL)),
        )
        .order_by(CampaignRow.id)
    )
    rows = (await session.execute(query)).all()
    return [Followed(r.id, r.campaign_id, str(r.sms_id), r.sms_status) for r in rows]


def changes(followed: Sequence[Followed], statuses: Mapping[str, int]) -> list[Change]:
    """The rows whose status GoSMS now tells otherwise (rows it did not tell about stay)."""
    found = []
    for row in followed:
        status = statuses.get(row.sms_id)
        if status is not None and status != row.sms_status:
            found.append(Change(row.row_id, row.campaign_id, status, status in FINAL))
    return found


# Guarded by the state: a row taken back meanwhile (retried, deleted) is left alone.
_SET_STATUS = (
    update(CampaignRow.__table__)  # type: ignore[arg-type]
    .where(
        CampaignRow.__table__.c.id == bindparam("b_id"),
        CampaignRow.__table__.c.state == RowState.SENT,
    )
    .values(sms_status=bindparam("b_status"), updated_at=bindparam("b_now"))
)


async def record(session: AsyncSession, user_id: int, found: Sequence[Change]) -> None:
    """Writes the new statuses, then queues the card of each campaign whose counts moved (a
    status that became final), with its counts as they are now."""
    if not found:
        return
    now = utcnow()
    connection = await session.connection()
    params = [{"b_id": c.row_id, "b_status": c.status, "b_now": now} for c in found]
    await connection.execute(_SET_STATUS, params)
    moved = sorted({c.campaign_id for c in found if c.final})
    for campaign_id in moved:
        await queue_card(session, user_id, campaign_id)


async def queue_card(session: AsyncSession, user_id: int, campaign_id: int) -> None:
    """The campaign's card as it is now, edited in place; none while it has no card shown (a
    new message at each delivery would bury the chat)."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None or campaign.message_id is None:
        return
    payload = card_payload(campaign, await CampaignRepo(session).counts(campaign_id))
    await OutboxRepo(session).enqueue(user_id, CARD, card_key(payload), payload)
