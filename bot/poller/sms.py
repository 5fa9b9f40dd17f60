"""The GoSMS delivery job: SMS sent from the bot are followed until their status is final.

Each status change edits the SMS card in place; a final one (delivered, or an error) also sends a
short message. The sent rows of the user's campaigns are followed too (bot/campaigns/delivery.py):
their statuses land in the rows and the campaign's card follows its counts.

One or two pending SMS are asked for with `/sms/get`; more are read in pages of `GET /sms`, so a
user with thousands of SMS in flight costs pages, not one request each.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.api.errors import ApiNotFound
from bot.api.gosms import GoSMSClient, Sms, SmsStatus
from bot.campaigns import delivery
from bot.db.models import NotificationSettings, SentSms, Service, utcnow
from bot.db.outbox import PollState
from bot.db.repo import SentSmsRepo
from bot.poller.jobs import Client, Job, Poll
from bot.poller.writes import Pending

JOB = "sms"
FOLLOW_FOR = timedelta(hours=48)
ONE_BY_ONE = 2
PAGE = 100
MIN_PAGES = 5
MAX_PAGES = 60  # 6,000 SMS: more than a campaign may have (BULK_MAX_ROWS)
SPARE_PAGES = 2  # beyond the pages the wanted SMS fill: others were sent meanwhile
PAGE_GAP = 0.2  # seconds between two pages: half of GoSMS's 10 requests/s, the rest the user's
FINAL = tuple(int(s) for s in SmsStatus if s.is_final)


class SmsJob(Job):
    name = JOB
    service = Service.GOSMS

    def __init__(self, *args: Any, busy: float = 10.0, idle: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.busy = busy
        self.idle = idle

    def interval(self, state: PollState, now: datetime) -> float:
        return self.busy if state.cursor == "busy" else self.idle

    def wanted(self, settings: NotificationSettings) -> bool:
        return True  # campaigns are followed whatever the setting; the SMS cards only with it

    async def work(self, poll: Poll, client: Client) -> None:
        assert isinstance(client, GoSMSClient)
        user_id, since = poll.state.user_id, utcnow() - FOLLOW_FOR
        singles: Sequence[SentSms] = []
        if poll.settings.sms_status:
            singles = await SentSmsRepo(poll.session).pending(user_id)
            singles = [s for s in singles if s.created_at > since]
        rows = await delivery.in_flight(poll.session, user_id, since)
        await poll.session.commit()  # no transaction is held across the requests
        poll.state.cursor = "busy" if singles or rows else None
        if not singles and not rows:
            return
        found = await _statuses(client, [s.sms_id for s in singles] + [r.sms_id for r in rows])
        for single in singles:
            sms = found.get(single.sms_id)
            if sms is not None and sms.status != single.status:
                _changed(poll.pending, single, sms.status)
        changes = delivery.changes(rows, {sms_id: sms.status for sms_id, sms in found.items()})
        if changes:
            poll.pending.later(lambda session: delivery.record(session, user_id, changes))


def _page_cap(wanted: int) -> int:
    return min(MAX_PAGES, max(MIN_PAGES, math.ceil(wanted / PAGE) + SPARE_PAGES))


async def _statuses(client: GoSMSClient, ids: Sequence[str]) -> dict[str, Sms]:
    wanted = set(ids)
    found: dict[str, Sms] = {}
    if len(wanted) > ONE_BY_ONE:
        for page in range(1, _page_cap(len(wanted)) + 1):
            if page > 1:
                await asyncio.sleep(PAGE_GAP)
            result = await client.list_sms(limit=PAGE, page=page)
            found |= {s.id: s for s in result.sms_list if s.id in wanted}
            if wanted <= found.keys() or len(result.sms_list) < PAGE:
                break
    for sms_id in list(wanted - found.keys())[:ONE_BY_ONE]:
        try:
            found[sms_id] = await client.get_sms(sms_id)
        except ApiNotFound:
            continue  # deleted meanwhile: its card stays as it was
    return found


def _changed(pending: Pending, row: SentSms, status: int) -> None:
    user_id, sms_id = row.user_id, row.sms_id
    pending.later(lambda session: SentSmsRepo(session).set_status(user_id, sms_id, status))
    card = {
        "sms_id": row.sms_id,
        "phone": row.phone,
        "text": row.text,
        "status": status,
        "device_name": row.device_name,
        "device_id": row.device_id,
        "to_sim": row.to_sim,
        "message_id": row.message_id,
    }
    pending.enqueue(row.user_id, "sms_card", f"{row.sms_id}:{status}", card)
    if status in FINAL:
        note = {"phone": row.phone, "status": status}
        pending.enqueue(row.user_id, "sms_final", f"{row.sms_id}:final", note)
