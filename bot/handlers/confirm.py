"""One-shot confirmations: the Yes / Cancel of every paid or destructive action.

Every such action (rent, refund, plan change, SMS send and delete, device delete, logout) asks
with `question()` and settles the press with `settle()`. The confirmation is a database row that
a press consumes (Yes) or discards (Cancel) with one guarded UPDATE, so of any number of presses
— twice within milliseconds, from two dispatcher tasks, or from two instances — exactly one gets
through; every other press gets a polite alert, never silence. A newer question and /cancel close
the older ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.db.repo import ConfirmationRepo
from bot.keyboards.callbacks import ConfirmCb
from bot.keyboards.common import confirm
from bot.middlewares.errors import Ack

CONFIRMATION_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class Settled:
    """A press that got through: `ok` is Yes (run the action now) or Cancel (nothing to run)."""

    ok: bool
    action: str
    payload: dict[str, Any]
    message: Message  # the question, to turn into the result


class Question(NamedTuple):
    id: str
    keyboard: InlineKeyboardMarkup


async def question(
    session: AsyncSession, user_id: int, action: str, payload: dict[str, Any], yes: str
) -> Question:
    """Stores the action to confirm (closing the user's older questions); its Yes / Cancel."""
    confirmation_id = await ConfirmationRepo(session).create(user_id, action, payload)
    return Question(confirmation_id, confirm(action, confirmation_id, yes))


async def settle(
    query: CallbackQuery,
    callback_data: ConfirmCb,
    ack: Ack,
    session: AsyncSession,
    user: User,
    ttl: timedelta = CONFIRMATION_TTL,
) -> Settled | None:
    """Settles a press once and answers its callback query.

    Yes consumes the confirmation (answered at once, the caller runs the action); Cancel
    discards it (answered "Cancelled"); a press on a confirmation that is used, cancelled,
    replaced by a newer one, expired, of another action or of another user gets an alert and
    None — the caller then does nothing at all. So does a question too old to be edited.
    """
    message = query.message if isinstance(query.message, Message) else None
    if message is None:
        await ack(_("This button is out of date. Send /start for a fresh menu."), alert=True)
        return None
    repo = ConfirmationRepo(session)
    if callback_data.ok:
        taken = await repo.consume(callback_data.id, user.id, ttl, callback_data.action)
    else:
        taken = await repo.discard(callback_data.id, user.id, callback_data.action)
    # the read of the payload ends here: the action's API call holds no connection of the pool
    await session.commit()
    if taken is None:
        await already_settled(ack)
        return None
    await ack(None if callback_data.ok else _("Cancelled"))
    return Settled(callback_data.ok, taken[0], taken[1], message)


async def already_settled(ack: Ack) -> None:
    await ack(
        _(
            "This confirmation was already used, cancelled or replaced, or it has expired. "
            "Nothing more was done."
        ),
        alert=True,
    )


async def close_open(session: AsyncSession, user_id: int) -> int:
    """/cancel: every open question of the user stops working; how many there were."""
    return await ConfirmationRepo(session).discard_open(user_id)
