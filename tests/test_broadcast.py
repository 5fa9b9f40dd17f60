"""/admin broadcast: admins only, the dialog, one confirmation, every active user once (also
across a restart in the middle), blocked users skipped and marked, the progress card."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.config import Settings
from bot.db.models import Broadcast, BroadcastState, User, utcnow
from bot.db.outbox import OutboxItem
from bot.db.repo import UserRepo
from bot.i18n import create_i18n
from bot.keyboards.callbacks import ConfirmCb
from bot.poller.broadcast_pushes import card_text
from bot.poller.broadcasts import KIND, BroadcastTicker, queue_batch
from bot.poller.sender import OutboxSender
from tests.conftest import Harness
from tests.fakes.telegram import FakeTelegram
from tests.test_restart import WAIT, killed, started

ADMIN, U1, U2, GONE, OFF, STRANGER = 7001, 7002, 7003, 7004, 7005, 7006
TEXT = 'Maintenance tonight: <b>22:00–23:00</b> UTC &amp; <a href="https://example.com">details</a>'
SEEN = "Maintenance tonight: 22:00–23:00 UTC & details"
UNKNOWN = "I don't know that command. /help lists them all."


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_ids": f"{ADMIN}, 7999"})


async def add_user(harness: Harness, user_id: int, language: str = "en") -> None:
    harness.tg.user(user_id, language_code=language)
    harness.tg.register_chat(user_id)
    async with harness.deps.session_factory() as session:
        await UserRepo(session).upsert_seen(user_id, user_id, language)
        await session.commit()


async def set_active(harness: Harness, user_id: int, active: bool) -> None:
    async with harness.deps.session_factory() as session:
        await UserRepo(session).set_active(user_id, active)
        await session.commit()


async def users(harness: Harness, language: str = "en") -> None:
    """The admin, two active users, one who will block the bot, one inactive."""
    for user_id in (ADMIN, U1, U2, GONE, OFF):
        await add_user(harness, user_id, language)
    await set_active(harness, OFF, False)


async def ask(harness: Harness, text: str = TEXT, user_id: int = ADMIN) -> None:
    await harness.send(user_id, "/admin broadcast")
    assert "Send me the text of the announcement" in harness.last(user_id).text
    await harness.send(user_id, text)


def sender(harness: Harness) -> OutboxSender:
    return OutboxSender(harness.bot, harness.deps.session_factory, harness.deps.i18n)


def ticker(harness: Harness, **kwargs: Any) -> BroadcastTicker:
    return BroadcastTicker(harness.deps.session_factory, card_every=0.0, **kwargs)


async def pending(harness: Harness) -> int:
    async with harness.deps.session_factory() as session:
        query = select(func.count(OutboxItem.id)).where(
            OutboxItem.sent_at.is_(None), OutboxItem.dropped.is_(None)
        )
        return int(await session.scalar(query) or 0)


async def deliver(harness: Harness, out: OutboxSender | None = None) -> None:
    """Sends everything queued (a chat gets one message a second)."""
    out = out or sender(harness)
    for _ in range(20):
        if not await pending(harness):
            return
        await out.drain_once()
    raise AssertionError("the outbox did not drain")


async def the_broadcast(harness: Harness) -> Broadcast:
    async with harness.deps.session_factory() as session:
        rows = (await session.scalars(select(Broadcast))).all()
    assert len(rows) == 1, rows
    return rows[0]


async def outbox_rows(harness: Harness) -> list[OutboxItem]:
    async with harness.deps.session_factory() as session:
        query = select(OutboxItem).where(OutboxItem.kind == KIND).order_by(OutboxItem.user_id)
        return list((await session.scalars(query)).all())


def received(harness: Harness, user_id: int) -> list[str]:
    """The announcements the user got (the admin's preview not counted)."""
    messages = [m.text for m in harness.tg.bot_messages(user_id) if m.text == SEEN]
    return messages[1:] if user_id == ADMIN else messages


async def hold_back(harness: Harness, user_id: int) -> None:
    """The user's announcement waits (as after Telegram's 429): it stays pending for now."""
    async with harness.deps.session_factory() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.user_id == user_id, OutboxItem.kind == KIND)
            .values(not_before=utcnow() + timedelta(hours=1))
        )
        await session.commit()


async def card_of(harness: Harness, message_id: int, out: OutboxSender, line: str) -> str:
    """The card once its second line reads `line` (its edit waits for the chat's pace)."""
    for _ in range(10):
        card = next(m for m in harness.tg.bot_messages(ADMIN) if m.message_id == message_id)
        if card.text.splitlines()[1] == line:
            return card.text
        await out.drain_once()
        await asyncio.sleep(0.2)
    raise AssertionError(f"the card still reads {card.text!r}")


