"""The campaigns' repository on both databases: drafts, guarded state changes that happen once
however often they are asked for, the card's counts and "Retry failed"."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update

from bot.api.gosms import SmsStatus
from bot.db.campaigns import CampaignRepo, Counts, Dropped, Recipient
from bot.db.models import Campaign, CampaignRow, CampaignState, DeviceMode, RowState, utcnow
from bot.db.repo import UserRepo
from tests.conftest import Harness

OWNER, OTHER = 8101, 8102


async def draft(harness: Harness, rows: int = 3, user_id: int = OWNER) -> int:
    async with harness.deps.session_factory() as session:
        for uid in (OWNER, OTHER):
            await UserRepo(session).upsert_seen(uid, uid, "en")
        recipients = [Recipient(n + 1, f"7999{n:07d}", f"Hi {n}") for n in range(rows)]
        campaign = await CampaignRepo(session).create_draft(
            user_id,
            source="list.csv",
            template="Hi {name}",
            device_mode=DeviceMode.SPREAD,
            device_ids=["a" * 24, "b" * 24],
            to_sim=1,
            pace=3.0,
            recipients=recipients,
            dropped=[Dropped(9, "abc", "bad_number")],
        )
        await session.commit()
        return campaign.id


async def set_rows(
    harness: Harness, campaign_id: int, *states: tuple[RowState, int | None]
) -> None:
    async with harness.deps.session_factory() as session:
        ids = (
            await session.scalars(
                select(CampaignRow.id)
                .where(CampaignRow.campaign_id == campaign_id)
                .order_by(CampaignRow.line)
            )
        ).all()
        for row_id, (state, status) in zip(ids, states, strict=False):
            sms_id = f"s{row_id}" if state == RowState.SENT else None
            await session.execute(
                update(CampaignRow)
                .where(CampaignRow.id == row_id)
                .values(state=state, sms_status=status, sms_id=sms_id)
            )
        await session.commit()


async def test_a_draft_keeps_every_row_and_a_newer_draft_replaces_it(harness: Harness) -> None:
    first = await draft(harness, rows=5000)
    second = await draft(harness, rows=2)
    async with harness.deps.session_factory() as session:
        repo = CampaignRepo(session)
        campaigns = (await session.scalars(select(Campaign.id))).all()
        assert campaigns == [second], f"the older draft ({first}) is gone"
        campaign = await repo.get(OWNER, second)
        assert campaign is not None
        assert campaign.total == 2
        assert campaign.dropped == '[[9, "abc", "bad_number"]]'
        assert [r.line for r in await repo.rows(second)] == [1, 2]
        left = await session.scalar(select(func.count(CampaignRow.id)))
        assert left == 2, "the older draft's rows went with it"
        assert await repo.of_user(OWNER, limit=10) == [], "drafts are not listed"
        assert await repo.get(OTHER, second) is None, "another user's campaign is not theirs"


async def test_start_runs_once_however_often_it_is_pressed(harness: Harness) -> None:
    campaign_id = await draft(harness)

    async def start() -> bool:
        async with harness.deps.session_factory() as session:
            started = await CampaignRepo(session).start(OWNER, campaign_id, utcnow())
            await session.commit()
            return started

    assert sorted(await asyncio.gather(start(), start(), start())) == [False, False, True]
    async with harness.deps.session_factory() as session:
        repo = CampaignRepo(session)
        assert not await repo.start(OTHER, campaign_id, utcnow())
        [listed] = await repo.of_user(OWNER, limit=10)
        assert listed.state == CampaignState.RUNNING
        assert listed.started_at is not None
        assert await repo.count(OWNER) == 1


async def test_pause_resume_and_cancel_move_only_from_their_states(harness: Harness) -> None:
    campaign_id = await draft(harness)
    running, paused = [CampaignState.RUNNING], [CampaignState.PAUSED]
    async with harness.deps.session_factory() as session:
        repo = CampaignRepo(session)
        assert not await repo.move(OWNER, campaign_id, running, CampaignState.PAUSED)
        assert await repo.start(OWNER, campaign_id, utcnow())
        assert not await repo.move(OTHER, campaign_id, running, CampaignState.PAUSED)
        assert await repo.move(OWNER, campaign_id, running, CampaignState.PAUSED, reason="tariff")
        assert not await repo.move(OWNER, campaign_id, running, CampaignState.PAUSED)
        assert await repo.move(OWNER, campaign_id, paused, CampaignState.RUNNING)
        campaign = await repo.get(OWNER, campaign_id)
        assert campaign is not None
        assert campaign.reason is None, "resuming clears the reason"
        assert await repo.move(OWNER, campaign_id, [*running, *paused], CampaignState.CANCELLED)
        campaign = await repo.get(OWNER, campaign_id)
        assert campaign is not None
        assert campaign.finished_at is not None
        await session.commit()


async def test_the_cards_counts(harness: Harness) -> None:
    campaign_id = await draft(harness, rows=8)
    await set_rows(
        harness,
        campaign_id,
        (RowState.SENT, int(SmsStatus.DELIVERED)),
        (RowState.SENT, int(SmsStatus.DELIVERY_ERROR)),
        (RowState.SENT, None),
        (RowState.FAILED, None),
        (RowState.UNKNOWN, None),
        (RowState.SENDING, None),
    )
    async with harness.deps.session_factory() as session:
        counts = await CampaignRepo(session).counts(campaign_id)
    assert counts == Counts(total=8, sent=3, delivered=1, failed=2, waiting=3, unknown=1)


async def test_retry_failed_queues_only_what_never_went_out(harness: Harness) -> None:
    campaign_id = await draft(harness, rows=4)
    await set_rows(
        harness,
        campaign_id,
        (RowState.SENT, int(SmsStatus.DELIVERY_ERROR)),
        (RowState.FAILED, None),
        (RowState.UNKNOWN, None),
        (RowState.SENT, int(SmsStatus.DELIVERED)),
    )
    async with harness.deps.session_factory() as session:
        repo = CampaignRepo(session)
        assert await repo.retry(OWNER, campaign_id, with_unknown=False) == 0, "not ended yet"
        await repo.start(OWNER, campaign_id, utcnow())
        await repo.move(OWNER, campaign_id, [CampaignState.RUNNING], CampaignState.DONE)
        assert await repo.retry(OTHER, campaign_id, with_unknown=True) == 0
        assert await repo.retry(OWNER, campaign_id, with_unknown=False) == 1
        state = await session.scalar(select(Campaign.state).where(Campaign.id == campaign_id))
        assert state == CampaignState.RUNNING
        await repo.move(OWNER, campaign_id, [CampaignState.RUNNING], CampaignState.DONE)
        assert await repo.retry(OWNER, campaign_id, with_unknown=True) == 1, "the unknown one"
        counts = await repo.counts(campaign_id)
        await session.commit()
    assert counts.waiting == 2
    assert counts.unknown == 0
    assert counts.sent == 2, "a delivery that failed was sent: never sent again by a retry"
