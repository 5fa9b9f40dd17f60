"""The database under concurrent updates (issue 6, item 6): no update fails, none waits long.

Against a file SQLite database, as in production without PostgreSQL: SQLite has one writer at a
time, so what matters is how many writes an update makes and how long it holds the write lock.
The bursts run on PostgreSQL + Redis too; the costs of dialogs kept in SQLite's table and its
write lock are SQLite's own (sqlite_only).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from bot.db import engine as engine_module
from bot.db.engine import lock_for_writing
from bot.db.fsm import FsmRecord
from bot.db.models import Confirmation, Service, User, utcnow
from bot.db.repo import CredentialRepo
from tests.conftest import GOTSMS_TOKEN, Harness

BASE = 3_000_000


class Statements:
    """The SQL statements the bot runs, by first word and table (for fsm_state)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(" ".join(statement.split()))

    def fsm(self) -> Counter[str]:
        return Counter(s.split()[0] for s in self.seen if "fsm_state" in s)

    def writes(self) -> list[str]:
        words = ("INSERT", "UPDATE", "DELETE", "SAVEPOINT", "BEGIN")
        return [s for s in self.seen if s.startswith(words)]


@pytest.fixture
def statements(harness: Harness) -> Iterator[Statements]:
    seen = Statements()
    engine = harness.deps.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    yield seen
    event.remove(engine, "before_cursor_execute", seen)


async def test_many_concurrent_commands_that_write_all_answer(harness: Harness) -> None:
    """150 updates at once: /start, a dialog begun (/token gotsms), a dialog cancelled and an
    open confirmation closed (/cancel). Every one answers, no ERROR is logged, and the dialogs
    end as they should."""
    tg = harness.tg
    starters = [BASE + i for i in range(50)]
    askers = [BASE + 100 + i for i in range(50)]
    cancellers = [BASE + 200 + i for i in range(50)]
    for uid in starters + askers + cancellers:
        tg.user(uid, first_name=f"U{uid}", language_code="en")
    for uid in cancellers:  # each in a dialog, with a question open
        await harness.send(uid, "/token gosms")
    async with harness.deps.session_factory() as session:
        for uid in cancellers:
            session.add(Confirmation(id=f"c{uid}", user_id=uid, action="logout", payload="{}"))
        await session.commit()
    updates = [tg.message_update(uid, "/start") for uid in starters]
    updates += [tg.message_update(uid, "/token gotsms") for uid in askers]
    updates += [tg.message_update(uid, "/cancel") for uid in cancellers]

    await asyncio.gather(*(harness.feed(update) for update in updates))

    for uid in starters:
        assert "I'm SMS Desk" in harness.last(uid).text
    for uid in askers:
        assert "GotSMS" in harness.last(uid).text
        assert "token" in harness.last(uid).text
    for uid in cancellers:
        assert harness.last(uid).text.startswith("Cancelled.")
    in_dialog = set()
    for uid in starters + askers + cancellers:
        key = StorageKey(bot_id=harness.bot.id, chat_id=uid, user_id=uid)
        if await harness.dp.storage.get_state(key) or await harness.dp.storage.get_data(key):
            in_dialog.add(uid)
    assert in_dialog == set(askers), "only the new dialogs"
    async with harness.deps.session_factory() as session:
        still_open = await session.scalar(
            select(func.count()).select_from(Confirmation).where(Confirmation.consumed_at.is_(None))
        )
    assert still_open == 0


@pytest.mark.sqlite_only
async def test_start_without_a_dialog_reads_the_dialog_once_and_writes_nothing(
    harness: Harness, statements: Statements
) -> None:
    uid = BASE + 1
    harness.tg.user(uid, language_code="en")
    await harness.send(uid, "/help")  # the user row exists: what remains is the dialog's cost
    statements.seen.clear()
    await harness.send(uid, "/start")
    assert "I'm SMS Desk" in harness.last(uid).text
    assert statements.fsm() == Counter({"SELECT": 1})
    assert statements.writes() == [], "a /start of a known user with no dialog writes nothing"
    reads = [s for s in statements.seen if s.startswith("SELECT")]
    assert len(reads) == 1, "the user, their tokens and their dialog: one query"


@pytest.mark.sqlite_only
async def test_a_dialog_costs_one_read_per_update_and_one_statement_per_change(
    harness: Harness, statements: Statements
) -> None:
    uid = BASE + 2
    harness.tg.user(uid, language_code="en")
    await harness.send(uid, "/help")
    statements.seen.clear()
    await harness.send(uid, "/token gotsms")  # state and data set: one row inserted, then updated
    assert "token" in harness.last(uid).text
    assert statements.fsm() == Counter({"SELECT": 1, "INSERT": 1, "UPDATE": 1})
    statements.seen.clear()
    await harness.send(uid, "/start")  # clears the dialog: state, then data (the row goes)
    assert statements.fsm() == Counter({"SELECT": 1, "UPDATE": 1, "DELETE": 1})
    statements.seen.clear()
    await harness.send(uid, "/start")
    assert statements.fsm() == Counter({"SELECT": 1})
    async with harness.deps.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(FsmRecord)) == 0