async def test_for_non_admins_it_is_an_unknown_command(harness: Harness) -> None:
    await add_user(harness, STRANGER)
    await harness.send(STRANGER, "/nosuchcommand")
    assert harness.last(STRANGER).text == UNKNOWN
    for text in ("/admin broadcast", "/admin", "/admin BROADCAST now"):
        await harness.send(STRANGER, text)
        assert harness.last(STRANGER).text == UNKNOWN, text
    await harness.send(STRANGER, TEXT)  # no dialog was started
    assert "didn't get that" in harness.last(STRANGER).text
    forged = ConfirmCb(action="broadcast", id="1", ok=True).pack()
    message_id = harness.last(STRANGER).message_id
    await harness.feed(harness.tg.callback_update(STRANGER, message_id, forged))
    answer = list(harness.tg.callback_answers.values())[-1]
    assert answer.text == "This button is out of date. Send /start for a fresh menu."
    async with harness.deps.session_factory() as session:
        assert await session.scalar(select(func.count(Broadcast.id))) == 0


async def test_the_dialog_previews_counts_and_checks_the_html(harness: Harness) -> None:
    await users(harness)
    await harness.send(ADMIN, "/admin broadcast")
    assert "Send me the text of the announcement" in harness.last(ADMIN).text
    await harness.feed(harness.tg.content_update(ADMIN, "photo"))
    assert harness.last(ADMIN).text == "Send the announcement as text, or /cancel."
    await harness.send(ADMIN, "Tonight <b>at 22:00")  # an unclosed tag
    assert "Telegram cannot show this text: can't parse entities" in harness.last(ADMIN).text
    await harness.feed({**harness.tg.message_update(ADMIN, "x" * 4097)})
    assert "That is 4097 characters" in harness.last(ADMIN).text
    await harness.send(ADMIN, TEXT)
    preview, count = harness.tg.bot_messages(ADMIN)[-2:]
    assert preview.text == SEEN
    assert preview.html == TEXT
    assert harness.tg.bot_messages(ADMIN)[-3].text == "This is how users will see it:"
    assert count.text == "It goes to 4 active users. Send it?"  # the admin too; not OFF
    assert count.button_texts() == ["📢 Send to everyone", "Cancel"]
    broadcast = await the_broadcast(harness)
    assert broadcast.state == BroadcastState.DRAFT
    assert broadcast.text == TEXT
    assert await outbox_rows(harness) == []
    await harness.send(ADMIN, "more text")  # the dialog is over
    assert "didn't get that" in harness.last(ADMIN).text


async def test_formatting_made_in_telegram_is_kept(harness: Harness) -> None:
    await users(harness)
    await harness.send(ADMIN, "/admin broadcast")
    update = harness.tg.message_update(ADMIN, "New prices <soon> & more")
    update["message"]["entities"] = [{"type": "bold", "offset": 4, "length": 6}]
    await harness.feed(update)
    preview = harness.tg.bot_messages(ADMIN)[-2]
    assert preview.html == "New <b>prices</b> &lt;soon&gt; &amp; more"
    assert preview.text == "New prices <soon> & more"


async def test_cancel_leaves_the_dialog_and_the_no_button_sends_nothing(
    harness: Harness,
) -> None:
    await users(harness)
    await harness.send(ADMIN, "/admin broadcast")
    await harness.send(ADMIN, "/cancel")
    assert harness.last(ADMIN).text.startswith("Cancelled")
    await ask(harness)
    answer = await harness.press(ADMIN, "Cancel")
    assert answer.text == "Cancelled"
    assert harness.last(ADMIN).text == "The announcement was not sent."
    await ticker(harness).tick()
    assert (await the_broadcast(harness)).state == BroadcastState.DRAFT
    assert await outbox_rows(harness) == []


async def test_a_double_press_confirms_once(harness: Harness) -> None:
    await users(harness)
    await ask(harness)
    first = harness.press_update(ADMIN, "Send to everyone")
    second = harness.press_update(ADMIN, "Send to everyone")
    await asyncio.gather(harness.feed(first), harness.feed(second))
    answers = [harness.tg.callback_answers[u["callback_query"]["id"]] for u in (first, second)]
    assert sorted(bool(a.show_alert) for a in answers) == [False, True]
    assert any("already used" in (a.text or "") for a in answers)
    broadcast = await the_broadcast(harness)
    assert broadcast.state == BroadcastState.SENDING
    assert broadcast.total == 4
    card = harness.last(ADMIN)
    assert (broadcast.chat_id, broadcast.message_id) == (ADMIN, card.message_id)
    assert card.text.splitlines() == [
        f"📢 Announcement #{broadcast.id}",
        "⏳ Sending: 0 of 4 users, 0 blocked the bot.",
    ]
    assert card.buttons == []
    await ticker(harness).tick()
    await ticker(harness).tick()
    assert len(await outbox_rows(harness)) == 4


