"""/admin: the figures of a seeded database, the refresh button editing them in place, the
same figures in /metrics, both languages."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import cast

import pytest
from aiogram.types import Message

from bot.api.http import Quota, RateLimits
from bot.config import Settings
from bot.db.admin_stats import budget_of, percentile
from bot.db.models import Credential, RentWatch, SentSms, User, utcnow
from bot.db.outbox import OutboxItem, PollState
from bot.handlers.admin import _seconds
from bot.i18n import create_i18n
from tests.backends import Place
from tests.conftest import Harness
from tests.fakes.telegram import FakeTelegram
from tests.test_access import allowlist, instance

ADMIN, OTHER = 7101, 7102
SEEDED = (9001, 9002, 9003, 9004, 9005)

EXPECTED = [
    "SMS Desk: statistics",
    "",
    "👥 Users: 6 · active in 24 h: 5 · blocked the bot: 1",
    "🔑 API tokens: GotSMS 2 · GoSMS 1",
    "👀 Watched rentals: 2 · SMS awaiting delivery: 2",
    "🔁 Users polled, by job: balance 1 · codes 2 · sms 1",
    "📤 Notifications in the last hour: 10 · delay: p50 5 s, p95 10 s",
    "📦 Waiting to be sent: 2 · dropped, never sent: 1",
    "⚠️ Failing polls: codes: users: 1, most failures in a row: 3 · "
    "sms: users: 1, most failures in a row: 1",
    "⏳ GotSMS request budget (this instance, this minute): tokens: 0 · at the reserve: 0 · "
    "told to wait: 0 · fewest requests left: —",
]


@pytest.fixture
async def bot(settings: Settings, tg: FakeTelegram, backend: Place) -> AsyncIterator[Harness]:
    async with instance(allowlist(settings, admin_ids=str(ADMIN)), tg, backend) as harness:
        yield harness


async def seed(harness: Harness) -> None:
    """Six users with the admin: one blocked the bot, one not seen for three days."""
    now = utcnow()
    async with harness.deps.session_factory() as session:
        for user_id in SEEDED:
            seen = now - timedelta(days=3) if user_id == 9005 else now - timedelta(hours=2)
            session.add(
                User(
                    id=user_id,
                    chat_id=user_id,
                    language_code="en",
                    is_active=user_id != 9004,
                    created_at=now - timedelta(days=10),
                    updated_at=seen,
                )
            )
        await session.flush()
        for user_id, service in ((9001, "gotsms"), (9001, "gosms"), (9002, "gotsms")):
            session.add(Credential(user_id=user_id, service=service, token_encrypted=b"x"))
        session.add_all(
            [RentWatch(rent_id="r1", user_id=9001), RentWatch(rent_id="r2", user_id=9002)]
        )
        for n, status in enumerate((0, 2, 4)):  # waiting, sent: followed; delivered: done
            session.add(
                SentSms(
                    user_id=9001,
                    sms_id=f"s{n}",
                    chat_id=9001,
                    message_id=n + 1,
                    phone="+1555",
                    text="hi",
                    status=status,
                )
            )
        for user_id, job, failures in (
            (9001, "codes", 0),
            (9002, "codes", 3),
            (9001, "sms", 1),
            (9003, "balance", 0),
        ):
            session.add(PollState(user_id=user_id, job=job, failures=failures))
        for n in range(1, 11):  # the last hour: latencies of 1 to 10 s
            sent = now - timedelta(minutes=n)
            session.add(push(9001, f"k{n}", sent - timedelta(seconds=n), sent))
        session.add(
            push(9002, "old", now - timedelta(hours=2, seconds=1), now - timedelta(hours=2))
        )
        session.add(push(9002, "waiting1", now, None))
        session.add(push(9003, "waiting2", now, None))
        parked = push(9003, "parked", now - timedelta(hours=3), None)
        parked.dropped = "blocked"
        session.add(parked)
        await session.commit()


def push(user_id: int, key: str, created: datetime, sent: datetime | None) -> OutboxItem:
    return OutboxItem(
        user_id=user_id, kind="code", dedupe_key=key, created_at=created, sent_at=sent
    )


def body(text: str) -> list[str]:
    """The figures without the time they were counted at."""
    lines = text.split("\n")
    assert lines[-1].startswith(("Updated: ", "Обновлено: ")), lines[-1]
    return lines[:-2]


async def test_the_figures_of_a_seeded_database(bot: Harness) -> None:
    await seed(bot)
    bot.tg.user(ADMIN, language_code="en")
    await bot.send(ADMIN, "/admin")
    card = bot.last(ADMIN)
    assert body(card.text) == EXPECTED
    assert [[b.text for b in row] for row in card.buttons] == [["🔄 Refresh"]]
    metrics = bot.deps.metrics.render().decode()
    for line in (
        'sms_desk_users{state="all"} 6.0',
        'sms_desk_users{state="active"} 5.0',
        'sms_desk_users{state="blocked"} 1.0',
        'sms_desk_tokens{service="gotsms"} 2.0',
        'sms_desk_watched{what="sms"} 2.0',
        "sms_desk_outbox_backlog 2.0",
        "sms_desk_outbox_parked 1.0",
        'sms_desk_poll_failing_users{job="codes"} 1.0',
    ):
        assert line in metrics, line


async def test_refresh_edits_the_card_in_place(bot: Harness) -> None:
    await seed(bot)
    bot.tg.user(ADMIN, language_code="en")
    await bot.send(ADMIN, "/admin")
    card = bot.last(ADMIN)
    async with bot.deps.session_factory() as session:
        session.add(User(id=9999, chat_id=9999, language_code="en"))
        await session.commit()
    answer = await bot.press(ADMIN, "🔄 Refresh")
    assert answer.show_alert is False
    after = bot.last(ADMIN)
    assert after.message_id == card.message_id
    assert after.edited
    assert len(bot.tg.bot_messages(ADMIN)) == 1
    assert "👥 Users: 7 · active in 24 h: 6 · blocked the bot: 1" in after.text
    assert [[b.text for b in row] for row in after.buttons] == [["🔄 Refresh"]]


async def test_an_empty_database(bot: Harness) -> None:
    bot.tg.user(ADMIN, language_code="en")
    await bot.send(ADMIN, "/admin")
    text = bot.last(ADMIN).text
    assert "👥 Users: 1 · active in 24 h: 1 · blocked the bot: 0" in text
    assert "📤 Notifications in the last hour: 0 · delay: p50 —, p95 —" in text
    assert "✅ No poll is failing." in text


async def test_the_figures_in_russian(bot: Harness) -> None:
    i18n = create_i18n()
    title = i18n.gettext("<b>SMS Desk: statistics</b>", locale="ru")
    assert title != "<b>SMS Desk: statistics</b>", "the /admin texts have their Russian"
    bot.tg.user(ADMIN, language_code="ru")
    await bot.send(ADMIN, "/admin")
    card = bot.last(ADMIN)
    assert card.html is not None
    assert card.html.startswith(title)
    assert i18n.gettext("🔄 Refresh", locale="ru") == card.buttons[0][0].text


def test_seconds_are_said_without_a_needless_decimal() -> None:
    i18n = create_i18n()
    said = {}
    for locale in ("en", "ru"):
        with i18n.context(), i18n.use_locale(locale):
            said[locale] = [_seconds(5.0), _seconds(0.4), _seconds(12.25), _seconds(None)]
    assert said["en"] == ["5 s", "0.4 s", "12.2 s", "—"]
    assert said["ru"] == ["5 с", "0,4 с", "12,2 с", "—"]


async def test_other_users_cannot_refresh(bot: Harness) -> None:
    bot.tg.user(ADMIN, language_code="en")
    await bot.send(ADMIN, "/admin")
    card = bot.last(ADMIN)
    bot.tg.user(OTHER, language_code="en")
    data = card.buttons[0][0].callback_data
    assert data is not None
    update = bot.tg.callback_update(OTHER, card.message_id, data, chat_id=ADMIN)
    await bot.feed(update)
    assert not bot.last(ADMIN).edited


def test_the_budget_as_this_instance_saw_it() -> None:
    now = time.time()
    limits = RateLimits()
    limits.quotas = {
        "a": Quota(limit=30, remaining=25, reset_at=now + 30),
        "b": Quota(limit=30, remaining=5, reset_at=now + 30),  # only the reserve (8) left
        "c": Quota(limit=30, remaining=0, reset_at=now - 5),  # a minute that is over
        "d": Quota(blocked_until=now + 10),  # a 429
    }
    budget = budget_of(limits, now)
    assert (budget.seen, budget.at_reserve, budget.held_back, budget.lowest) == (2, 1, 1, 5)


def test_percentiles() -> None:
    assert percentile([1.0], 95) == 1.0
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95)) == (50.0, 95.0)


async def test_broadcast_is_left_to_its_own_router() -> None:
    """`/admin broadcast` is not taken here, wherever its router is in the chain."""
    from aiogram.filters import CommandObject

    from bot.handlers.admin import not_others

    message = cast(Message, None)
    assert not await not_others(message, CommandObject(command="admin", args="broadcast"))
    assert not await not_others(message, CommandObject(command="admin", args="Broadcast hi"))
    assert await not_others(message, CommandObject(command="admin", args="allow 1"))
    assert await not_others(message, CommandObject(command="admin"))


async def test_metrics_carry_the_figures_at_each_scrape(bot: Harness) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from bot.web import add_routes
    from tests.test_health import get

    await seed(bot)
    app = web.Application()
    add_routes(app, bot.deps, lambda: None)
    server = TestServer(app)
    await server.start_server()
    assert server.port is not None
    try:
        status, _, text = await get(server.port, "/metrics")  # no /admin read before
    finally:
        await server.close()
    assert status == 200
    for line in (
        'sms_desk_users{state="all"} 5.0',
        'sms_desk_users{state="active"} 4.0',
        'sms_desk_tokens{service="gosms"} 1.0',
        'sms_desk_watched{what="rents"} 2.0',
        "sms_desk_outbox_backlog 2.0",
        "sms_desk_outbox_parked 1.0",
        'sms_desk_poll_failing_users{job="sms"} 1.0',
    ):
        assert line in text, line
