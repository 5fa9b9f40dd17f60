"""What the bot follows of a rent beyond its codes (bot/db/models.py RentWatch), and the services
a user rents (ServicePick)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.gotsms import Rent
from bot.db.models import NotificationSettings, RentWatch, ServicePick, utcnow

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
