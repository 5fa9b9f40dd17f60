"""The progress card of a campaign as data: what the runner and the SMS job queue as a push
(edited in place) and what the buttons show at once. Its text is bot/texts/bulk.py's
`card_text`, its buttons bot/keyboards/bulk.py's `card_keyboard`."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from bot.db.campaigns import Counts
from bot.db.models import Campaign, CampaignState, DeviceMode

CARD = "campaign_card"  # outbox kinds
STOPPED = "campaign_stopped"  # it paused by itself: why, and what to do
DONE = "campaign_done"  # the final card's note, with the report
MIN_GAP = 0.2  # seconds between two SMS of a campaign: half of GoSMS's 10 requests/s


class StopReason(StrEnum):
    """Why a campaign paused by itself (Campaign.reason): going on would be pointless."""

    REVOKED = "revoked"  # 1002 switched off, 1003 deleted
    TARIFF = "tariff"  # 1006 the monthly limit
    NO_DEVICE = "no_device"  # 1004, 1015, 1012/1016 for every device it uses
    BLOCKED = "blocked"  # 3000
    PERMISSION = "permission"  # 1005 the token may not send


def devices_of(campaign: Campaign) -> list[str]:
    ids = json.loads(campaign.device_ids or "[]")
    return [str(i) for i in ids] if isinstance(ids, list) else []


def seconds_per_sms(campaign: Campaign) -> float:
    """The pace of the whole campaign: one device's, shared by the devices it spreads over,
    never faster than MIN_GAP."""
    if campaign.device_mode == DeviceMode.SPREAD:
        return max(MIN_GAP, campaign.pace / max(1, len(devices_of(campaign))))
    return max(MIN_GAP, campaign.pace)


def card_payload(campaign: Campaign, counts: Counts) -> dict[str, Any]:
    per_sms = seconds_per_sms(campaign)
    running = campaign.state == CampaignState.RUNNING
    return {
        "campaign_id": campaign.id,
        "message_id": campaign.message_id,
        "state": campaign.state,
        "reason": campaign.reason,
        "source": campaign.source,
        "total": counts.total,
        "sent": counts.sent,
        "delivered": counts.delivered,
        "failed": counts.failed,
        "waiting": counts.waiting,
        "unknown": counts.unknown,
        "per_sms_s": round(per_sms, 2),
        "left_s": round(counts.waiting * per_sms) if running else None,
    }


def card_key(card: dict[str, Any]) -> str:
    """The outbox key of one look of the card: the same look is never queued twice."""
    parts = ("state", "reason", "sent", "delivered", "failed", "waiting", "unknown")
    return f"{card['campaign_id']}:" + ":".join(str(card[p]) for p in parts)
