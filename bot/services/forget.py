"""/forget: everything the bot stores about a user, deleted in one transaction.

What is kept is the operator's, not the user's: an /admin allow or deny naming the user stays
(a /forget must not lift a deny nor drop an allow), and the rules and announcements an operator
made stay without the operator's id.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Delete, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.fsm import FsmRecord
from bot.db.models import (
    AccessRefusal,
    AccessRule,
    Broadcast,
    BroadcastState,
    Campaign,
    CampaignRow,
    Confirmation,
    Credential,
    Device,
    GroupOffer,
    NotificationSettings,
    RentWatch,
    SentSms,
    ServicePick,
    User,
)
from bot.db.outbox import OutboxItem, PollState

NOBODY = 0  # the operator of a rule or an announcement who asked to be forgotten


def _deletes(user_id: int) -> Sequence[Delete]:
    """Children first: the foreign keys cascade, but SQLite enforces them per connection."""
    campaigns = select(Campaign.id).where(Campaign.user_id == user_id)
    return (
        delete(CampaignRow).where(CampaignRow.campaign_id.in_(campaigns.scalar_subquery())),
        delete(Campaign).where(Campaign.user_id == user_id),
        delete(OutboxItem).where(OutboxItem.user_id == user_id),
        delete(PollState).where(PollState.user_id == user_id),
        delete(Confirmation).where(Confirmation.user_id == user_id),
        delete(SentSms).where(SentSms.user_id == user_id),
        delete(Credential).where(Credential.user_id == user_id),
        delete(Device).where(Device.user_id == user_id),
        delete(NotificationSettings).where(NotificationSettings.user_id == user_id),
        delete(RentWatch).where(RentWatch.user_id == user_id),
        delete(GroupOffer).where(GroupOffer.user_id == user_id),
        delete(ServicePick).where(ServicePick.user_id == user_id),
        delete(AccessRefusal).where(AccessRefusal.user_id == user_id),
        delete(Broadcast).where(
            Broadcast.admin_id == user_id, Broadcast.state == BroadcastState.DRAFT
        ),
    )


def is_dialog_of(key: str, user_id: int) -> bool:
    """A dialog key (bot/db/fsm.py storage_key) of the user, in any chat, or of their chat."""
    parts = key.split(":")
    return len(parts) >= 4 and str(user_id) in (parts[1], parts[3])


async def dialog_keys(session: AsyncSession, user_id: int) -> list[str]:
    """The user's dialog rows in the database (SqlStorage), in their chat and in groups."""
    query = select(FsmRecord.key).where(FsmRecord.key.contains(f":{user_id}:", autoescape=True))
    return [key for key in (await session.scalars(query)).all() if is_dialog_of(key, user_id)]


async def forget_user(session: AsyncSession, user_id: int) -> None:
    """Deletes the user and everything of theirs, and commits: all or nothing.

    The dialogs in Redis (several instances) are cleared by the caller through the FSM storage;
    the rows of SqlStorage are deleted here, in the same transaction.
    """
    for statement in _deletes(user_id):
        await session.execute(statement)
    if keys := await dialog_keys(session, user_id):
        await session.execute(delete(FsmRecord).where(FsmRecord.key.in_(keys)))
    await session.execute(
        update(Broadcast)
        .where(or_(Broadcast.admin_id == user_id, Broadcast.chat_id == user_id))
        .values(admin_id=NOBODY, chat_id=None, message_id=None)
    )
    await session.execute(
        update(AccessRule).where(AccessRule.added_by == user_id).values(added_by=NOBODY)
    )
    await session.execute(delete(User).where(User.id == user_id))
    await session.commit()
    session.expunge_all()  # the user's objects loaded by this update are gone: never flushed
