"""The CSV report of a campaign: one line per row, in the order of the list."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from bot.api.gosms import SmsStatus
from bot.db.models import CampaignRow, RowState

COLUMNS = ("number", "text", "sms_id", "status", "error")
NOT_SENT = "not sent"
UNKNOWN = "unknown"
FAILED = "failed"
SENT = "sent"


def status_word(row: CampaignRow) -> str:
    """The row's final status in stable English words (a spreadsheet's, not the card's):
    GoSMS's status once it was sent ("delivered", "delivery error", ...)."""
    if row.state == RowState.QUEUED:
        return NOT_SENT
    if row.state in (RowState.SENDING, RowState.UNKNOWN):
        return UNKNOWN
    if row.state == RowState.FAILED:
        return FAILED
    if row.sms_status is None:
        return SENT
    try:
        return SmsStatus(row.sms_status).name.lower().replace("_", " ")
    except ValueError:
        return SENT


def report_csv(rows: Sequence[CampaignRow]) -> bytes:
    """number, text, SMS id, final status, error — UTF-8 with a BOM (spreadsheets read it)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row.phone, row.text, row.sms_id or "", status_word(row), row.error or ""])
    return out.getvalue().encode("utf-8-sig")


def report_name(campaign_id: int) -> str:
    return f"campaign-{campaign_id}.csv"
