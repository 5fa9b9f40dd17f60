"""Buttons of /bulk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.db.models import Campaign, CampaignState, Device
from bot.keyboards.callbacks import BulkAction, BulkCb, ConfirmCb
from bot.keyboards.common import pager_row
from bot.keyboards.grid import Keyboard
from bot.texts.bulk import list_label

# ConfirmCb actions of /bulk
START = "bulk_start"
CANCEL = "bulk_cancel"
RETRY = "bulk_retry"
LIST_PAGE = 5


def card_keyboard(card: Mapping[str, Any]) -> InlineKeyboardMarkup | None:
    """Pause / Resume / Cancel while it runs; Report and Retry failed once it is done."""
    campaign_id = int(card["campaign_id"])
    state = card["state"]
    builder = Keyboard()
    if state == CampaignState.RUNNING:
        builder.button(text="⏸ " + _("Pause"), callback_data=bulk(BulkAction.PAUSE, campaign_id))
    elif state == CampaignState.PAUSED:
        builder.button(text="▶️ " + _("Resume"), callback_data=bulk(BulkAction.RESUME, campaign_id))
    if state in (CampaignState.RUNNING, CampaignState.PAUSED):
        builder.button(text="⏹ " + _("Cancel"), callback_data=bulk(BulkAction.CANCEL, campaign_id))
    elif state in (CampaignState.DONE, CampaignState.CANCELLED):
        builder.button(
            text="📄 " + _("Download report"), callback_data=bulk(BulkAction.REPORT, campaign_id)
        )
        # a cancelled campaign with rows never sent: a retry would send those too
        if (int(card["failed"]) or int(card["unknown"])) and not int(card["waiting"]):
            builder.button(
                text="🔁 " + _("Retry failed"), callback_data=bulk(BulkAction.RETRY, campaign_id)
            )
    else:
        return None
    return builder.as_markup()


def bulk(action: BulkAction, id_: int = 0, page: int = 0) -> BulkCb:
    return BulkCb(action=action, id=id_, page=page)


def ask_source(has_campaigns: bool) -> InlineKeyboardMarkup | None:
    if not has_campaigns:
        return None
    builder = Keyboard()
    builder.button(text="📋 " + _("My campaigns"), callback_data=bulk(BulkAction.LIST))
    return builder.as_markup()


def devices(saved: Sequence[Device]) -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text="🎲 " + _("Any device"), callback_data=bulk(BulkAction.DEVICE_ANY))
    for device in saved:
        builder.button(
            text="📱 " + (device.name or device.device_id),
            callback_data=bulk(BulkAction.DEVICE_ONE, device.id),
        )
    if len(saved) > 1:
        builder.button(
            text="🔀 "
            + ngettext("Spread over {n} device", "Spread over all {n} devices", len(saved)).format(
                n=len(saved)
            ),
            callback_data=bulk(BulkAction.DEVICE_SPREAD),
        )
    builder.adjust(1)
    return builder.as_markup()


def sims() -> InlineKeyboardMarkup:
    builder = Keyboard()
    builder.button(text=_("Default SIM"), callback_data=bulk(BulkAction.SIM, 0))
    builder.button(text=_("SIM 1"), callback_data=bulk(BulkAction.SIM, 1))
    builder.button(text=_("SIM 2"), callback_data=bulk(BulkAction.SIM, 2))
    builder.adjust(1, 2)
    return builder.as_markup()


def summary(
    confirmation: InlineKeyboardMarkup | None, campaign_id: int, dropped: int
) -> InlineKeyboardMarkup | None:
    """The Start / Cancel of the confirmation, and "All dropped rows" when any were dropped."""
    rows: list[list[InlineKeyboardButton]] = []
    if confirmation is not None:
        rows += confirmation.inline_keyboard
    if dropped:
        button = InlineKeyboardButton(
            text="📄 " + _("Download dropped rows"),
            callback_data=bulk(BulkAction.DROPPED, campaign_id).pack(),
        )
        rows.append([button])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def cancel_question(confirmation: InlineKeyboardMarkup) -> InlineKeyboardMarkup:
    """Stop sending / Keep sending: a plain "Cancel" under "Cancel the campaign?" reads both
    ways, so the button that keeps it going says so."""
    keep = "▶️ " + _("Keep sending")
    rows = [
        [b.model_copy(update={"text": keep}) if is_no(b) else b for b in row]
        for row in confirmation.inline_keyboard
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def is_no(button: InlineKeyboardButton) -> bool:
    data = button.callback_data or ""
    return data.startswith(ConfirmCb.__prefix__ + ":") and not ConfirmCb.unpack(data).ok


def retry_question(
    confirmation: InlineKeyboardMarkup, campaign_id: int, unknown: int, with_unknown: bool
) -> InlineKeyboardMarkup:
    rows = list(confirmation.inline_keyboard)
    if unknown and not with_unknown:
        button = InlineKeyboardButton(
            text="❓ "
            + ngettext(
                "Include the {n} unknown row", "Include the {n} unknown rows", unknown
            ).format(n=unknown),
            callback_data=bulk(BulkAction.RETRY_ALL, campaign_id).pack(),
        )
        rows.append([button])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def campaigns(items: Sequence[tuple[Campaign, int]], page: int, pages: int) -> InlineKeyboardMarkup:
    """`items`: each campaign with its count of sent SMS."""
    builder = Keyboard()
    for campaign, sent in items:
        builder.button(
            text=list_label(campaign.id, campaign.source, campaign.state, sent, campaign.total),
            callback_data=bulk(BulkAction.OPEN, campaign.id, page),
        )
    builder.adjust(1)
    pager_row(builder, page, pages, lambda p: bulk(BulkAction.LIST, page=p))
    return builder.as_markup()
