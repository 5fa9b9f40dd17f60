"""The campaigns of /bulk and their rows (bot/db/models.py: Campaign, CampaignRow).

Every write that matters for "never twice" is one guarded UPDATE: a row goes QUEUED → SENDING
(committed before its SMS is requested) → SENT or FAILED; a row found SENDING by the next holder
of the campaign becomes UNKNOWN and is never sent again by itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.gosms import SmsStatus
from bot.db.models import Campaign, CampaignRow, CampaignState, DeviceMode, RowState, utcnow
from bot.db.outbox_repo import Dead

ENDED = (CampaignState.CANCELLED, CampaignState.DONE)
FAILED_ON_THE_WAY = (int(SmsStatus.SEND_ERROR), int(SmsStatus.DELIVERY_ERROR))
INTERRUPTED = "interrupted while sending: it may have gone out"


class Recipient(NamedTuple):
    """A checked row, ready to be stored."""

    line: int
    phone: str
    text: str


class Dropped(NamedTuple):
    line: int
    value: str  # what the row said (cut to a sensible length)
    reason: str  # a DropReason value (bot/services/bulk.py)


class Counts(NamedTuple):
    """What the card shows. `failed`: refused sends plus SMS whose delivery failed;
    `waiting`: queued plus sending; `delivered` is part of `sent`."""

    total: int
    sent: int
    delivered: int
    failed: int
    waiting: int
    unknown: int


class Holder(NamedTuple):
    """A RUNNING campaign and who sends it."""

    campaign_id: int
    user_id: int
    leased_by: str | None
    leased_until: datetime | None


class Queued(NamedTuple):
    row_id: int
    phone: str
    text: str


class CampaignRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- the dialog and the buttons (bot/handlers/gosms/bulk.py)

    async def create_draft(
        self,
        user_id: int,
        *,
        source: str,
        template: str,
        device_mode: DeviceMode,
        device_ids: Sequence[str],
        to_sim: int | None,
        pace: float,
        recipients: Sequence[Recipient],
        dropped: Sequence[Dropped],
    ) -> Campaign:
        """A DRAFT campaign with its rows (QUEUED); the user's older drafts are deleted."""
        await self.drop_drafts(user_id)
        campaign = Campaign(
            user_id=user_id,
            state=CampaignState.DRAFT,
            source=source,
            template=template,
            device_mode=device_mode,
            device_ids=json.dumps(list(device_ids)),
            to_sim=to_sim,
            pace=pace,
            total=len(recipients),
            dropped=json.dumps([list(d) for d in dropped], ensure_ascii=False),
        )
        self.session.add(campaign)
        await self.session.flush()
        if recipients:
            now = utcnow()
            rows = [
                {
                    "campaign_id": campaign.id,
                    "line": r.line,
                    "phone": r.phone,
                    "text": r.text,
                    "state": RowState.QUEUED,
                    "device_id": "",
                    "updated_at": now,
                }
                for r in recipients
            ]
            await self.session.execute(insert(CampaignRow), rows)  # one executemany
        return campaign

    async def get(self, user_id: int, campaign_id: int) -> Campaign | None:
        """The user's campaign, or None (another user's, or gone)."""
        query = select(Campaign).where(Campaign.id == campaign_id, Campaign.user_id == user_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def of_user(self, user_id: int, *, limit: int, offset: int = 0) -> list[Campaign]:
        """The user's campaigns but drafts, newest first."""
        query = (
            select(Campaign)
            .where(Campaign.user_id == user_id, Campaign.state != CampaignState.DRAFT)
            .order_by(Campaign.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list((await self.session.execute(query)).scalars())

    async def count(self, user_id: int) -> int:
        """How many campaigns `of_user` can show."""
        query = select(func.count(Campaign.id)).where(
            Campaign.user_id == user_id, Campaign.state != CampaignState.DRAFT
        )
        return int((await self.session.execute(query)).scalar_one())

    async def counts(self, campaign_id: int) -> Counts:
        state, status = CampaignRow.state, CampaignRow.sms_status
        sent = state == RowState.SENT

        def total(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        query = select(
            func.count(CampaignRow.id),
            total(sent),
            total(and_(sent, status == int(SmsStatus.DELIVERED))),
            total(or_(state == RowState.FAILED, and_(sent, status.in_(FAILED_ON_THE_WAY)))),
            total(state.in_((RowState.QUEUED, RowState.SENDING))),
            total(state == RowState.UNKNOWN),
        ).where(CampaignRow.campaign_id == campaign_id)
        values = (await self.session.execute(query)).one()
        return Counts(*(int(v) for v in values))

    async def start(self, user_id: int, campaign_id: int, now: datetime) -> bool:
        """DRAFT → RUNNING once; False if it was not a draft of this user."""
        return await self._move(
            user_id,
            campaign_id,
            (CampaignState.DRAFT,),
            state=CampaignState.RUNNING,
            started_at=now,
        )

    async def move(
        self,
        user_id: int,
        campaign_id: int,
        from_states: Sequence[CampaignState],
        to: CampaignState,
        *,
        reason: str | None = None,
    ) -> bool:
        """Pause / resume / cancel: one guarded UPDATE; False if it was in none of `from_states`.
        Resuming clears `reason`; CANCELLED and DONE set `finished_at`."""
        values: dict[str, object] = {"state": to, "reason": reason}
        if to in ENDED:
            values["finished_at"] = utcnow()
        if to != CampaignState.RUNNING:
            values |= {"leased_by": None, "leased_until": None}
        return await self._move(user_id, campaign_id, from_states, **values)

    async def _move(
        self, user_id: int, campaign_id: int, from_states: Sequence[str], **values: object
    ) -> bool:
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.user_id == user_id,
                Campaign.state.in_(list(from_states)),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        moved = int(getattr(result, "rowcount", 0) or 0) == 1
        if moved:  # a campaign read before shows its new state when read again
            for item in list(self.session.identity_map.values()):
                if isinstance(item, Campaign) and item.id == campaign_id:
                    self.session.expire(item)
        return moved

    async def retry(self, user_id: int, campaign_id: int, *, with_unknown: bool) -> int:
        """A DONE (or CANCELLED) campaign: its FAILED rows that were refused (no SMS id) — and
        its UNKNOWN ones if asked — go back to QUEUED, and it runs again. How many rows."""
        if not await self._move(
            user_id,
            campaign_id,
            ENDED,
            state=CampaignState.RUNNING,
            reason=None,
            finished_at=None,
        ):
            return 0
        again = [RowState.FAILED, RowState.UNKNOWN] if with_unknown else [RowState.FAILED]
        result = await self.session.execute(
            update(CampaignRow)
            .where(
                CampaignRow.campaign_id == campaign_id,
                CampaignRow.state.in_(again),
                CampaignRow.sms_id.is_(None),
            )
            .values(state=RowState.QUEUED, error=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def set_card(self, campaign_id: int, chat_id: int, message_id: int) -> None:
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(chat_id=chat_id, message_id=message_id)
            .execution_options(synchronize_session=False)
        )

    async def rows(self, campaign_id: int) -> list[CampaignRow]:
        """Every row, in the order of their lines (the report)."""
        query = (
            select(CampaignRow)
            .where(CampaignRow.campaign_id == campaign_id)
            .order_by(CampaignRow.line, CampaignRow.id)
        )
        return list((await self.session.execute(query)).scalars())

    async def drop_drafts(self, user_id: int) -> int:
        drafts = select(Campaign.id).where(
            Campaign.user_id == user_id, Campaign.state == CampaignState.DRAFT
        )
        ids = list((await self.session.execute(drafts)).scalars())
        if not ids:
            return 0
        # rows first: SQLite enforces the foreign key's cascade only with its pragma on
        await self.session.execute(delete(CampaignRow).where(CampaignRow.campaign_id.in_(ids)))
        await self.session.execute(delete(Campaign).where(Campaign.id.in_(ids)))
        return len(ids)

    # ---- the runner (bot/campaigns/runner.py)

    async def running(self) -> list[Holder]:
        """Every RUNNING campaign with its lease, oldest first."""
        query = (
            select(Campaign.id, Campaign.user_id, Campaign.leased_by, Campaign.leased_until)
            .where(Campaign.state == CampaignState.RUNNING)
            .order_by(Campaign.id)
        )
        return [Holder(*row) for row in (await self.session.execute(query)).all()]

    async def take(self, campaign_id: int, me: str, now: datetime, lease: timedelta) -> bool:
        """Leases a RUNNING campaign whose lease is free, ran out or is this instance's own."""
        free = or_(
            Campaign.leased_until.is_(None), Campaign.leased_until <= now, Campaign.leased_by == me
        )
        return await self._lease(campaign_id, free, now + lease, me)

    async def renew(self, campaign_id: int, me: str, now: datetime, lease: timedelta) -> bool:
        """False once it is paused, cancelled or leased by another instance."""
        return await self._lease(campaign_id, Campaign.leased_by == me, now + lease, me)

    async def _lease(
        self, campaign_id: int, free: ColumnElement[bool], until: datetime, me: str
    ) -> bool:
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.state == CampaignState.RUNNING, free)
            .values(leased_by=me, leased_until=until)
            .execution_options(synchronize_session=False)
        )
        return _one(result)

    async def release(self, campaign_id: int, me: str) -> None:
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.leased_by == me)
            .values(leased_by=None, leased_until=None)
            .execution_options(synchronize_session=False)
        )

    async def release_leases(self, dead: Dead) -> int:
        """The campaigns `dead` instances were sending are free to be taken at once; how many."""
        if not dead:
            return 0
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.leased_by.is_not(None), dead.owns(Campaign.leased_by))
            .values(leased_by=None, leased_until=None)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def interrupted(self, campaign_id: int) -> int:
        """A new holder's first step: rows left SENDING by the one before may have gone out,
        so they become UNKNOWN and are never sent again by themselves; how many."""
        result = await self.session.execute(
            update(CampaignRow)
            .where(CampaignRow.campaign_id == campaign_id, CampaignRow.state == RowState.SENDING)
            .values(state=RowState.UNKNOWN, error=INTERRUPTED, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def queued(self, campaign_id: int, limit: int) -> list[Queued]:
        query = (
            select(CampaignRow.id, CampaignRow.phone, CampaignRow.text)
            .where(CampaignRow.campaign_id == campaign_id, CampaignRow.state == RowState.QUEUED)
            .order_by(CampaignRow.line, CampaignRow.id)
            .limit(limit)
        )
        return [Queued(*row) for row in (await self.session.execute(query)).all()]

    async def last_tries(self, campaign_id: int) -> dict[str, datetime]:
        """When each device of the campaign was last asked to send ("" for any device)."""
        query = (
            select(CampaignRow.device_id, func.max(CampaignRow.tried_at))
            .where(CampaignRow.campaign_id == campaign_id, CampaignRow.tried_at.is_not(None))
            .group_by(CampaignRow.device_id)
        )
        rows = (await self.session.execute(query)).all()
        return {str(device): when for device, when in rows if when is not None}

    async def claim(
        self, row_id: int, campaign_id: int, me: str, device_id: str, now: datetime
    ) -> bool:
        """QUEUED → SENDING, only while this instance holds the campaign's lease and it runs:
        committed before the SMS is requested, so no row is ever requested twice."""
        held = select(Campaign.id).where(
            Campaign.id == campaign_id,
            Campaign.state == CampaignState.RUNNING,
            Campaign.leased_by == me,
            Campaign.leased_until > now,
        )
        result = await self.session.execute(
            update(CampaignRow)
            .where(
                CampaignRow.id == row_id,
                CampaignRow.state == RowState.QUEUED,
                CampaignRow.campaign_id.in_(held.scalar_subquery()),
            )
            .values(state=RowState.SENDING, device_id=device_id, tried_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return _one(result)

    async def settle(
        self,
        row_id: int,
        state: RowState,
        *,
        sms_id: str | None = None,
        sms_status: int | None = None,
        error: str | None = None,
    ) -> bool:
        """A claimed row's outcome. SENT also lands on a row a takeover marked UNKNOWN
        meanwhile: what GoSMS answered is known better than a guess."""
        states = (
            [RowState.SENDING, RowState.UNKNOWN] if state == RowState.SENT else [RowState.SENDING]
        )
        values: dict[str, object] = {"state": state, "error": error, "updated_at": utcnow()}
        if state == RowState.SENT:
            values |= {"sms_id": sms_id, "sms_status": sms_status}
        if state == RowState.QUEUED:  # not sent: it goes later, maybe through another device
            values |= {"device_id": ""}
        result = await self.session.execute(
            update(CampaignRow)
            .where(CampaignRow.id == row_id, CampaignRow.state.in_(states))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return _one(result)

    async def finish(self, campaign_id: int, me: str) -> bool:
        """RUNNING → DONE once no row waits, by the lease's holder."""
        waiting = select(CampaignRow.id).where(
            CampaignRow.campaign_id == campaign_id,
            CampaignRow.state.in_((RowState.QUEUED, RowState.SENDING)),
        )
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.state == CampaignState.RUNNING,
                Campaign.leased_by == me,
                ~waiting.exists(),
            )
            .values(
                state=CampaignState.DONE,
                finished_at=utcnow(),
                leased_by=None,
                leased_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        return _one(result)

    async def pause_by_itself(self, campaign_id: int, me: str, reason: str) -> bool:
        """RUNNING → PAUSED with why, by the lease's holder (not over a user's own pause)."""
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.state == CampaignState.RUNNING,
                Campaign.leased_by == me,
            )
            .values(state=CampaignState.PAUSED, reason=reason, leased_by=None, leased_until=None)
            .execution_options(synchronize_session=False)
        )
        return _one(result)


def _one(result: object) -> bool:
    return int(getattr(result, "rowcount", 0) or 0) == 1
