"""Groups a rent's codes are shared with: the offers (/link in a group) and the links (a rent's
RentWatch.group_chat_id). The caller commits, except where a method says otherwise."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.gotsms import Rent
from bot.db.models import GroupOffer, RentWatch, utcnow
from bot.db.outbox import OutboxItem
from bot.db.rent_watch import RentWatchRepo

GROUP_CODE = "group_code"  # the outbox kind of a code pushed into a group
TITLE_MAX = 128


class GroupLinkRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def offer(self, chat_id: int, user_id: int, title: str) -> None:
        """The owner sent /link in the group: offered on their rent cards from now on."""
        row = await self.session.get(GroupOffer, (chat_id, user_id))
        if row is not None:
            row.title = title[:TITLE_MAX]
            return
        try:
            async with self.session.begin_nested():
                self.session.add(
                    GroupOffer(chat_id=chat_id, user_id=user_id, title=title[:TITLE_MAX])
                )
        except IntegrityError:  # the same /link twice at once: offered already
            return

    async def offers_of(self, user_id: int) -> list[GroupOffer]:
        query = (
            select(GroupOffer)
            .where(GroupOffer.user_id == user_id)
            .order_by(GroupOffer.created_at.desc(), GroupOffer.chat_id)
        )
        return list((await self.session.scalars(query)).all())

    async def offer_of(self, chat_id: int, user_id: int) -> GroupOffer | None:
        return await self.session.get(GroupOffer, (chat_id, user_id))

    async def link(self, user_id: int, rent: Rent, chat_id: int, title: str) -> RentWatch:
        watch = await RentWatchRepo(self.session).ensure(user_id, rent)
        watch.group_chat_id = chat_id
        watch.group_title = title[:TITLE_MAX]
        return watch

    async def stop(self, user_id: int, rent_id: str) -> tuple[int, str] | None:
        """The rent's codes stop going to its group: (its chat id, its title); None: the rent
        was not shared. Its codes already waiting are dropped when no other rent of the owner
        is shared there (an outbox row does not name its rent); otherwise they still go."""
        watch = await RentWatchRepo(self.session).get(user_id, rent_id)
        if watch is None or watch.group_chat_id is None:
            return None
        chat_id, title = watch.group_chat_id, watch.group_title
        watch.group_chat_id = None
        watch.group_title = ""
        await self.session.flush()
        if not await self.shared_in(chat_id, user_id):  # the codes waiting are of this rent
            await self._drop_pending(chat_id, user_id, "unshared")
        return chat_id, title

    async def shared_in(self, chat_id: int, user_id: int) -> list[RentWatch]:
        query = select(RentWatch).where(
            RentWatch.group_chat_id == chat_id, RentWatch.user_id == user_id
        )
        return list((await self.session.scalars(query)).all())

    async def unlink_owner(self, chat_id: int, user_id: int) -> tuple[int, bool]:
        """/unlink by the owner: none of their rents goes there any more and the group is no
        longer offered. (How many rents stopped, whether it was offered.)"""
        shared = await self.shared_in(chat_id, user_id)
        for watch in shared:
            watch.group_chat_id = None
            watch.group_title = ""
        offered = await self.session.execute(
            delete(GroupOffer).where(GroupOffer.chat_id == chat_id, GroupOffer.user_id == user_id)
        )
        await self._drop_pending(chat_id, user_id, "unlinked")
        return len(shared), bool(getattr(offered, "rowcount", 0))

    async def forget_chat(self, chat_id: int, reason: str) -> None:
        """The bot is out of the group (removed, blocked, gone): every rent shared there stops,
        it is offered to nobody, and its pushes not sent yet are dropped."""
        await self.session.execute(
            update(RentWatch)
            .where(RentWatch.group_chat_id == chat_id)
            .values(group_chat_id=None, group_title="", updated_at=utcnow())
        )
        await self.session.execute(delete(GroupOffer).where(GroupOffer.chat_id == chat_id))
        await self._drop_pending(chat_id, None, reason)

    async def retitle(self, chat_id: int, title: str) -> None:
        title = title[:TITLE_MAX]
        await self.session.execute(
            update(GroupOffer).where(GroupOffer.chat_id == chat_id).values(title=title)
        )
        await self.session.execute(
            update(RentWatch).where(RentWatch.group_chat_id == chat_id).values(group_title=title)
        )

    async def moved(self, old_chat_id: int, new_chat_id: int) -> None:
        """The group became a supergroup: a new chat id, the same links and offers."""
        await self.session.execute(
            update(RentWatch)
            .where(RentWatch.group_chat_id == old_chat_id)
            .values(group_chat_id=new_chat_id)
        )
        offers = await self.session.scalars(
            select(GroupOffer).where(GroupOffer.chat_id == old_chat_id)
        )
        for offer in list(offers.all()):
            if await self.session.get(GroupOffer, (new_chat_id, offer.user_id)) is None:
                self.session.add(
                    GroupOffer(chat_id=new_chat_id, user_id=offer.user_id, title=offer.title)
                )
            await self.session.delete(offer)
        await self.session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.chat_id == old_chat_id,
                OutboxItem.sent_at.is_(None),
                OutboxItem.dropped.is_(None),
            )
            .values(chat_id=new_chat_id)
        )

    async def _drop_pending(self, chat_id: int, user_id: int | None, reason: str) -> None:
        query = update(OutboxItem).where(
            OutboxItem.chat_id == chat_id,
            OutboxItem.sent_at.is_(None),
            OutboxItem.dropped.is_(None),
        )
        if user_id is not None:
            query = query.where(OutboxItem.user_id == user_id)
        await self.session.execute(query.values(dropped=reason[:64], claimed_until=None))
