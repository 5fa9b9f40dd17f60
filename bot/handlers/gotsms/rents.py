"""/rents and the rent card: messages, status, wake up, auto-renew, longer plan, refund."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from math import ceil

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.errors import ApiError, ApiRejected
from bot.api.gotsms import GotSMSClient, NumberStatus, Rent
from bot.api.lenient import to_money
from bot.db.models import RentWatch, Service, User, utcnow
from bot.db.rent_watch import RentWatchRepo, auto_refund_open
from bot.handlers.confirm import question, settle
from bot.handlers.gotsms.common import busy, stale, target, unpack
from bot.handlers.util import show
from bot.keyboards import gotsms as kb
from bot.keyboards.callbacks import ConfirmCb, MenuCb
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.poller.wake import follow
from bot.services.gotsms import MESSAGES_PAGE, RENTS_PAGE, find_rent, move_options, pages_of
from bot.services.sharing import card_with_sharing
from bot.services.watch import watch_fresh_rent
from bot.texts import api_error_text, money
from bot.texts.gotsms import (
    amount,
    length_text,
    move_question,
    move_text,
    refund_question,
    rent_card,
    rent_messages_text,
    rents_text,
)

CARD_ACTIONS = ("o", "s", "w", "r", "t", "f", "n", "k")
STATUS_KEEP = 4  # a card opens with the number's status only while this much budget is left


def router() -> Router:
    r = Router(name="gotsms.rents")
    r.message.middleware(NeedsToken(Service.GOTSMS))
    r.callback_query.middleware(NeedsToken(Service.GOTSMS))

    @r.message(Command("rents"))
    async def rents_command(message: Message, gotsms: GotSMSClient) -> None:
        await show_rents(message, gotsms, kb.ACTIVE, 1, edit=False)

    @r.callback_query(MenuCb.filter(F.action == "rents"))
    async def rents_button(query: CallbackQuery, ack: Ack, gotsms: GotSMSClient) -> None:
        await ack()
        if (message := target(query)) is not None:
            await show_rents(message, gotsms, kb.ACTIVE, 1, edit=False)

    @r.callback_query(kb.RentsCb.filter(F.st.in_({kb.ACTIVE, kb.FINISHED}) & (F.p >= 1)))
    async def rents_page(
        query: CallbackQuery, callback_data: kb.RentsCb, ack: Ack, gotsms: GotSMSClient
    ) -> None:
        await ack()
        if (message := target(query)) is not None:
            await show_rents(message, gotsms, callback_data.st, callback_data.p)

    @r.callback_query(kb.RentCb.filter(F.a.in_(CARD_ACTIONS) & (F.p >= 1)))
    async def card_action(
        query: CallbackQuery,
        callback_data: kb.RentCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        ids = unpack(callback_data.id)
        message = target(query)
        if ids is None or message is None:
            await stale(ack)
            return
        action = callback_data.a
        if action == "k":
            await keep_waiting(message, ack)
            return
        await ack()
        card = Card(
            message, gotsms, ids[0], callback_data.st, callback_data.p, session=session, user=user
        )
        if action == "o":
            await card.open()
        elif action == "s":
            await card.status()
        elif action == "w":
            if await card.wake_up():
                if card.woken is not None:
                    await follow(session, user.id, *card.woken)
                await watch_fresh_rent(session, user.id)
        elif action == "r":
            await card.toggle_renewal()
        elif action == "t":
            await card.longer_plans()
        elif action == "n":
            await card.toggle_auto_refund()
        else:
            await card.ask_refund(session, user)

    @r.callback_query(kb.RentMessagesCb.filter())
    async def rent_messages(
        query: CallbackQuery, callback_data: kb.RentMessagesCb, ack: Ack, gotsms: GotSMSClient
    ) -> None:
        ids = unpack(callback_data.id, *([callback_data.b] if callback_data.b else []))
        message = target(query)
        if ids is None or message is None:
            await stale(ack)
            return
        await ack()
        rent_id, before = ids[0], (ids[1] if len(ids) > 1 else None)
        async with busy(message):
            found = await gotsms.number_messages(rent_id, limit=MESSAGES_PAGE, before_id=before)
        phone = next((m.to for m in found.data if m.to), None)
        await show(
            message,
            rent_messages_text(phone, found.data),
            kb.rent_messages(rent_id, found.data, found.meta.next_before_id, newest=before is None),
        )

    @r.callback_query(kb.MoveCb.filter())
    async def move_chosen(
        query: CallbackQuery,
        callback_data: kb.MoveCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        ids = unpack(callback_data.id, callback_data.pl)
        message = target(query)
        if ids is None or message is None:
            await stale(ack)
            return
        await ack()
        rent_id, plan_id = ids
        async with busy(message):
            rent = await find_rent(gotsms, rent_id)
            options = await move_options(gotsms, rent) if rent is not None else []
            account = await gotsms.account()
        option = next((o for o in options if o.plan_id == plan_id), None)
        if rent is None or option is None:
            await show(
                message, _("This plan change is not offered any more."), kb.back_to_card(rent_id)
            )
            return
        label = length_text(option.months, "month")
        payload = {
            "rent_id": rent.id,
            "plan_id": option.plan_id,
            "label": label,
            "phone": rent.phone,
        }
        yes = "✅ " + _("Pay {price}").format(price=money(option.price))
        asked = await question(session, user.id, kb.MOVE, payload, yes)
        await show(
            message, move_question(rent.phone, label, option.price, account.balance), asked.keyboard
        )

    @r.callback_query(ConfirmCb.filter(F.action.in_({kb.REFUND, kb.MOVE})))
    async def confirmed(
        query: CallbackQuery,
        callback_data: ConfirmCb,
        ack: Ack,
        session: AsyncSession,
        user: User,
        gotsms: GotSMSClient,
    ) -> None:
        settled = await settle(query, callback_data, ack, session, user)
        if settled is None:
            return
        action, payload, message = settled.action, settled.payload, settled.message
        if not settled.ok:
            await show(message, _("Nothing was changed."), kb.back_to_card(str(payload["rent_id"])))
            return
        rent_id = str(payload["rent_id"])
        try:
            async with busy(message):
                if action == kb.REFUND:
                    await gotsms.refund(rent_id)
                else:
                    await gotsms.transition(rent_id, str(payload["plan_id"]))
        except ApiError as error:
            await show(message, "❌ " + api_error_text(error), kb.back_to_card(rent_id))
            return
        if action == kb.REFUND:
            await refunded_by_hand(session, rent_id)
            text = _("✅ Refunded: {price} is back on your balance.").format(
                price=amount(to_money(payload.get("price")))
            )
        else:
            text = _("✅ Done: {phone} is now on the {plan} plan.").format(
                phone=escape(str(payload["phone"])), plan=str(payload["label"])
            )
        await show(message, text, kb.back_to_card(rent_id))

    return r


async def show_rents(
    message: Message, gotsms: GotSMSClient, status: str, page: int, *, edit: bool = True
) -> None:
    wanted = "finished" if status == kb.FINISHED else "active"
    async with busy(message):
        found = await gotsms.rents(status=wanted, page=page, per_page=RENTS_PAGE)
    pages = pages_of(found.meta.total, RENTS_PAGE)
    await show(
        message,
        rents_text(found.data, status == kb.ACTIVE, found.meta.total),
        kb.rents(found.data, status, min(page, pages), pages),
        edit=edit,
    )


class Card:
    """One rent card message and the calls behind its buttons."""

    def __init__(
        self,
        message: Message,
        gotsms: GotSMSClient,
        rent_id: str,
        status: str,
        page: int,
        *,
        session: AsyncSession | None = None,
        user: User | None = None,
    ) -> None:
        self.session = session  # with the user: the card shows the group its codes go to
        self.user = user
        self.message = message
        self.gotsms = gotsms
        self.rent_id = rent_id
        self.status_filter = status
        self.page = page
        self.woken: tuple[Rent, datetime | None] | None = None  # a wake-up just asked for

    @property
    def user_id(self) -> int:
        return self.user.id if self.user is not None else 0

    async def _watch(self) -> RentWatch | None:
        if self.session is None:
            return None
        return await RentWatchRepo(self.session).get(self.user_id, self.rent_id)

    async def _rent(self) -> Rent | None:
        rent = await find_rent(self.gotsms, self.rent_id, self.status_filter, self.page)
        if rent is None:
            await show(
                self.message,
                _("This rental is not in your list any more."),
            )
        return rent

    async def _show(
        self,
        rent: Rent,
        number: NumberStatus | None = None,
        note: str = "",
        *,
        seen: NumberStatus | None = None,
    ) -> None:
        """`number`: the status in full; `seen`: read only for what the number is doing."""
        now = number or seen
        can_wake = now.can_wake_up if now is not None else rent.can_wake_up
        watch = await self._watch()
        switch = watch.auto_refund if watch is not None and auto_refund_open(watch) else None
        text = rent_card(rent, number, doing=now, auto_refund=switch)
        if note:
            text = note + "\n\n" + text
        markup = kb.rent_card(
            rent, self.status_filter, self.page, can_wake=can_wake, auto_refund=switch
        )
        if self.session is not None and self.user is not None:
            text, markup = await card_with_sharing(
                self.session, self.user.id, rent, text, markup, self.status_filter, self.page
            )
        await show(self.message, text, markup)

    async def open(self) -> None:
        async with busy(self.message):
            rent = await self._rent()
            seen = await self._affordable_status(rent) if rent is not None else None
        if rent is not None:
            await self._show(rent, seen=seen)

    async def _affordable_status(self, rent: Rent) -> NumberStatus | None:
        """The number's status for an active rent's card, when the budget has room for it."""
        if rent.status != "active" or await self.gotsms.budget_wait(STATUS_KEEP) > 0:
            return None
        try:
            return await self.gotsms.number_status(rent.id)
        except ApiError:
            return None  # the card shows what the rent itself says

    async def status(self) -> None:
        async with busy(self.message):
            rent = await self._rent()
            number = await self.gotsms.number_status(self.rent_id) if rent else None
        if rent is not None:
            await self._show(rent, number)

    async def _refused(self, error: ApiRejected) -> None:
        """A business rule said no (422): say it on the card itself."""
        rent = await self._rent()
        if rent is not None:
            await self._show(rent, note="❌ " + api_error_text(error))

    async def wake_up(self) -> bool:
        """True when the number was woken up (its codes are awaited now)."""
        async with busy(self.message):
            try:
                await self.gotsms.wake_up(self.rent_id)
            except ApiRejected as error:
                await self._refused(error)
                return False
            number = await self.gotsms.number_status(self.rent_id)
            rent = await self._rent()
        if rent is not None:
            self.woken = (rent, number.wake_from or rent.wake_from)
            sent = _(
                "Wake-up request sent: GotSMS brings the number online so that it can receive "
                "an SMS."
            )
            await self._show(rent, number, "⏰ " + sent)
        return True

    async def toggle_renewal(self) -> None:
        async with busy(self.message):
            try:
                change = await self.gotsms.toggle_renewal(self.rent_id)
            except ApiRejected as error:
                await self._refused(error)
                return
            rent = await self._rent()
        if rent is None:
            return
        note = (
            _("🔄 Auto-renew is now on.")
            if change.is_included_for_next_renewal
            else _("🔄 Auto-renew is now off.")
        )
        await self._show(rent, note=note)

    async def longer_plans(self) -> None:
        async with busy(self.message):
            rent = await self._rent()
            if rent is None:
                return
            if not rent.transition_options and rent.plan.duration_type != "day":
                await self._show(
                    rent, note="❌ " + _("Only a daily rental can be moved to a longer plan.")
                )
                return
            options = await move_options(self.gotsms, rent)
        labels = []
        for option in options:
            label = f"{length_text(option.months, 'month')} — {money(option.price)}"
            if option.country:
                label = f"{option.country} · {label}"
            labels.append((option.plan_id, label))
        await show(self.message, move_text(rent, len(options)), kb.move_options(rent, labels))

    async def toggle_auto_refund(self) -> None:
        """The rent's no-code refund switch (no request but the card's own)."""
        assert self.session is not None
        watch = await self._watch()
        on = watch is not None and not watch.auto_refund
        changed = await RentWatchRepo(self.session).set_auto_refund(self.user_id, self.rent_id, on)
        await self.session.commit()
        if changed is None:
            note = "❌ " + _(
                "Auto-refund can be turned on or off only until the rental's wait for a code "
                "is over."
            )
        elif on and changed.remind_at is not None:
            note = "🤖 " + auto_refund_note(changed.remind_at)
        else:
            note = "🤖 " + _("Auto-refund is off for this rental.")
        async with busy(self.message):
            rent = await self._rent()
        if rent is not None:
            await self._show(rent, note=note)

    async def ask_refund(self, session: AsyncSession, user: User) -> None:
        async with busy(self.message):
            rent = await self._rent()
        if rent is None:
            return
        price = "" if rent.price is None else str(rent.price)
        payload = {"rent_id": rent.id, "price": price, "phone": rent.phone}
        asked = await question(session, user.id, kb.REFUND, payload, "↩️ " + _("Yes, refund"))
        await show(self.message, refund_question(rent), asked.keyboard)


async def keep_waiting(message: Message, ack: Ack) -> None:
    """The no-code push's Keep waiting: its buttons go, nothing is asked of GotSMS."""
    await ack(_("OK, I'll keep waiting: the code will arrive here automatically."))
    note = "⏳ " + _("Still waiting: the code will arrive here automatically.")
    await show(message, message.html_text + "\n\n" + note)


async def refunded_by_hand(session: AsyncSession, rent_id: str) -> None:
    """No no-code push nor automatic refund after a refund from the card; a code that still
    comes says the rental was refunded."""
    await RentWatchRepo(session).refunded_by_hand(rent_id)
    await session.commit()


def auto_refund_note(remind_at: datetime) -> str:
    minutes = max(1, ceil((remind_at - utcnow()) / timedelta(minutes=1)))
    return ngettext(
        "Auto-refund is on: if no code comes within {n} minute, I will refund this rental.",
        "Auto-refund is on: if no code comes within {n} minutes, I will refund this rental.",
        minutes,
    ).format(n=minutes)
