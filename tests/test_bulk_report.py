"""The CSV report of a campaign: what a spreadsheet reads back, row by row, in the list's order."""

from __future__ import annotations

import csv
import io

from bot.api.gosms import SmsStatus
from bot.campaigns.report import report_csv, report_name
from bot.db.models import CampaignRow, RowState


def row(line: int, state: RowState, **values: object) -> CampaignRow:
    fields: dict[str, object] = {"line": line, "phone": f"7999000{line:04d}", "text": "Hi"}
    return CampaignRow(state=state, **(fields | values))


def read(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "a BOM, so spreadsheets take it as UTF-8"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_every_state_reads_back_in_words_and_texts_survive() -> None:
    tricky = 'Привет, "друг"\nвторая строка'
    rows = [
        row(1, RowState.SENT, sms_id="a1", sms_status=SmsStatus.DELIVERED, text=tricky),
        row(2, RowState.SENT, sms_id="a2", sms_status=SmsStatus.DELIVERY_ERROR),
        row(3, RowState.SENT, sms_id="a3"),
        row(4, RowState.FAILED, error="2005: phone must be digits"),
        row(5, RowState.UNKNOWN),
        row(6, RowState.SENDING),
        row(7, RowState.QUEUED),
        row(8, RowState.SENT, sms_id="a8", sms_status=99),
    ]
    table = read(report_csv(rows))
    assert table[0] == ["number", "text", "sms_id", "status", "error"]
    assert [r[3] for r in table[1:]] == [
        "delivered",
        "delivery error",
        "sent",
        "failed",
        "unknown",
        "unknown",
        "not sent",
        "sent",
    ]
    assert table[1][:3] == ["79990000001", tricky, "a1"]
    assert table[4][4] == "2005: phone must be digits"
    assert report_name(12) == "campaign-12.csv"