async def test_every_active_user_gets_it_once_and_blocked_ones_are_marked(
    harness: Harness,
) -> None:
    await users(harness)
    await ask(harness)
    await harness.press(ADMIN, "Send to everyone")
    card_id = harness.last(ADMIN).message_id
    await ticker(harness).tick()
    harness.tg.block(GONE)  # after the count, before the send
    await deliver(harness)
    for user_id in (ADMIN, U1, U2):
        assert received(harness, user_id) == [SEEN], user_id
    for user_id in (U1, U2):
        assert harness.tg.bot_messages(user_id)[-1].html == TEXT
    assert received(harness, GONE) == []
    assert received(harness, OFF) == []
    async with harness.deps.session_factory() as session:
        gone = await session.get(User, GONE)
        assert gone is not None
        assert not gone.is_active
    rows = {row.user_id: row for row in await outbox_rows(harness)}
    assert set(rows) == {ADMIN, U1, U2, GONE}
    assert rows[GONE].dropped == "blocked"
    assert rows[GONE].sent_at is None
    await ticker(harness).tick()  # all settled: done
    await deliver(harness)
    broadcast = await the_broadcast(harness)
    assert broadcast.state == BroadcastState.DONE
    assert broadcast.finished_at is not None
    card = next(m for m in harness.tg.bot_messages(ADMIN) if m.message_id == card_id)
    assert card.text.splitlines()[1] == "✅ Done: sent to 3 of 4 users, 1 blocked the bot."
    assert card.edited
    await ticker(harness).tick()  # nothing more, ever
    assert await pending(harness) == 0
    assert len(await outbox_rows(harness)) == 4


async def test_the_progress_card_moves_by_itself(harness: Harness) -> None:
    await users(harness)
    await ask(harness)
    await harness.press(ADMIN, "Send to everyone")
    card_id = harness.last(ADMIN).message_id
    follower = ticker(harness)
    await follower.tick()  # queued; the card was just shown
    await hold_back(harness, U2)
    harness.tg.block(GONE)
    out = sender(harness)
    await out.drain_once()  # the admin's own, U1's; GONE blocked; U2's waits
    await follower.tick()
    text = await card_of(harness, card_id, out, "⏳ Sending: 2 of 4 users, 1 blocked the bot.")
    assert "skipped until they /start" in text
    assert (await the_broadcast(harness)).state == BroadcastState.SENDING
    async with harness.deps.session_factory() as session:  # U2's wait is over
        await session.execute(update(OutboxItem).values(not_before=utcnow()))
        await session.commit()
    await deliver(harness, out)
    await follower.tick()
    await card_of(harness, card_id, out, "✅ Done: sent to 3 of 4 users, 1 blocked the bot.")


async def test_a_card_is_refreshed_at_most_every_few_seconds(harness: Harness) -> None:
    await users(harness)
    await ask(harness)
    await harness.press(ADMIN, "Send to everyone")
    follower = BroadcastTicker(harness.deps.session_factory, card_every=60.0)
    await follower.tick()
    await hold_back(harness, U2)
    await sender(harness).drain_once()
    await follower.tick()
    await follower.tick()
    async with harness.deps.session_factory() as session:
        cards = await session.scalar(
            select(func.count(OutboxItem.id)).where(OutboxItem.kind == "broadcast_card")
        )
    assert cards == 0


async def test_a_restart_in_the_middle_reaches_each_active_user_once(harness: Harness) -> None:
    await users(harness)
    extra = list(range(7100, 7107))
    for user_id in extra:
        await add_user(harness, user_id)
    await ask(harness)
    await harness.press(ADMIN, "Send to everyone")
    await ticker(harness, window=3).tick()  # the first wave, then killed
    assert len(await outbox_rows(harness)) == 3
    assert (await the_broadcast(harness)).started_at is None
    await sender(harness).drain_once()  # some went out before the kill

    fresh = ticker(harness, window=3)  # a new process on the same database
    other = ticker(harness, window=3)  # and another instance at the same time
    for _ in range(10):
        await asyncio.gather(fresh.tick(), other.tick())
        await sender(harness).drain_once()
        if (await the_broadcast(harness)).state == BroadcastState.DONE:
            break
    await deliver(harness)
    for user_id in (ADMIN, U1, U2, GONE, *extra):
        assert received(harness, user_id) == [SEEN], user_id
    assert received(harness, OFF) == []
    assert len(await outbox_rows(harness)) == 11
    broadcast = await the_broadcast(harness)
    assert broadcast.state == BroadcastState.DONE
    assert broadcast.total == 11


