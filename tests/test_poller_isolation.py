"""One user's broken state never stalls the others: a token that cannot be decrypted, a poll
that raises something other than an API error, a write of the finds that fails once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, update

from bot.db.models import Credential, utcnow
from bot.db.outbox import PollState
from bot.db.outbox_repo import PollStateRepo
from bot.poller import Poller, create_poller
from bot.poller.codes import JOB
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS

HEALTHY, BROKEN = 7601, 7602
OTHER_TOKEN = "gotsms-token-other-4c1d9e7a20b3"
RECONNECT = "I can no longer read your saved GotSMS token. Connect it again:"


async def connect(harness: Harness, user_id: int, token: str) -> None:
    harness.tg.user(user_id, language_code="en")
    await harness.send(user_id, f"/token gotsms {token}")


async def heat(harness: Harness, user_id: int) -> None:
    async with harness.deps.session_factory() as session:
        await PollStateRepo(session).heat(user_id, JOB, utcnow() + timedelta(minutes=30))
        await session.commit()


def poller_of(harness: Harness) -> Poller:
    deps = harness.deps
    return create_poller(
        harness.bot, deps.session_factory, deps.cipher, deps.clients, deps.i18n, 0.5
    )


def texts(harness: Harness, user_id: int) -> list[str]:
    return [m.text or "" for m in harness.tg.bot_messages(user_id)]


def got_code(harness: Harness, code: str) -> bool:
    return any(f"\n{code}\n" in text for text in texts(harness, HEALTHY))


async def state_of(harness: Harness, user_id: int) -> PollState:
    async with harness.deps.session_factory() as session:
        state = await PollStateRepo(session).get(user_id, JOB)
        assert state is not None
        return state


@pytest.fixture
async def two_users(harness: Harness, gotsms: FakeGotSMS) -> dict[str, Any]:
    """Both connected, the healthy one with a rent that gets a code once polling runs."""
    gotsms.add_account(OTHER_TOKEN)
    await connect(harness, HEALTHY, GOTSMS_TOKEN)
    await connect(harness, BROKEN, OTHER_TOKEN)
    plan = gotsms.plan_by("Telegram", "day", 1)["id"]
    rent = gotsms.create_rent(GOTSMS_TOKEN, plan)
    gotsms.create_rent(OTHER_TOKEN, plan)
    for user_id in (HEALTHY, BROKEN):
        await heat(harness, user_id)
    return rent


async def test_an_undecryptable_token_affects_only_its_user(
    harness: Harness, gotsms: FakeGotSMS, two_users: dict[str, Any]
) -> None:
    async with harness.deps.session_factory() as session:
        await session.execute(
            update(Credential)
            .where(Credential.user_id == BROKEN)
            .values(token_encrypted=b"damaged-row")
        )
        await session.commit()
    poller = poller_of(harness)
    poller.start()
    try:
        gotsms.inject_message(two_users["id"], "Your code is 424242", code="424242")
        await harness.tg.wait_for(lambda: got_code(harness, "424242"), timeout=20)
        await harness.tg.wait_for(
            lambda: any(RECONNECT in t for t in texts(harness, BROKEN)), timeout=20
        )
        await asyncio.sleep(2)  # several rounds, three GotSMS jobs of the broken user
    finally:
        await poller.stop()
    assert [t for t in texts(harness, BROKEN) if RECONNECT in t] == [
        f"🔑 {RECONNECT} /token gotsms YOUR_TOKEN"
    ]
    assert not gotsms.requests_for(OTHER_TOKEN, "/messages")

    await harness.send(BROKEN, "/balance")
    assert RECONNECT in (harness.last(BROKEN).text or "")

    await harness.send(BROKEN, f"/token gotsms {OTHER_TOKEN}")
    state = await state_of(harness, BROKEN)
    assert state.failures == 0
    assert state.next_at <= utcnow()  # polled again at the next round


async def test_a_poll_raising_anything_backs_off_its_user_only(
    harness: Harness,
    gotsms: FakeGotSMS,
    two_users: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with harness.deps.session_factory() as session:  # a damaged cursor: ValueError
        await session.execute(
            update(PollState)
            .where(PollState.user_id == BROKEN, PollState.job == JOB)
            .values(cursor="resumed:not-a-date")
        )
        await session.commit()
    poller = poller_of(harness)
    poller.start()
    try:
        gotsms.inject_message(two_users["id"], "Your code is 515151", code="515151")
        await harness.tg.wait_for(lambda: got_code(harness, "515151"), timeout=20)
        for _ in range(100):
            if (await state_of(harness, BROKEN)).failures >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await poller.stop()
    state = await state_of(harness, BROKEN)
    assert state.failures >= 2
    assert state.next_at > utcnow()
    lines = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and f"user {BROKEN}" in r.getMessage()
    ]
    assert len(lines) == 1, [r.getMessage() for r in lines]


@pytest.fixture
def fail_finish_once(harness: Harness) -> Iterator[list[str]]:
    """The first write of the codes poll's state change fails like a locked database."""
    fired: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if not fired and "poll_state.next_at >=" in statement and "'codes'" in repr(params):
            fired.append(statement)
            raise RuntimeError("database is locked (injected)")

    engine = harness.deps.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    yield fired
    event.remove(engine, "before_cursor_execute", before)


async def test_a_failed_flush_keeps_the_finds_for_the_next(
    harness: Harness, gotsms: FakeGotSMS, fail_finish_once: list[str]
) -> None:
    await connect(harness, HEALTHY, GOTSMS_TOKEN)
    rent = gotsms.create_rent(GOTSMS_TOKEN, gotsms.plan_by("Telegram", "day", 1)["id"])
    await heat(harness, HEALTHY)
    await asyncio.sleep(0.05)  # the code comes after the token: it is new, not "there before"
    gotsms.inject_message(rent["id"], "Your code is 616161", code="616161")
    poller = poller_of(harness)
    poller.start()
    try:  # below the 15 s lease: the code is not found again by a new poll
        await harness.tg.wait_for(lambda: got_code(harness, "616161"), timeout=8)
    finally:
        await poller.stop()
    assert fail_finish_once
