"""/forget through the real dispatcher: confirmed once, then no row of the user in any table."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from aiogram.fsm.storage.base import DEFAULT_DESTINY, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from sqlalchemy import Column, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands import COMMANDS
from bot.db.fsm import FsmRecord, storage_key
from bot.db.models import (
    AccessRefusal,
    AccessRule,
    Base,
    Broadcast,
    BroadcastState,
    Campaign,
    CampaignRow,
    Confirmation,
    Device,
    GroupOffer,
    NotificationSettings,
    RentWatch,
    SentSms,
    ServicePick,
    User,
    utcnow,
)
from bot.db.outbox import OutboxItem
from bot.handlers.forget import DESTINIES
from bot.services.forget import NOBODY, is_dialog_of
from tests.backends import Backend
from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, Harness

EN, RU, OTHER = 3001, 3002, 3003
GROUP = -100555
# columns that name a user (or the user's own chat); `fsm_state.key` is parsed apart
USER_COLUMNS = {"user_id", "admin_id", "added_by", "chat_id"}
YES = {"en": "Yes, delete everything", "ru": "Да, удалить всё"}


def user_columns(table: Table) -> list[Column[Any]]:
    if table.name == "users":
        return [table.c.id, table.c.chat_id]
    return [column for column in table.columns if column.name in USER_COLUMNS]


async def rows_of(session: AsyncSession, user_id: int) -> dict[str, int]:
    """Per table, the rows holding `user_id` in a column that names a user."""
    found: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        for column in user_columns(table):
            count = await session.scalar(
                select(func.count()).select_from(table).where(column == user_id)
            )
            if count:
                found[f"{table.name}.{column.name}"] = int(count)
    keys = (await session.scalars(select(FsmRecord.key))).all()
    if dialogs := [key for key in keys if is_dialog_of(key, user_id)]:
        found["fsm_state.key"] = len(dialogs)
    return found


async def seed(harness: Harness, user_id: int) -> None:
    """A row of the user in every table that names users, as a month of use leaves them."""
    await harness.send(user_id, "/start")
    await harness.send(user_id, f"/token gotsms {GOTSMS_TOKEN}")  # credentials, poll_state
    await harness.send(user_id, f"/token gosms {GOSMS_TOKEN}")
    await harness.send(user_id, "/notify")  # notification_settings
    now = utcnow()
    async with harness.deps.session_factory() as session:
        if await session.get(NotificationSettings, user_id) is None:
            session.add(NotificationSettings(user_id=user_id))
        campaign = Campaign(user_id=user_id, state="done", chat_id=user_id, message_id=1)
        session.add(campaign)
        await session.flush()
        session.add_all(
            [
                CampaignRow(campaign_id=campaign.id, line=1, phone="+79990001122", text="hi"),
                Device(user_id=user_id, device_id=f"dev-{user_id}", name="Poco"),
                SentSms(
                    user_id=user_id,
                    sms_id=f"sms-{user_id}",
                    chat_id=user_id,
                    message_id=2,
                    phone="+79990001122",
                    text="hello",
                ),
                RentWatch(rent_id=f"rent-{user_id}", user_id=user_id, group_chat_id=GROUP),
                GroupOffer(chat_id=GROUP, user_id=user_id, title="Team"),
                ServicePick(user_id=user_id, service_id="tg", name="Telegram"),
                OutboxItem(user_id=user_id, kind="code", dedupe_key="m1", sent_at=now),
                OutboxItem(user_id=user_id, kind="code", dedupe_key="m2"),  # queued
                OutboxItem(user_id=user_id, kind="group_code", dedupe_key="m1", chat_id=GROUP),
                Confirmation(
                    id=f"used-{user_id}", user_id=user_id, action="logout", consumed_at=now
                ),
                AccessRefusal(user_id=user_id, refused_at=now - timedelta(days=2)),
                AccessRule(subject=f"@friend{user_id}", allowed=True, added_by=user_id),
                Broadcast(admin_id=user_id, text="news", state=BroadcastState.DONE),
                Broadcast(admin_id=user_id, text="draft", state=BroadcastState.DRAFT),
                FsmRecord(key=f"{harness.bot.id}:{GROUP}::{user_id}::default", state="x"),
            ]
        )
        await session.commit()


def dialog(harness: Harness, user_id: int, destiny: str = DEFAULT_DESTINY) -> StorageKey:
    return StorageKey(bot_id=harness.bot.id, chat_id=user_id, user_id=user_id, destiny=destiny)


async def forget(harness: Harness, user_id: int, yes: str) -> None:
    await harness.send(user_id, "/forget")
    await harness.press(user_id, yes)


async def test_forget_leaves_no_row_of_the_user_in_any_table(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    harness.tg.user(OTHER, language_code="en")
    await seed(harness, EN)
    await seed(harness, OTHER)
    storage = harness.dp.fsm.storage
    await storage.set_data(dialog(harness, EN, "gotsms"), {"searches": {"ab12cd34": "tele"}})
    await harness.send(EN, "/token gotsms")  # a dialog in progress: the token is awaited
    assert await storage.get_state(dialog(harness, EN)) is not None
    async with harness.deps.session_factory() as session:
        before, others = await rows_of(session, EN), await rows_of(session, OTHER)
    named = {name.partition(".")[0] for name in before}
    wanted = {t.name for t in Base.metadata.sorted_tables if user_columns(t)} - {"job_runs"}
    assert wanted <= named, "a row of the user in every table that names users"

    await harness.send(EN, "/forget")
    question = harness.last(EN)
    assert question.text.startswith("Delete everything I store about you?")
    async with harness.deps.session_factory() as session:
        assert (await rows_of(session, EN)).keys() == before.keys()
    await harness.press(EN, "Yes, delete everything")

    done = harness.tg.message(EN, question.message_id).text
    assert done.startswith("Done: everything I stored about you is deleted")
    async with harness.deps.session_factory() as session:
        assert await rows_of(session, EN) == {}, "the answer recreated nothing either"
        assert await rows_of(session, OTHER) == others, "another user's rows are untouched"
        orphans = select(func.count()).select_from(CampaignRow)
        assert await session.scalar(orphans) == 1, "only the other user's campaign row is left"
        rules = (await session.scalars(select(AccessRule.added_by))).all()
        assert sorted(rules) == sorted([NOBODY, OTHER]), "the operator's rules stay, nameless"
        kept = (await session.scalars(select(Broadcast.admin_id))).all()
        assert sorted(kept) == sorted([NOBODY, OTHER, OTHER]), "a sent announcement stays"
    for destiny in DESTINIES:
        assert await storage.get_state(dialog(harness, EN, destiny)) is None
        assert await storage.get_data(dialog(harness, EN, destiny)) == {}
    await harness.send(EN, GOTSMS_TOKEN)  # in the token dialog, this would connect GotSMS
    assert "GotSMS is connected" not in harness.last(EN).text, "the token dialog is gone"
    async with harness.deps.session_factory() as session:
        assert await rows_of(session, EN) == {"users.id": 1, "users.chat_id": 1}


async def test_start_after_forget_is_a_new_user_in_russian(harness: Harness) -> None:
    assert harness.deps.i18n.gettext(YES["en"], locale="ru") != YES["en"], "/forget in Russian"
    harness.tg.user(RU, language_code="ru")
    await seed(harness, RU)
    await harness.send(RU, "/lang")
    await harness.press(RU, "Русский")
    async with harness.deps.session_factory() as session:
        first = await session.get(User, RU)
        assert first is not None
        assert first.language == "ru"
        created = first.created_at
    await harness.send(RU, "/forget")
    assert harness.last(RU).text.startswith("Удалить всё, что я храню о вас?")
    await harness.press(RU, YES["ru"])
    assert harness.last(RU).text.startswith("Готово: всё, что я хранил о вас, удалено")
    await harness.send(RU, "/start")
    assert any("Подключить токен" in b for b in harness.last(RU).button_texts()), "no token"
    async with harness.deps.session_factory() as session:
        fresh = await session.get(User, RU)
        assert fresh is not None
        assert fresh.created_at > created
        assert fresh.language is None, "fresh defaults: the language follows Telegram again"
        found = await rows_of(session, RU)
    assert set(found) == {"users.id", "users.chat_id"}, "a new user: nothing but the user row"


async def test_cancel_deletes_nothing(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await seed(harness, EN)
    async with harness.deps.session_factory() as session:
        before = await rows_of(session, EN)
    await harness.send(EN, "/forget")
    answer = await harness.press(EN, "Cancel")
    assert answer.text == "Cancelled"
    assert harness.last(EN).text == "Nothing was deleted."
    async with harness.deps.session_factory() as session:
        after = await rows_of(session, EN)
    assert after == before | {"confirmations.user_id": before["confirmations.user_id"] + 1}


@pytest.mark.parametrize("concurrent", [False, True])
async def test_the_confirmation_works_once(harness: Harness, concurrent: bool) -> None:
    harness.tg.user(EN, language_code="en")
    await seed(harness, EN)
    await harness.send(EN, "/forget")
    presses = [harness.press_update(EN, "Yes, delete everything") for _ in range(2)]
    if concurrent:
        await asyncio.gather(*(harness.feed(update) for update in presses))
    else:
        for update in presses:
            await harness.feed(update)
    answers = [harness.tg.callback_answers[u["callback_query"]["id"]] for u in presses]
    assert all(a.answered for a in answers)
    refused = [a for a in answers if a.text and "already used" in a.text]
    assert len(refused) == 1
    done = [m for m in harness.tg.bot_messages(EN) if m.text.startswith("Done: everything")]
    assert len(done) == 1
    async with harness.deps.session_factory() as session:
        left = await rows_of(session, EN)
    # the stale press is an update like any other: its sender is a user again, with nothing
    assert set(left) <= {"users.id", "users.chat_id"}


async def test_forget_is_in_the_command_list_and_private_only(harness: Harness) -> None:
    assert "forget" in [name for name, _ in COMMANDS]
    harness.tg.user(EN, language_code="en")
    await seed(harness, EN)
    await harness.send(EN, "/help")
    assert "/forget" in harness.last(EN).text
    harness.tg.group(GROUP, title="Team", members=[EN])
    await harness.send(EN, "/forget", chat_id=GROUP, chat_type="group")
    assert not any("Delete everything" in m.text for m in harness.tg.bot_messages(GROUP))
    async with harness.deps.session_factory() as session:
        assert await session.get(User, EN) is not None


def test_a_dialog_key_names_its_user() -> None:
    key = StorageKey(bot_id=1, chat_id=EN, user_id=EN, destiny="gotsms")
    assert is_dialog_of(storage_key(key), EN)
    assert not is_dialog_of(storage_key(key), OTHER)
    group = StorageKey(bot_id=1, chat_id=GROUP, user_id=OTHER)
    assert is_dialog_of(storage_key(group), OTHER)
    assert not is_dialog_of(storage_key(group), int(str(OTHER)[:3]))


@pytest.mark.parametrize("backend", [Backend.SQLITE_REDIS, Backend.POSTGRES], indirect=True)
async def test_a_dialog_left_in_redis_expires_after_the_retention_days(harness: Harness) -> None:
    """(Dialogs in the database are pruned by the daily retention: test_retention.)"""
    storage = harness.dp.fsm.storage
    assert isinstance(storage, RedisStorage)
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/token gotsms")
    key = storage.key_builder.build(dialog(harness, EN), "state")
    left = await storage.redis.ttl(key)
    days = harness.deps.settings.retention_days
    assert timedelta(days=days) - timedelta(minutes=1) < timedelta(seconds=left)
    assert timedelta(seconds=left) <= timedelta(days=days)
