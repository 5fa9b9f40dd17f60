"""ACCESS=allowlist: strangers get one refusal a day and nothing else; ALLOWED_USERS (ids and
@usernames), the operators and /admin allow let people in, /admin deny keeps them out, on every
instance sharing the database at once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.app import REDIS_PREFIX, build_deps, create_bot, create_dispatcher
from bot.config import Access, Settings
from bot.db.models import AccessRefusal, AccessRule, Credential, User, utcnow
from bot.i18n import create_i18n
from bot.middlewares.access import holds_token
from tests.backends import Place
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import FakeTelegram

ADMIN, LISTED, ALICE, STRANGER, OTHER_ADMIN = 7001, 7002, 7003, 7004, 7005
REFUSAL = "Sorry, this bot is private"
UNKNOWN = "I don't know that command. /help lists them all."
START = "I'm SMS Desk"


def allowlist(settings: Settings, **more: object) -> Settings:
    update_ = {
        "access": Access.ALLOWLIST,
        "allowed_users": f"{LISTED}, @Alice",
        "admin_ids": f"{ADMIN} {OTHER_ADMIN}",
    }
    return settings.model_copy(update=update_ | more)


@contextlib.asynccontextmanager
async def instance(settings: Settings, tg: FakeTelegram, backend: Place) -> AsyncIterator[Harness]:
    """A bot process of its own (its dispatcher, engine, clients) on the shared database."""
    deps = await build_deps(settings)
    bot = create_bot(settings)
    prefix = backend.redis.prefix if backend.redis is not None else REDIS_PREFIX
    dp = create_dispatcher(deps, redis_prefix=prefix)
    try:
        yield Harness(tg, deps, bot, dp)
    finally:
        await dp.fsm.storage.close()
        await dp.fsm.events_isolation.close()
        await bot.session.close()
        await deps.close()


@pytest.fixture
async def bot(settings: Settings, tg: FakeTelegram, backend: Place) -> AsyncIterator[Harness]:
    async with instance(allowlist(settings), tg, backend) as harness:
        yield harness


async def count(harness: Harness, query: object) -> int:
    async with harness.deps.session_factory() as session:
        return int(await session.scalar(query) or 0)  # type: ignore[call-overload]


def ru(msgid: str) -> str:
    """The Russian of a text (there must be one)."""
    translated = create_i18n().gettext(msgid, locale="ru")
    assert translated != msgid, f"no Russian for {msgid!r}"
    return translated


async def test_a_stranger_is_refused_once_a_day_without_any_api_call(
    bot: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS
) -> None:
    bot.tg.user(STRANGER, language_code="en")
    await bot.send(STRANGER, "/start")
    refusal = bot.last(STRANGER)
    assert REFUSAL in refusal.text
    assert str(STRANGER) in refusal.text, "the id to send the operator"
    await bot.send(STRANGER, "/help")
    await bot.send(STRANGER, "/rents")
    await bot.send(STRANGER, f"/token gotsms {GOTSMS_TOKEN}")
    assert [m.message_id for m in bot.tg.bot_messages(STRANGER)] == [refusal.message_id]
    assert not any(GOTSMS_TOKEN in m.text for m in bot.tg.chat(STRANGER)), "token deleted"
    assert gotsms.requests == []
    assert gosms.requests == []
    assert await count(bot, select(func.count()).select_from(User)) == 0
    assert await count(bot, select(func.count()).select_from(Credential)) == 0
    # a day later: told once more, once
    async with bot.deps.session_factory() as session:
        day_ago = utcnow() - timedelta(hours=24, minutes=1)
        await session.execute(update(AccessRefusal).values(refused_at=day_ago))
        await session.commit()
    await bot.send(STRANGER, "hello")
    await bot.send(STRANGER, "hello again")
    assert len(bot.tg.bot_messages(STRANGER)) == 2
    assert REFUSAL in bot.last(STRANGER).text


async def test_a_stranger_in_russian(bot: Harness) -> None:
    bot.tg.user(STRANGER, language_code="ru")
    await bot.send(STRANGER, "/start")
    expected = ru(
        "Sorry, this bot is private: only the people its owner lets in can use it. "
        "If you should have access, send the bot's owner your Telegram ID: <code>{id}</code>"
    ).format(id=STRANGER)
    assert bot.last(STRANGER).html == expected


async def test_a_strangers_button_gets_a_short_alert(bot: Harness) -> None:
    bot.tg.user(STRANGER, language_code="en")
    await bot.send(STRANGER, "/start")
    message_id = bot.last(STRANGER).message_id
    update_ = bot.tg.callback_update(STRANGER, message_id, "menu:help")
    await bot.feed(update_)
    answer = bot.tg.callback_answers[update_["callback_query"]["id"]]
    assert answer.text == "Sorry, this bot is private."
    assert answer.show_alert
    assert len(bot.tg.bot_messages(STRANGER)) == 1


async def test_a_stranger_in_a_group_gets_nothing(bot: Harness) -> None:
    bot.tg.user(STRANGER, language_code="en")
    bot.tg.group(-4242, title="Team", members={STRANGER: "creator"}, with_bot=True)
    await bot.send(STRANGER, "/link", chat_id=-4242, chat_type="group")
    assert bot.tg.bot_messages(-4242) == []
    assert await count(bot, select(func.count()).select_from(AccessRefusal)) == 0


async def test_listed_ids_usernames_and_admins_are_let_in(bot: Harness) -> None:
    bot.tg.user(LISTED, language_code="en")
    bot.tg.user(ALICE, language_code="en", username="ALICE")  # @Alice in ALLOWED_USERS
    bot.tg.user(ADMIN, language_code="en")
    for user_id in (LISTED, ALICE, ADMIN):
        await bot.send(user_id, "/start")
        assert START in bot.last(user_id).text
    assert await count(bot, select(func.count()).select_from(User)) == 3


async def test_admin_allow_lets_the_stranger_in_on_another_instance(
    bot: Harness, settings: Settings, tg: FakeTelegram, backend: Place
) -> None:
    tg.user(ADMIN, language_code="en")
    tg.user(STRANGER, language_code="en")
    async with instance(allowlist(settings), tg, backend) as other:
        await other.send(STRANGER, "/start")  # the other instance: refused
        assert REFUSAL in tg.last_bot_message(STRANGER).text
        await bot.send(ADMIN, f"/admin allow {STRANGER}")
        assert bot.last(ADMIN).text == f"✅ {STRANGER} has access now."
        await other.send(STRANGER, "/start")
        assert START in tg.last_bot_message(STRANGER).text
        await bot.send(ADMIN, f"/admin allow {STRANGER}")
        assert bot.last(ADMIN).text == f"{STRANGER} has access already: nothing changed."
        await bot.send(ADMIN, f"/admin deny {STRANGER}")
        assert bot.last(ADMIN).text == f"⛔ {STRANGER} is denied access now."
        await other.send(STRANGER, "/help")  # let in since the last refusal: told again
        assert REFUSAL in tg.last_bot_message(STRANGER).text
        before = len(tg.bot_messages(STRANGER))
        await other.send(STRANGER, "/help")  # and then silence
        assert len(tg.bot_messages(STRANGER)) == before
        await bot.send(ADMIN, f"/admin allow {STRANGER}")
        assert bot.last(ADMIN).text == f"✅ {STRANGER} has access again: the deny is lifted."
        await other.send(STRANGER, "/help")
        assert "<b>Commands</b>" in (tg.last_bot_message(STRANGER).html or "")


async def test_admin_allow_by_username(bot: Harness) -> None:
    bot.tg.user(ADMIN, language_code="en")
    bot.tg.user(STRANGER, language_code="en", username="Newcomer")
    await bot.send(ADMIN, "/admin allow @NewComer")
    assert bot.last(ADMIN).text == "✅ @newcomer has access now."
    await bot.send(STRANGER, "/start")
    assert START in bot.last(STRANGER).text


async def test_admin_deny_wins_over_allowed_users_but_not_over_admin_ids(bot: Harness) -> None:
    bot.tg.user(ADMIN, language_code="en")
    bot.tg.user(LISTED, language_code="en")
    bot.tg.user(ALICE, language_code="en", username="alice")
    bot.tg.user(OTHER_ADMIN, language_code="en")
    await bot.send(ADMIN, f"/admin deny {LISTED}")
    assert bot.last(ADMIN).text == f"⛔ {LISTED} is denied access now."
    await bot.send(ADMIN, "/admin deny @alice")
    assert bot.last(ADMIN).text == "⛔ @alice is denied access now."
    await bot.send(ADMIN, f"/admin deny {OTHER_ADMIN}")
    assert "is an admin (ADMIN_IDS)" in bot.last(ADMIN).text
    await bot.send(ADMIN, f"/admin deny {STRANGER}")
    assert "they had none before either" in bot.last(ADMIN).text
    for user_id in (LISTED, ALICE):
        await bot.send(user_id, "/start")
        assert REFUSAL in bot.last(user_id).text
    await bot.send(OTHER_ADMIN, "/start")
    assert START in bot.last(OTHER_ADMIN).text
    rules = await count(bot, select(func.count()).select_from(AccessRule))
    assert rules == 3, "the operator's deny is not stored"


async def test_admin_rule_answers_in_russian(bot: Harness) -> None:
    bot.tg.user(ADMIN, language_code="ru")
    await bot.send(ADMIN, f"/admin allow {STRANGER}")
    expected = ru("✅ {who} has access now.").format(who=f"<code>{STRANGER}</code>")
    assert bot.last(ADMIN).html == expected


@pytest.mark.parametrize("mode", [Access.OPEN, Access.ALLOWLIST])
async def test_admin_commands_do_not_exist_for_others(
    settings: Settings, tg: FakeTelegram, backend: Place, mode: Access
) -> None:
    async with instance(allowlist(settings, access=mode), tg, backend) as bot:
        tg.user(LISTED, language_code="en")
        await bot.send(LISTED, "/frobnicate")
        unknown = bot.last(LISTED).text
        assert unknown == UNKNOWN
        for text in ("/admin", f"/admin allow {STRANGER}", f"/admin deny {ADMIN}", "/admin x"):
            before = len(tg.bot_messages(LISTED))
            await bot.send(LISTED, text)
            assert len(tg.bot_messages(LISTED)) == before + 1
            assert bot.last(LISTED).text == unknown, text
        assert await count(bot, select(func.count()).select_from(AccessRule)) == 0
        await bot.send(LISTED, "/help")
        assert "/admin" not in bot.last(LISTED).text


async def test_rules_in_open_mode_say_they_wait_for_the_allowlist(
    settings: Settings, tg: FakeTelegram, backend: Place
) -> None:
    async with instance(allowlist(settings, access=Access.OPEN), tg, backend) as bot:
        tg.user(ADMIN, language_code="en")
        await bot.send(ADMIN, "/admin deny @someone")
        assert "ACCESS=open, so anyone may use the bot" in bot.last(ADMIN).text
        tg.user(STRANGER, language_code="en")
        await bot.send(STRANGER, "/start")
        assert START in bot.last(STRANGER).text


async def test_bad_admin_arguments_show_the_usage(bot: Harness) -> None:
    bot.tg.user(ADMIN, language_code="en")
    await bot.send(ADMIN, "/admin allow")
    assert "/admin allow <ID|@username>" in bot.last(ADMIN).text
    await bot.send(ADMIN, "/admin allow not-an-id")
    assert "Give a Telegram ID or an @username" in bot.last(ADMIN).text
    assert await count(bot, select(func.count()).select_from(AccessRule)) == 0


def test_what_holds_a_token() -> None:
    assert holds_token_text(f"/token gotsms {GOTSMS_TOKEN}")
    assert holds_token_text("/token@SmsDeskBot")
    assert holds_token_text(GOTSMS_TOKEN)
    assert not holds_token_text("/tokens")
    assert not holds_token_text("hello")


def holds_token_text(text: str) -> bool:
    from aiogram.types import Chat, Message

    chat = Chat(id=1, type="private")
    return holds_token(Message(message_id=1, date=0, chat=chat, text=text))  # type: ignore[arg-type]


async def test_a_denied_user_is_no_longer_polled_until_allowed_again(bot: Harness) -> None:
    bot.tg.user(ADMIN, language_code="en")
    bot.tg.user(LISTED, language_code="en")
    await bot.send(LISTED, "/start")
    assert START in bot.last(LISTED).text
    await bot.send(ADMIN, f"/admin deny {LISTED}")
    async with bot.deps.session_factory() as session:
        user = await session.get(User, LISTED)
        assert user is not None
        assert not user.is_active, "no poll, no push for a denied user"
    await bot.send(ADMIN, f"/admin allow {LISTED}")
    await bot.send(LISTED, "/start")
    assert START in bot.last(LISTED).text
    async with bot.deps.session_factory() as session:
        user = await session.get(User, LISTED)
        assert user is not None
        assert user.is_active, "their /start brings them back"
