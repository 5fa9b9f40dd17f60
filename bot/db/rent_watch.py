"""What the bot follows of a rent beyond its codes (bot/db/models.py RentWatch), and the services
a user rents (ServicePick)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.gotsms import Rent
from bot.db.models import NotificationSettings, RefundState, RentWatch, ServicePick, utcnow

RowT = TypeVar("RowT", RentWatch, ServicePick)


class RentWatchRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int, rent_id: str) -> RentWatch | None:
        watch = await self.session.get(RentWatch, rent_id)
        return watch if watch is not None and watch.user_id == user_id else None

    async def made(
        self,
        user_id: int,
        rent: Rent,
        *,
        plan_id: str,
        settings: NotificationSettings,
        now: datetime | None = None,
    ) -> RentWatch:
        """A rent just made through the bot: its no-code deadline from the user's settings."""
        started = now or utcnow()
        minutes = settings.no_code_minutes
        watch = await self.ensure(user_id, rent)
        watch.made_here = True
        watch.plan_id = plan_id or rent.plan.id
        watch.started_at = started
        watch.remind_at = started + timedelta(minutes=minutes) if minutes > 0 else None
        watch.auto_refund = bool(settings.no_code_refund) and minutes > 0
        return watch

    async def ensure(self, user_id: int, rent: Rent) -> RentWatch:
        """The rent's record, made if there is none (a rent made elsewhere: no deadline)."""
        watch = await get_or_add(
            self.session,
            RentWatch,
            rent.id,
            lambda: RentWatch(
                rent_id=rent.id,
                user_id=user_id,
                made_here=False,
                started_at=rent.active_from or utcnow(),
                auto_refund=False,
                got_message=False,
                group_title="",
            ),
        )
        watch.phone = rent.phone
        watch.service_id = rent.service.id
        watch.service_name = rent.service.name
        watch.plan_id = watch.plan_id or rent.plan.id
        return watch

    async def of_user(self, user_id: int) -> list[RentWatch]:
        query = select(RentWatch).where(RentWatch.user_id == user_id)
        return list((await self.session.scalars(query)).all())

    async def got_message(self, rent_ids: list[str]) -> None:
        """Rents that received a message: never reminded of, never refunded automatically."""
        if rent_ids:
            await self.session.execute(
                update(RentWatch)
                .where(RentWatch.rent_id.in_(rent_ids), RentWatch.got_message.is_(False))
                .values(got_message=True, remind_at=None)
            )

    async def no_code_due(self, user_id: int, now: datetime, limit: int) -> list[RentWatch]:
        """The user's rents made here whose no-code deadline has come (message-less, not
        refunded), and those whose automatic refund was left `trying` (a crash, a failure)."""
        query = (
            select(RentWatch)
            .where(
                RentWatch.user_id == user_id,
                or_(
                    RentWatch.refund_state == RefundState.TRYING.value,
                    (RentWatch.remind_at <= now)
                    & RentWatch.made_here.is_(True)
                    & RentWatch.got_message.is_(False)
                    & RentWatch.refund_state.is_(None),
                ),
            )
            .order_by(RentWatch.remind_at)
            .limit(limit)
        )
        return list((await self.session.scalars(query)).all())

    async def next_no_code(self, user_id: int, after: datetime) -> datetime | None:
        """The user's earliest no-code deadline after `after`."""
        query = select(func.min(RentWatch.remind_at)).where(
            RentWatch.user_id == user_id,
            RentWatch.remind_at > after,
            RentWatch.made_here.is_(True),
            RentWatch.got_message.is_(False),
            RentWatch.refund_state.is_(None),
        )
        return await self.session.scalar(query)

    async def reminded(self, rent_id: str) -> None:
        """The no-code deadline is over: pushed, or nothing to do (the caller commits)."""
        await self.session.execute(
            update(RentWatch)
            .where(RentWatch.rent_id == rent_id, RentWatch.remind_at.is_not(None))
            .values(remind_at=None)
        )

    async def claim_refund(self, rent_id: str) -> bool:
        """Claims the one automatic refund of a rent: only while no message came, its switch
        is on and no refund was tried. The caller commits before the refund request."""
        result = await self.session.execute(
            update(RentWatch)
            .where(
                RentWatch.rent_id == rent_id,
                RentWatch.got_message.is_(False),
                RentWatch.refund_state.is_(None),
                RentWatch.auto_refund.is_(True),
            )
            .values(refund_state=RefundState.TRYING.value)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def refund_settled(self, rent_id: str, state: RefundState) -> None:
        """The outcome of the automatic refund, while it is still `trying` (the caller
        commits)."""
        values: dict[str, object] = {"refund_state": state.value, "remind_at": None}
        if state is RefundState.REFUNDED:
            values["refunded_at"] = utcnow()
        await self.session.execute(
            update(RentWatch)
            .where(RentWatch.rent_id == rent_id, RentWatch.refund_state == RefundState.TRYING.value)
            .values(**values)
        )

    async def refunded_by_hand(self, rent_id: str) -> None:
        """Refunded from the card, whatever became of an automatic try (the caller commits)."""
        await self.session.execute(
            update(RentWatch)
            .where(
                RentWatch.rent_id == rent_id,
                or_(
                    RentWatch.refund_state.is_(None),
                    RentWatch.refund_state != RefundState.REFUNDED.value,
                ),
            )
            .values(refund_state=RefundState.REFUNDED.value, refunded_at=utcnow(), remind_at=None)
        )

    async def set_auto_refund(self, user_id: int, rent_id: str, on: bool) -> RentWatch | None:
        """The rent card's switch, while the deadline is ahead and no refund was tried."""
        watch = await self.get(user_id, rent_id)
        if watch is None or not auto_refund_open(watch):
            return None
        watch.auto_refund = on
        return watch

    async def refunded_of(self, rent_ids: list[str]) -> set[str]:
        """Of these rents, those refunded (a code that comes after says so)."""
        if not rent_ids:
            return set()
        query = select(RentWatch.rent_id).where(
            RentWatch.rent_id.in_(rent_ids),
            RentWatch.refund_state == RefundState.REFUNDED.value,
        )
        return set((await self.session.scalars(query)).all())


def auto_refund_open(watch: RentWatch, now: datetime | None = None) -> bool:
    """Whether the rent's automatic refund can still be switched: made here, its deadline
    ahead, no message, no refund tried."""
    return (
        watch.made_here
        and watch.remind_at is not None
        and watch.remind_at > (now or utcnow())
        and not watch.got_message
        and watch.refund_state is None
    )


class ServicePickRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def used(self, user_id: int, service_id: str, name: str) -> None:
        pick = await get_or_add(
            self.session,
            ServicePick,
            (user_id, service_id),
            lambda: ServicePick(user_id=user_id, service_id=service_id, name=name, pinned=False),
        )
        pick.name = name or pick.name or ""
        pick.used_at = utcnow()

    async def of_user(self, user_id: int) -> list[ServicePick]:
        """Pinned first, then the most recently used."""
        query = select(ServicePick).where(ServicePick.user_id == user_id)
        picks = list((await self.session.scalars(query)).all())
        return sorted(picks, key=lambda p: (not p.pinned, -_stamp(p.used_at)))

    async def pin(self, user_id: int, service_id: str, name: str, on: bool) -> None:
        """The ⭐ on or off; two presses at once both end with the one row."""
        key = (user_id, service_id)
        if not on and await self.session.get(ServicePick, key) is None:
            return
        pick = await get_or_add(
            self.session,
            ServicePick,
            key,
            lambda: ServicePick(user_id=user_id, service_id=service_id, name=name, pinned=on),
        )
        pick.name = name or pick.name or ""
        pick.pinned = on

    async def is_pinned(self, user_id: int, service_id: str) -> bool:
        pick = await self.session.get(ServicePick, (user_id, service_id))
        return pick is not None and bool(pick.pinned)

    async def first(self, user_id: int, pinned: int, recent: int) -> list[ServicePick]:
        """The pinned services by name, then the most recently rented ones not pinned."""
        query = select(ServicePick).where(ServicePick.user_id == user_id)
        picks = list((await self.session.scalars(query)).all())
        stars = sorted((p for p in picks if p.pinned), key=lambda p: (p.name or "").lower())
        lately = [p for p in picks if not p.pinned and p.used_at is not None]
        lately.sort(key=lambda p: _stamp(p.used_at), reverse=True)
        return stars[:pinned] + lately[:recent]


async def get_or_add(
    session: AsyncSession, model: type[RowT], key: object, new: Callable[[], RowT]
) -> RowT:
    """The row with this primary key, added if there is none; one added at the same moment by
    a concurrent update is read instead of failing on the unique key."""
    row = await session.get(model, key)
    if row is not None:
        return row
    try:
        async with session.begin_nested():
            row = new()
            session.add(row)
        return row
    except IntegrityError:
        found = await session.get(model, key, populate_existing=True)
        if found is None:
            raise
        return found


def _stamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0