async def test_a_dialog_begun_while_the_next_message_waits_is_seen_by_that_message(
    harness: Harness,
) -> None:
    """The dialog is read with the user before the update waits for the dialog's lock; when
    the update before it changes the dialog meanwhile, the waiting one reads it again."""
    uid = BASE + 4
    harness.tg.user(uid, language_code="en")
    await harness.send(uid, "/help")
    ask = harness.tg.message_update(uid, "/token gotsms")
    answer = harness.tg.message_update(uid, GOTSMS_TOKEN)
    await asyncio.gather(harness.feed(ask), harness.feed(answer))
    assert "GotSMS is connected" in harness.last(uid).text
    async with harness.deps.session_factory() as session:
        assert await CredentialRepo(session, harness.deps.cipher).services(uid) == {Service.GOTSMS}


async def test_no_filter_runs_in_a_thread(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiogram runs a plain-function filter (F..., a State) through asyncio.to_thread; every
    filter of the bot runs on the event loop instead."""
    dp = harness.dp
    sync = [
        f
        for router in dp.chain_tail
        for observer in router.observers.values()
        for handler in [*observer.handlers, observer._handler]
        for f in handler.filters or ()
        if isinstance(f, FilterObject) and not f.awaitable
    ]
    assert sync == []
    hops = []

    async def to_thread(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return func(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    uid = BASE + 3
    harness.tg.user(uid, language_code="en")
    for command in ("/start", "/help", "/nonsense", "some text", "/token gotsms", "/cancel"):
        await harness.send(uid, command)
    group = -100_555
    harness.tg.register_chat(group, chat_type="group", title="Team")
    await harness.send(uid, "/start", chat_id=group, chat_type="group")
    assert "private chat" in harness.last(group).text
    assert hops == []


@pytest.mark.sqlite_only
async def test_a_read_then_write_transaction_waits_its_turn_with_the_lock_taken_first(
    harness: Harness,
) -> None:
    """SQLite fails at once ("database is locked", no busy wait) when a transaction that a
    savepoint opened reads, another connection commits, and it then writes. lock_for_writing
    first makes it wait for the other writer instead."""
    factory = harness.deps.session_factory

    async def other_writer(began: asyncio.Event) -> None:
        began.set()
        async with factory() as session:
            await session.execute(text("UPDATE users SET is_active = is_active"))
            await session.execute(
                text("INSERT INTO fsm_state (key, data, updated_at) VALUES ('x', '{}', :t)"),
                {"t": utcnow()},
            )
            await session.commit()

    async def read_then_write(lock_first: bool) -> None:
        async with factory() as session:
            if lock_first:
                await lock_for_writing(session)
            async with session.begin_nested():
                await session.scalar(select(func.count()).select_from(FsmRecord))
                began = asyncio.Event()
                writer = asyncio.create_task(other_writer(began))
                try:
                    await began.wait()
                    await asyncio.sleep(0.2)  # without the lock, the other one commits now
                    await session.execute(text("DELETE FROM fsm_state WHERE key = 'x'"))
                finally:
                    await session.commit()
                    await writer

    with pytest.raises(OperationalError, match="database is locked"):
        await read_then_write(lock_first=False)
    async with factory() as session:
        await session.execute(text("DELETE FROM fsm_state"))
        await session.commit()
    await read_then_write(lock_first=True)
    async with factory() as session:  # the other writer went second: its row is there
        assert await session.scalar(select(func.count()).select_from(FsmRecord)) == 1


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's wait for the write lock cut from 10 s to 50 ms: the lock waits that a burst of
    a thousand new users made exceed 10 s, at the scale of a test."""
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 50)


async def test_a_burst_of_new_users_all_answered_and_stored(
    short_busy_timeout: None, harness: Harness
) -> None:
    """300 users the bot has never seen send /start at once: each is stored (one writer at a
    time on SQLite) and each gets the greeting; no error is logged."""
    users = [BASE + 1000 + i for i in range(300)]
    for uid in users:
        harness.tg.user(uid, first_name=f"U{uid}", language_code="en")
    updates = [harness.tg.message_update(uid, "/start") for uid in users]

    await asyncio.gather(*(harness.feed(update) for update in updates))

    for uid in users:
        assert "I'm SMS Desk" in harness.last(uid).text
    async with harness.deps.session_factory() as session:
        stored = set((await session.scalars(select(User.id).where(User.id.in_(users)))).all())
    assert stored == set(users)


@pytest.mark.sqlite_only
async def test_a_new_user_waits_out_a_write_lock_held_past_the_busy_timeout(
    short_busy_timeout: None, harness: Harness
) -> None:
    """Another connection holds SQLite's write lock six times the busy timeout: the new user's
    INSERT tries again until it gets through; the user is stored and answered."""
    uid = BASE + 2000
    harness.tg.user(uid, language_code="en")
    async with harness.deps.engine.connect() as holder:
        await lock_for_writing(holder)
        start = asyncio.create_task(harness.send(uid, "/start"))
        await asyncio.sleep(0.3)
        await holder.rollback()
    await start
    assert "I'm SMS Desk" in harness.last(uid).text
    async with harness.deps.session_factory() as session:
        assert await session.get(User, uid) is not None
