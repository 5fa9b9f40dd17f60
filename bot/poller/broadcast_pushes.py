"""How announcements look: the operator's text as written, and the progress card."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.poller.broadcasts import CARD, KIND
from bot.poller.pushes import Push, Renderer


def broadcast_push(payload: Mapping[str, Any]) -> Push:
    """The operator's text as written (checked as Telegram's HTML before it was confirmed)."""
    return Push(str(payload["text"]))


def card_text(payload: Mapping[str, Any]) -> str:
    total, sent = int(payload["total"]), int(payload["sent"])
    blocked, failed = int(payload["blocked"]), int(payload["failed"])
    lines = [_("📢 <b>Announcement #{id}</b>").format(id=int(payload["broadcast_id"]))]
    if payload.get("done"):
        lines.append(
            ngettext(
                "✅ Done: sent to {sent} of {total} user, {blocked} blocked the bot.",
                "✅ Done: sent to {sent} of {total} users, {blocked} blocked the bot.",
                total,
            ).format(sent=sent, total=total, blocked=blocked)
        )
    else:
        lines.append(
            ngettext(
                "⏳ Sending: {sent} of {total} user, {blocked} blocked the bot.",
                "⏳ Sending: {sent} of {total} users, {blocked} blocked the bot.",
                total,
            ).format(sent=sent, total=total, blocked=blocked)
        )
    if failed:
        lines.append(
            ngettext(
                "❌ {n} user could not be reached.", "❌ {n} users could not be reached.", failed
            ).format(n=failed)
        )
    if blocked:
        lines.append(_("Users who blocked the bot are skipped until they /start it again."))
    return "\n".join(lines)


def card_push(payload: Mapping[str, Any]) -> Push:
    """The progress card, edited in place (sent anew if it has no message)."""
    message_id = payload.get("message_id")
    return Push(card_text(payload), edit_message_id=int(message_id) if message_id else None)


def first_card(broadcast_id: int, total: int) -> str:
    """The card as the confirmation leaves it, before the first refresh."""
    payload = {"broadcast_id": broadcast_id, "total": total, "sent": 0, "blocked": 0, "failed": 0}
    return card_text(payload)


RENDERERS: dict[str, Renderer] = {KIND: broadcast_push, CARD: card_push}
