"""With 30 % of GotSMS answers failing and Telegram throwing 429s and 5xx, every code still
arrives, and only once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from bot.db.models import utcnow
from bot.db.outbox_repo import PollStateRepo
from bot.poller import create_poller
from bot.poller.codes import JOB
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS

USER = 7501
CODES = 12


async def test_every_code_once_through_faults(harness: Harness, gotsms: FakeGotSMS) -> None:
    deps = harness.deps
    harness.tg.user(USER, language_code="en")
    await harness.send(USER, f"/token gotsms {GOTSMS_TOKEN}")
    rent = gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "day", 1)["id"])
    async with deps.session_factory() as session:
        await PollStateRepo(session).heat(USER, JOB, utcnow() + timedelta(minutes=30))
        await session.commit()
    gotsms.set_fault_rates(rate_5xx=0.3, seed=11)
    harness.tg.set_fault_rates(rate_429=0.2, rate_5xx=0.1, retry_after=1, seed=12)
    poller = create_poller(
        harness.bot, deps.session_factory, deps.cipher, deps.clients, deps.i18n, 0.5
    )
    poller.start()
    codes = [str(300000 + n) for n in range(CODES)]

    def delivered() -> Counter[str]:
        texts = [m.text for m in harness.tg.bot_messages(USER)]
        return Counter(code for code in codes for text in texts if f"\n{code}\n" in text)

    try:
        for code in codes:
            gotsms.inject_message(rent["id"], f"Your code is {code}", code=code)
            await asyncio.sleep(0.15)
        await harness.tg.wait_for(lambda: set(delivered()) == set(codes), timeout=60)
        await asyncio.sleep(1.5)
    finally:
        await poller.stop()
    assert delivered() == Counter(dict.fromkeys(codes, 1))
