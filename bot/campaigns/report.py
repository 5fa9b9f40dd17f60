"""The CSV report of a campaign: one line per row, in the order of the list."""

from __future__ import annotations

from collections.abc import Sequence

from bot.db.models import CampaignRow


def report_csv(rows: Sequence[CampaignRow]) -> bytes:
    """number, text, SMS id, final status, error — UTF-8 with a BOM (spreadsheets read it)."""
    raise NotImplementedError


def report_name(campaign_id: int) -> str:
    return f"campaign-{campaign_id}.csv"