async def test_a_wave_keeps_few_rows_pending_and_adds_none_twice(harness: Harness) -> None:
    await users(harness)
    for user_id in range(7100, 7107):
        await add_user(harness, user_id)
    await ask(harness)
    await harness.press(ADMIN, "Send to everyone")
    broadcast = await the_broadcast(harness)
    follower = ticker(harness, window=4)
    assert not await follower.queue_wave(broadcast.id)
    assert not await follower.queue_wave(broadcast.id)  # four are pending: no room
    rows = await outbox_rows(harness)
    assert sorted(r.user_id for r in rows) == [ADMIN, U1, U2, GONE]
    assert all(r.payload == f'{{"broadcast_id": {broadcast.id}}}' for r in rows)
    async with harness.deps.session_factory() as session:  # a batch repeated after a crash
        assert await queue_batch(session, broadcast.id, 0, 100) == 11
        await session.commit()
    assert len(await outbox_rows(harness)) == 11
    assert await ticker(harness, window=100).queue_wave(broadcast.id)
    assert len(await outbox_rows(harness)) == 11


async def test_in_russian(harness: Harness) -> None:
    await users(harness, "ru")
    await harness.send(ADMIN, "/admin broadcast")
    assert "Пришлите текст объявления" in harness.last(ADMIN).text
    await harness.feed(harness.tg.content_update(ADMIN, "sticker"))
    assert harness.last(ADMIN).text == "Пришлите объявление текстом или отправьте /cancel."
    await harness.send(ADMIN, TEXT)
    assert harness.tg.bot_messages(ADMIN)[-2].html == TEXT
    assert harness.last(ADMIN).text == "Его получат 4 активных пользователя. Отправить?"
    await harness.press(ADMIN, "Отправить всем")
    card_id = harness.last(ADMIN).message_id
    await ticker(harness).tick()
    harness.tg.block(GONE)
    await deliver(harness)
    await ticker(harness).tick()
    await deliver(harness)
    card = next(m for m in harness.tg.bot_messages(ADMIN) if m.message_id == card_id)
    assert card.text.splitlines() == [
        f"📢 Объявление №{(await the_broadcast(harness)).id}",
        "✅ Готово: отправлено 3 из 4 пользователей, заблокировали бота: 1.",
        "Пользователи, заблокировавшие бота, пропускаются, пока снова не отправят /start.",
    ]


async def test_sigkill_in_the_middle_of_a_broadcast_reaches_each_active_user_once(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram
) -> None:
    env = bot_env | {"ADMIN_IDS": str(ADMIN)}
    people = [ADMIN, *range(7200, 7208)]
    bot = await started(env, tmp_path, tg)
    for user_id in people:
        tg.user(user_id, language_code="en")
        tg.send_text(user_id, "/start")
        await tg.wait_for_bot_message(user_id, "I'm SMS Desk", timeout=WAIT)
    tg.send_text(ADMIN, "/admin broadcast")
    await tg.wait_for_bot_message(ADMIN, "Send me the text of the announcement", timeout=WAIT)
    tg.send_text(ADMIN, TEXT)
    await tg.wait_for_bot_message(ADMIN, "It goes to 9 active users. Send it?", timeout=WAIT)
    before = len(tg.calls_of("sendMessage"))
    # three go out; the six others get one 429 each and wait 3 s: the kill comes meanwhile
    tg.fail_next(
        "sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3, times=6, skip=3
    )
    tg.press_button(ADMIN, "Send to everyone")
    await tg.wait_for(lambda: len(tg.calls_of("sendMessage")) >= before + 9, timeout=WAIT)
    await asyncio.sleep(0.5)  # the three sent are recorded
    await killed(bot)
    assert sum(len(received_by(tg, u)) for u in people) == 3

    bot = await started(env, tmp_path, tg)
    await tg.wait_for(lambda: all(received_by(tg, u) for u in people), timeout=WAIT)
    await tg.wait_for_bot_message(ADMIN, "Done: sent to 9 of 9 users", timeout=WAIT)
    await asyncio.sleep(1.5)  # a second copy would show up now
    assert {u: len(received_by(tg, u)) for u in people} == dict.fromkeys(people, 1)
    assert await bot.stop() == 0


def received_by(tg: FakeTelegram, user_id: int) -> list[str]:
    messages = [m.text for m in tg.bot_messages(user_id) if m.text == SEEN]
    return messages[1:] if user_id == ADMIN else messages


def test_the_card_counts_users_who_could_not_be_reached() -> None:
    card = {"broadcast_id": 3, "total": 5, "sent": 3, "blocked": 0, "failed": 2, "done": True}
    i18n = create_i18n()
    with i18n.context(), i18n.use_locale("en"):
        lines = card_text(card).splitlines()
    assert lines == [
        "📢 <b>Announcement #3</b>",
        "✅ Done: sent to 3 of 5 users, 0 blocked the bot.",
        "❌ 2 users could not be reached.",
    ]
