"""The Telegram pace shared by every instance through a real Redis: ~25 messages a second in all
and ~1 a second per chat over several senders, and a 429 one sender got respected by all."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from bot.db.models import utcnow
from bot.db.outbox import OutboxItem
from bot.db.outbox_repo import OutboxRepo
from bot.db.repo import UserRepo
from bot.pace import LocalPace, RedisPace, Send
from bot.poller.sender import OutboxSender
from tests.backends import Backend
from tests.conftest import Harness
from tests.shared_redis import Shared, most_within
from tests.shared_redis import shared as shared  # the fixture

CODE = {"service": "Telegram", "phone": "+1 415 555 0100", "code": "123456", "body": "Code"}


def slots_of(waits: list[float | None], asked_at: float) -> list[float]:
    return [asked_at + wait for wait in waits if wait is not None]


async def test_slots_in_all_are_a_25th_of_a_second_apart_over_instances(shared: Shared) -> None:
    first, second = (
        RedisPace(shared.redis, shared.namespace),
        RedisPace(shared.redis, shared.namespace),
    )
    began = time.monotonic()
    a = await first.admit([Send(n, 100 + n) for n in range(40)])
    b = await second.admit([Send(100 + n, 200 + n) for n in range(40)])
    given = sorted(slots_of(a, began) + slots_of(b, began))
    assert 22 <= len(given) <= 26, "about one second ahead is handed out, no more"
    gaps = [later - earlier for earlier, later in itertools.pairwise(given)]
    assert min(gaps) >= 0.035, "every slot of both senders 1/25 s from the next"
    assert most_within(given, 1.0) <= 25
    assert b.count(None) >= 38, "the second sender finds the next second taken"


async def test_a_chat_gets_three_at_once_then_one_a_second(shared: Shared) -> None:
    pace = RedisPace(shared.redis, shared.namespace)
    waits = await pace.admit([Send(n, 7) for n in range(5)])
    assert [w is not None for w in waits] == [True, True, True, False, False]
    assert await pace.admit([Send(5, 7)]) == [None]
    await asyncio.sleep(1.05)
    assert (await pace.admit([Send(5, 7), Send(6, 7)]))[1] is None, "one more a second later"


async def test_a_429_one_sender_got_pauses_the_chat_for_the_others(shared: Shared) -> None:
    first, second = (
        RedisPace(shared.redis, shared.namespace),
        RedisPace(shared.redis, shared.namespace),
    )
    await first.back_off(7, 1.0)
    assert await second.admit([Send(1, 7), Send(2, 8)]) == [None, 0.0], "only that chat waits"
    await asyncio.sleep(1.1)
    assert (await second.admit([Send(1, 7)]))[0] is not None


async def test_429s_of_several_chats_at_once_pause_everyone(
    shared: Shared, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = (
        RedisPace(shared.redis, shared.namespace),
        RedisPace(shared.redis, shared.namespace),
    )
    await first.back_off(1, 1.0)
    await first.back_off(2, 1.0)
    assert (await second.admit([Send(9, 9)]))[0] is not None, "two chats: their own limits"
    await first.back_off(3, 1.0)
    assert await second.admit([Send(10, 10), Send(11, 11)]) == [None, None]
    assert any("flood limit" in r.getMessage() for r in caplog.records)
    await asyncio.sleep(1.1)
    assert None not in await second.admit([Send(10, 10), Send(11, 11)])


async def test_a_push_one_sender_was_given_a_slot_for_is_not_given_to_another(
    shared: Shared,
) -> None:
    first = RedisPace(shared.redis, shared.namespace, hold=0.3)
    second = RedisPace(shared.redis, shared.namespace, hold=0.3)
    assert await first.admit([Send(1, 7)]) == [0.0]
    mine, other = await second.admit([Send(1, 7), Send(2, 8)])
    assert mine is None
    assert other is not None, "and no slot was wasted on it"
    assert other <= 0.05
    assert (await first.admit([Send(1, 7)]))[0] is not None, "its own, again (a retry)"
    await asyncio.sleep(0.4)
    assert (await second.admit([Send(1, 9)]))[0] is not None


async def test_every_key_of_the_pace_expires(shared: Shared) -> None:
    pace = RedisPace(shared.redis, shared.namespace)
    await pace.admit([Send(n, n % 7) for n in range(30)])
    for chat in range(4):
        await pace.back_off(chat, 2.0)
    keys = [key async for key in shared.redis.scan_iter(match=f"{shared.namespace}:*")]
    assert len(keys) > 30
    ttls = [await shared.redis.pttl(key) for key in keys]
    assert all(0 < ttl <= 5000 for ttl in ttls), ("nothing grows without end", ttls)


async def test_without_redis_a_sender_keeps_its_own_pace(caplog: pytest.LogCaptureFixture) -> None:
    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        pace = RedisPace(gone, "nowhere")
        assert await pace.admit([Send(n, 7) for n in range(4)]) == [0.0, 0.0, 0.0, None]
        await pace.back_off(8, 30)
        assert await pace.admit([Send(9, 8)]) == [None]
    finally:
        await gone.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one line per episode"


# ---------------------------------------------------------------- senders on one Redis


async def add_users(harness: Harness, pushes: dict[int, int]) -> None:
    async with harness.deps.session_factory() as session:
        for user_id, count in pushes.items():
            harness.tg.user(user_id)
            harness.tg.register_chat(user_id)
            await UserRepo(session).upsert_seen(user_id, user_id, "en")
            for n in range(count):
                await OutboxRepo(session).enqueue(user_id, "code", f"m-{n}", CODE)
        await session.commit()


async def unsent(harness: Harness) -> int:
    async with harness.deps.session_factory() as session:
        query = select(OutboxItem.id).where(OutboxItem.sent_at.is_(None))
        return len((await session.scalars(query)).all())


async def run_senders(harness: Harness, senders: list[OutboxSender], seconds: float) -> None:
    stop = asyncio.Event()
    running = [asyncio.create_task(s.run(stop)) for s in senders]
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while await unsent(harness):
            assert loop.time() < deadline, "not all sent in time"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*running)


def senders_on(harness: Harness, shared: Shared, count: int, **kwargs: Any) -> list[OutboxSender]:
    deps = harness.deps
    return [
        OutboxSender(
            harness.bot,
            deps.session_factory,
            deps.i18n,
            pace=RedisPace(shared.redis, shared.namespace, **kwargs),
        )
        for _ in range(count)
    ]


def arrivals(harness: Harness) -> tuple[list[float], dict[int, list[float]]]:
    calls = harness.tg.calls_of("sendMessage")
    per_chat: dict[int, list[float]] = defaultdict(list)
    for call in calls:
        per_chat[int(call.params["chat_id"])].append(call.at)
    return sorted(call.at for call in calls), per_chat


# Several instances share PostgreSQL: claims take milliseconds there, as in a deployment.
@pytest.mark.parametrize("backend", [Backend.POSTGRES], indirect=True)
async def test_three_senders_keep_one_pace_in_all_and_per_chat(
    harness: Harness, shared: Shared
) -> None:
    many, busy = {7000 + n: 3 for n in range(30)}, {7100 + n: 8 for n in range(3)}
    await add_users(harness, many | busy)
    await run_senders(harness, senders_on(harness, shared, 3), 30)
    times, per_chat = arrivals(harness)
    assert len(times) == 30 * 3 + 3 * 8, "each push sent once, nothing refused"
    # slots are 8 % more than 1/25 s apart, and a send may go up to `late` (0.1 s) after its
    # slot (a claim, a busy loop) before it must ask for another: 2 more in a second at most
    assert most_within(times, 1.0) <= 27, "about 25 a second over the three senders"
    assert times[-1] - times[0] >= (len(times) - 25) / 25 - 0.2, "and no slower than that"
    for chat in busy:
        chat_times = per_chat[chat]
        assert most_within(chat_times, 2.0) <= 5, "3 at once, then about 1 a second"
        assert chat_times[-1] - chat_times[0] >= 8 - 3 - 0.2


@pytest.mark.parametrize("backend", [Backend.POSTGRES], indirect=True)
async def test_telegrams_flood_limit_seen_by_one_sender_stops_them_all(
    harness: Harness, shared: Shared
) -> None:
    await add_users(harness, {7200 + n: 4 for n in range(8)})
    flood = "Too Many Requests: retry after 2"
    harness.tg.fail_next("sendMessage", 429, flood, retry_after=2, times=3)
    await run_senders(harness, senders_on(harness, shared, 2), 20)
    calls = harness.tg.calls_of("sendMessage")
    limited = [c.at for c in calls if c.http_status == 429]
    accepted = [c.at for c in calls if c.ok]
    assert len(limited) == 3
    assert len(accepted) == 32, "every push sent once in the end"
    # sends given their slot (up to 1 s ahead) before the third 429 was known still went
    quiet = [at for at in accepted if limited[-1] + 1.05 < at < limited[-1] + 1.95]
    assert not quiet, "then no sender sent anything while Telegram asked everyone to wait"
    assert max(accepted) > limited[-1] + 1.95


async def test_the_sender_of_a_deployment_with_redis_keeps_the_shared_pace(
    harness: Harness, shared: Shared
) -> None:
    from bot.app import shared_pace

    assert shared_pace(harness.deps) is None, "the only instance: no Redis call"
    harness.deps.redis = shared.redis
    harness.deps.settings = harness.deps.settings.model_copy(
        update={"redis_namespace": shared.namespace}
    )
    try:
        pace = shared_pace(harness.deps)
        assert isinstance(pace, RedisPace)
        assert pace.prefix == f"{shared.namespace}:pace"
    finally:
        harness.deps.redis = None


async def test_a_short_429_of_a_push_pauses_the_chat_instead_of_holding_a_send(
    harness: Harness,
) -> None:
    await add_users(harness, {7300: 1})
    harness.tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2)
    pace = LocalPace()
    out = OutboxSender(harness.bot, harness.deps.session_factory, harness.deps.i18n, pace=pace)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await out.drain_once() == 0
    assert loop.time() - began < 1, "not waited out inline"
    assert not pace.allows(7300, time.monotonic()), "the chat waits"
    async with harness.deps.session_factory() as session:
        [row] = (await session.scalars(select(OutboxItem))).all()
    assert row.attempts == 0, "a 429 is no try"
    assert row.not_before > utcnow() + timedelta(seconds=1.5)


class FloodAfterFirst:
    """Gives one slot, then none (Telegram's flood wait began meanwhile); any lateness counts."""

    late = 0.0

    def __init__(self) -> None:
        self.asked = 0

    async def admit(self, sends: Sequence[Send]) -> list[float | None]:
        self.asked += 1
        return [0.0 if self.asked == 1 else None for _ in sends]

    async def back_off(self, chat_id: int, seconds: float) -> None:
        raise AssertionError("no 429 here")


async def test_a_send_that_missed_its_slot_lets_go_before_its_claim_runs_out(
    harness: Harness,
) -> None:
    await add_users(harness, {7400: 1})
    pace = FloodAfterFirst()
    out = OutboxSender(
        harness.bot,
        harness.deps.session_factory,
        harness.deps.i18n,
        pace=pace,
        claim_hold=timedelta(seconds=1),
    )
    assert await out.drain_once() == 0
    assert pace.asked > 2, "it asked for a new slot again and again"
    assert not harness.tg.calls_of("sendMessage")
    async with harness.deps.session_factory() as session:
        [row] = (await session.scalars(select(OutboxItem))).all()
    assert row.claimed_until is None, "let go: no other sender waits for a claim to run out"
    assert row.attempts == 0


async def test_handler_replies_take_slots_of_the_pace_and_pushes_make_room(
    shared: Shared, harness: Harness
) -> None:
    """A reply is sent at once, but 20 replies on one instance leave another instance's sender
    only the rest of the second: Telegram counts the bot's messages, not just its pushes."""
    from bot.reply_pace import ReplyPace

    replies = RedisPace(shared.redis, shared.namespace)
    harness.bot.session.middleware(ReplyPace(replies))
    for n in range(20):
        harness.tg.register_chat(9000 + n)
    began = time.monotonic()
    for n in range(20):
        await harness.bot.send_message(9000 + n, "reply")
    assert time.monotonic() - began < 2.0, "replies do not wait for the pace"
    sender = RedisPace(shared.redis, shared.namespace)
    given = slots_of(await sender.admit([Send(n, 100 + n) for n in range(40)]), time.monotonic())
    assert len(given) <= 26 - 20 + 6, "the next second of slots went mostly to the replies"
    alone = RedisPace(shared.redis, f"{shared.namespace}-alone")
    assert len(slots_of(await alone.admit([Send(n, 100 + n) for n in range(40)]), 0)) >= 22


class Counting:
    """Every send may go now, and only now: each ask is counted."""

    late = 0.2

    def __init__(self) -> None:
        self.asked: dict[int, int] = defaultdict(int)

    async def admit(self, sends: Sequence[Send]) -> list[float | None]:
        for send in sends:
            self.asked[send.push_id] += 1
        return [0.0 for _ in sends]

    async def back_off(self, chat_id: int, seconds: float) -> None:
        raise AssertionError("no 429 here")


async def test_a_send_kept_waiting_for_a_delivery_slot_asks_the_pace_again(
    harness: Harness,
) -> None:
    """Sends that queued behind slow ones would otherwise all go at once when they get through:
    a burst over the pace that Telegram counts."""
    await add_users(harness, {7500 + n: 1 for n in range(3)})
    harness.tg.set_latency(0.6)
    pace = Counting()
    out = OutboxSender(harness.bot, harness.deps.session_factory, harness.deps.i18n, pace=pace)
    out._slots = asyncio.Semaphore(1)
    assert await out.drain_once() == 3
    asks = sorted(pace.asked.values())
    assert asks == [1, 2, 2], "the first went at its slot, the others waited past theirs"
