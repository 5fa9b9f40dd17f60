"""The running poller keeps the promise: a code on a hot rent reaches the chat within
POLL_INTERVAL + 2 s, once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bot.db.models import utcnow
from bot.db.outbox_repo import PollStateRepo
from bot.poller import create_poller
from bot.poller.codes import JOB, WATCHING
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS

USER = 7101
POLL_INTERVAL = 1.0


async def wait_until_watching(harness: Harness) -> None:
    deadline = time.monotonic() + 10
    while True:
        async with harness.deps.session_factory() as session:
            state = await PollStateRepo(session).get(USER, JOB)
        if state is not None and state.cursor == WATCHING:
            return
        assert time.monotonic() < deadline, "the first poll never happened"
        await asyncio.sleep(0.05)


async def test_a_hot_code_arrives_in_time_and_once(harness: Harness, gotsms: FakeGotSMS) -> None:
    deps = harness.deps
    harness.tg.user(USER, language_code="en")
    await harness.send(USER, f"/token gotsms {GOTSMS_TOKEN}")
    poller = create_poller(
        harness.bot, deps.session_factory, deps.cipher, deps.clients, deps.i18n, POLL_INTERVAL
    )
    poller.start()
    try:
        await wait_until_watching(harness)
        async with deps.session_factory() as session:
            await PollStateRepo(session).heat(USER, JOB, utcnow() + timedelta(minutes=30))
            await session.commit()
        rent = gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "day", 1)["id"])
        since = harness.tg.seq
        started = time.monotonic()
        gotsms.inject_message(rent["id"], "Your Telegram code: 775533", code="775533")
        await harness.tg.wait_for_bot_message(
            USER, "775533", timeout=POLL_INTERVAL + 2, since=since
        )
        assert time.monotonic() - started <= POLL_INTERVAL + 2
        await asyncio.sleep(POLL_INTERVAL * 2.5)
        assert len([m for m in harness.tg.bot_messages(USER) if "775533" in m.text]) == 1
    finally:
        await poller.stop()
