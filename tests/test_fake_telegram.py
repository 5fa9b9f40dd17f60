"""Tests of the fake Telegram Bot API itself, driven by a real aiogram Bot and raw HTTP."""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import Command
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonCommands,
    Message,
    Update,
)

from tests.fakes.telegram import FakeTelegram, parse_html

USER = 42


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    """One row of callback buttons: ``(text, callback_data)``."""
    row = [InlineKeyboardButton(text=text, callback_data=data) for text, data in buttons]
    return InlineKeyboardMarkup(inline_keyboard=[row])


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as telegram:
        yield telegram
        assert telegram.errors == []


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
    client = Bot(fake.bot_token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    yield client
    await client.session.close()


@pytest.fixture
def chat(fake: FakeTelegram) -> int:
    """The private chat of USER, known to the bot because USER wrote /start."""
    fake.message_update(USER, "/start")
    return USER


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -------------------------------------------------------------------------------- basics


async def test_get_me(fake: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()

    assert me.is_bot
    assert me.id == fake.bot_id == 123456
    assert me.username == fake.bot_username
    assert [c.http_status for c in fake.calls_of("getme")] == [200]


async def test_raw_http_errors_and_encodings(
    fake: FakeTelegram, chat: int, http: aiohttp.ClientSession
) -> None:
    base = f"{fake.url}/bot{fake.bot_token}"

    async with http.post(f"{fake.url}/bot1:wrong/getMe") as resp:
        assert resp.status == 401
        assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    async with http.post(f"{base}/noSuchMethod") as resp:
        assert resp.status == 404
        assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    async with http.get(f"{base}/GETME") as resp:
        assert resp.status == 200
        assert (await resp.json())["result"]["username"] == fake.bot_username
    markup = json.dumps({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]})
    form = {"chat_id": str(chat), "text": "form", "reply_markup": markup}
    async with http.post(f"{base}/sendMessage", data=form) as resp:
        assert resp.status == 200
    async with http.post(f"{base}/sendmessage", json={"chat_id": chat, "text": "json"}) as resp:
        assert resp.status == 200
    async with http.get(f"{base}/sendMessage", params={"chat_id": chat, "text": "q"}) as resp:
        assert resp.status == 200
    async with http.post(f"{base}/sendMessage", json={"chat_id": chat}) as resp:
        assert resp.status == 400
        assert await resp.json() == {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: message text is empty",
        }

    assert [c.method for c in fake.calls] == ["getMe", "noSuchMethod", "getMe"] + [
        "sendMessage"
    ] * 4
    form_call = fake.calls_of("sendMessage")[0]
    assert form_call.params["chat_id"] == chat
    assert form_call.params["reply_markup"] == json.loads(markup)
    assert [m.text for m in fake.bot_messages(chat)] == ["form", "json", "q"]


# -------------------------------------------------------------------------------- HTML


async def test_send_message_with_valid_html(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    source = (
        '<b>Hi</b>, <a href="https://example.com/?a=1&amp;b=2">link</a> &lt;3 '
        '<tg-spoiler>s</tg-spoiler> <pre><code class="language-py">x = 1</code></pre>'
    )

    message = await bot.send_message(chat, source, reply_markup=keyboard(("Go", "go")))

    assert message.text == "Hi, link <3 s x = 1"
    assert message.message_id == 2  # the user's /start is message 1
    entities = [(e.type, e.offset, e.length) for e in message.entities or []]
    assert entities == [("bold", 0, 2), ("text_link", 4, 4), ("spoiler", 12, 1), ("pre", 14, 5)]
    assert message.entities is not None
    assert message.entities[1].url == "https://example.com/?a=1&b=2"
    assert message.entities[3].language == "py"
    assert message.reply_markup is not None
    assert message.reply_markup.inline_keyboard[0][0].callback_data == "go"
    stored = fake.last_bot_message(chat)
    assert (stored.text, stored.html, stored.parse_mode) == (message.text, source, "HTML")
    assert fake.calls_of("sendMessage")[0].params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("AT&T", 'Character "&" must be escaped as "&amp;" at byte offset 2'),
        ("<div>", 'Unsupported start tag "div" at byte offset 0'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
    ],
)
async def test_malformed_html_is_rejected(
    fake: FakeTelegram, bot: Bot, chat: int, text: str, reason: str
) -> None:
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_message(chat, text)

    assert info.value.message == f"Bad Request: can't parse entities: {reason}"
    assert fake.calls[-1].http_status == 400
    assert fake.calls[-1].response["error_code"] == 400
    assert fake.bot_messages(chat) == []


async def test_escaped_text_is_accepted(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    text = 'a < b & AT&T <div> "quoted" é 😀'

    message = await bot.send_message(chat, html.escape(text))

    assert message.text == text
    assert fake.last_bot_message(chat).text == text


async def test_plain_text_and_lenient_ampersand(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    plain = await bot.send_message(chat, "<b>not a tag</b> AT&T", parse_mode=None)

    assert plain.text == "<b>not a tag</b> AT&T"
    assert parse_html("&#x42;&#66;&quot;", strict_ampersand=True) == ('BB"', [])
    fake.strict_ampersand = False
    lenient = await bot.send_message(chat, "AT&T")
    assert lenient.text == "AT&T"


async def test_text_length_limits(bot: Bot, chat: int) -> None:
    assert (await bot.send_message(chat, "x" * 4096)).text == "x" * 4096
    assert (await bot.send_message(chat, "😀" * 2048)).text == "😀" * 2048  # 4096 UTF-16 units
    assert (await bot.send_message(chat, "\n  <b>trimmed</b>  \n")).text == "trimmed"

    for text in ("x" * 4097, "😀" * 2049):
        with pytest.raises(TelegramBadRequest, match="message is too long"):
            await bot.send_message(chat, text)
    for text in ("", "<b> </b>", "  \n "):
        with pytest.raises(TelegramBadRequest, match="message text is empty"):
            await bot.send_message(chat, text)


# -------------------------------------------------------------------------------- keyboards


async def test_callback_data_is_limited_to_64_bytes(bot: Bot, chat: int) -> None:
    multibyte = "я" * 32  # 32 characters, 64 bytes
    ok = await bot.send_message(chat, "ok", reply_markup=keyboard(("A", multibyte)))
    assert ok.reply_markup is not None
    assert ok.reply_markup.inline_keyboard[0][0].callback_data == multibyte

    for data in ("x" * 65, "я" * 33, ""):
        with pytest.raises(TelegramBadRequest) as info:
            await bot.send_message(chat, "bad", reply_markup=keyboard(("A", data)))
        assert info.value.message == "Bad Request: BUTTON_DATA_INVALID"


async def test_button_shape_is_checked(bot: Bot, chat: int) -> None:
    no_action = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="A")]])
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed"):
        await bot.send_message(chat, "x", reply_markup=no_action)
    with pytest.raises(TelegramBadRequest, match="BUTTON_TEXT_INVALID"):
        await bot.send_message(chat, "x", reply_markup=keyboard(("", "a")))
    bad_url = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="A", url="javascript:alert(1)")]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_URL_INVALID"):
        await bot.send_message(chat, "x", reply_markup=bad_url)


# -------------------------------------------------------------------------------- edit, delete


async def test_edit_message_text_and_not_modified(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    sent = await bot.send_message(chat, "<b>v1</b>", reply_markup=keyboard(("A", "a")))
    mid = sent.message_id

    with pytest.raises(TelegramBadRequest) as info:
        await bot.edit_message_text(
            "<b>v1</b>", reply_markup=keyboard(("A", "a")), chat_id=chat, message_id=mid
        )
    assert info.value.message.startswith("Bad Request: message is not modified: specified new")

    no_keyboard = await bot.edit_message_text(
        "<b>v1</b>", chat_id=chat, message_id=mid
    )  # drops the keyboard
    assert isinstance(no_keyboard, Message)
    assert no_keyboard.reply_markup is None
    edited = await bot.edit_message_text(
        "<i>v2</i>", reply_markup=keyboard(("B", "b")), chat_id=chat, message_id=mid
    )
    assert isinstance(edited, Message)
    assert (edited.text, edited.message_id) == ("v2", sent.message_id)
    assert edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            reply_markup=keyboard(("B", "b")), chat_id=chat, message_id=mid
        )
    assert await bot.edit_message_reply_markup(chat_id=chat, message_id=mid)

    stored = fake.message(chat, sent.message_id)
    assert [v.text for v in stored.history] == ["v1", "v1", "v2"]
    assert (stored.text, stored.raw_text, stored.reply_markup) == ("v2", "<i>v2</i>", None)
    with pytest.raises(TelegramBadRequest) as info:
        await bot.edit_message_text("x", chat_id=chat, message_id=999)
    assert info.value.message == "Bad Request: message to edit not found"
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=chat, message_id=1)  # the user's /start


async def test_delete_twice(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    sent = await bot.send_message(chat, "bye")

    assert await bot.delete_message(chat, sent.message_id)
    with pytest.raises(TelegramBadRequest) as info:
        await bot.delete_message(chat, sent.message_id)

    assert info.value.message == "Bad Request: message to delete not found"
    assert fake.message(chat, sent.message_id).deleted
    assert await bot.delete_message(chat, 1)  # the user's /start may be deleted too
    assert fake.chat(chat) == []
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=chat, message_id=sent.message_id)


# -------------------------------------------------------------------------------- callbacks


async def test_answer_callback_query_twice(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    sent = await bot.send_message(chat, "pick", reply_markup=keyboard(("Yes", "y"), ("No", "n")))
    update = fake.press_button(chat, "No")
    parsed = Update.model_validate(update, context={"bot": bot})
    assert parsed.callback_query is not None
    assert parsed.callback_query.data == "n"
    assert parsed.callback_query.message is not None
    assert parsed.callback_query.message.message_id == sent.message_id
    query_id = parsed.callback_query.id

    assert await bot.answer_callback_query(query_id, text="Done", show_alert=True)
    with pytest.raises(TelegramBadRequest) as info:
        await bot.answer_callback_query(query_id)
    assert info.value.message == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_callback_query("12345")

    answer = fake.callback_answers[query_id]
    assert (answer.text, answer.show_alert, answer.data) == ("Done", True, "n")
    assert answer.answered_at is not None


async def test_press_button_finds_the_newest_keyboard(
    fake: FakeTelegram, bot: Bot, chat: int
) -> None:
    await bot.send_message(chat, "old", reply_markup=keyboard(("Help", "old-help")))
    link = InlineKeyboardButton(text="Site", url="https://example.com")
    newer = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="❓ Help", callback_data="new-help"), link]]
    )
    await bot.send_message(chat, "new", reply_markup=newer)

    assert fake.press_button(chat, "Help")["callback_query"]["data"] == "new-help"
    first = fake.bot_messages(chat)[0].message_id
    update = fake.press_button(chat, "Help", message_id=first)
    assert update["callback_query"]["data"] == "old-help"
    assert [b.text for row in fake.buttons(fake.last_bot_message(chat)) for b in row] == [
        "❓ Help",
        "Site",
    ]
    with pytest.raises(AssertionError, match="no inline button 'Nope'"):
        fake.press_button(chat, "Nope")
    with pytest.raises(AssertionError, match="has no callback_data"):
        fake.press_button(chat, "Site")
    assert len(fake.pending_updates) == 2


# -------------------------------------------------------------------------------- faults


async def test_fail_next_429_surfaces_as_retry_after(
    fake: FakeTelegram, bot: Bot, chat: int
) -> None:
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)

    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(chat, "x")

    assert info.value.retry_after == 7
    assert fake.calls[-1].http_status == 429
    assert fake.calls[-1].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert fake.bot_messages(chat) == []
    assert (await bot.send_message(chat, "x")).text == "x"


async def test_fail_next_times_and_random_faults(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    fake.fail_next("sendmessage", 502, "Bad Gateway", times=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(chat, "x")
    await bot.send_message(chat, "x")

    fake.set_fault_rates(rate_5xx=1.0, seed=1)
    with pytest.raises(TelegramServerError):
        await bot.send_message(chat, "x")
    assert await bot.get_updates() == []  # never faulted unless listed
    fake.set_fault_rates(rate_429=1.0, retry_after=3, methods={"getMe"})
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.get_me()
    assert info.value.retry_after == 3
    await bot.send_message(chat, "x")
    fake.set_fault_rates()
    await bot.get_me()


async def test_rate_limits_and_latency(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    fake.enforce_rate_limits(per_chat_per_sec=1.0, burst=2)
    await bot.send_message(chat, "1")
    await bot.send_message(chat, "2")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(chat, "3")
    assert info.value.retry_after == 1
    assert fake.calls[-1].response["description"] == "Too Many Requests: retry after 1"
    fake.disable_rate_limits()
    await bot.send_message(chat, "3")

    fake.set_latency(0.2)
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.2


# -------------------------------------------------------------------------------- chats


async def test_blocked_unknown_and_never_started_chats(
    fake: FakeTelegram, bot: Bot, chat: int
) -> None:
    update = fake.block(chat)
    assert update is not None
    parsed = Update.model_validate(update, context={"bot": bot})
    assert parsed.my_chat_member is not None
    assert parsed.my_chat_member.new_chat_member.status == "kicked"
    assert fake.block(chat) is None

    with pytest.raises(TelegramForbiddenError) as info:
        await bot.send_message(chat, "x")
    assert info.value.message == "Forbidden: bot was blocked by the user"
    with pytest.raises(TelegramForbiddenError):
        await bot.send_chat_action(chat, "typing")
    with pytest.raises(AssertionError, match="blocked the bot"):
        fake.send_text(chat, "hi")
    fake.unblock(chat)
    await bot.send_message(chat, "welcome back")

    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(999, "x")
    fake.user(555, first_name="Ann")
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(555, "x")
    fake.register_chat(555)
    assert (await bot.send_message(555, "x")).chat.first_name == "Ann"


# -------------------------------------------------------------------------------- getUpdates


async def test_long_poll_returns_a_queued_update_at_once(fake: FakeTelegram, bot: Bot) -> None:
    async def user_writes() -> None:
        await asyncio.sleep(0.2)
        fake.send_text(USER, f"/start@{fake.bot_username} now")

    task = asyncio.create_task(user_writes())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=2)
    await task

    assert time.monotonic() - started < 1.0
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None
    assert message.text == f"/start@{fake.bot_username} now"
    assert message.entities is not None
    assert (message.entities[0].type, message.entities[0].length) == ("bot_command", 24)


async def test_long_poll_blocks_until_timeout(bot: Bot) -> None:
    started = time.monotonic()

    assert await bot.get_updates(timeout=1) == []

    assert time.monotonic() - started >= 0.95


async def test_offset_limit_and_allowed_updates(fake: FakeTelegram, bot: Bot) -> None:
    ids = [fake.send_text(USER, f"m{i}")["update_id"] for i in range(3)]
    assert ids == sorted(ids)

    assert [u.update_id for u in await bot.get_updates(limit=1)] == ids[:1]
    assert [u.update_id for u in await bot.get_updates()] == ids
    assert [u.update_id for u in await bot.get_updates(offset=ids[1])] == ids[1:]
    assert await bot.get_updates(offset=ids[-1] + 1) == []
    assert fake.pending_updates == []

    fake.send_text(USER, "dropped")
    assert await bot.get_updates(allowed_updates=["callback_query"]) == []
    fake.send_text(USER, "still dropped")  # the setting is remembered
    assert await bot.get_updates() == []
    assert len(await bot.get_updates(allowed_updates=[])) == 0
    fake.send_text(USER, "kept")
    assert [u.message.text for u in await bot.get_updates() if u.message] == ["kept"]


async def test_newer_get_updates_terminates_the_waiting_one(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    url = f"{fake.url}/bot{fake.bot_token}/getUpdates"

    async def poll(seconds: float) -> tuple[int, dict[str, object]]:
        async with http.post(url, data={"timeout": str(seconds)}) as resp:
            return resp.status, await resp.json()

    first = asyncio.create_task(poll(2))
    await asyncio.sleep(0.1)
    assert await poll(0) == (200, {"ok": True, "result": []})
    status, body = await first

    assert status == 409
    assert body["description"] == (
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running"
    )


async def test_webhook_blocks_get_updates(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="HTTPS URL must be provided"):
        await bot.set_webhook("http://example.com/hook")
    assert await bot.set_webhook("https://example.com/hook", secret_token="s3cret")

    with pytest.raises(TelegramConflictError) as info:
        await bot.get_updates()
    assert info.value.message == (
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first"
    )
    fake.send_text(USER, "hi")
    webhook = await bot.get_webhook_info()
    assert (webhook.url, webhook.pending_update_count) == ("https://example.com/hook", 1)

    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == []
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.log_out()


# -------------------------------------------------------------------------------- commands


async def test_my_commands_per_scope_and_language(fake: FakeTelegram, bot: Bot) -> None:
    commands = [BotCommand(command="start", description="main menu")]
    scope = BotCommandScopeAllPrivateChats()

    assert await bot.set_my_commands(commands, scope=scope, language_code="ru")

    listed = await bot.get_my_commands(scope=scope, language_code="ru")
    assert [(c.command, c.description) for c in listed] == [("start", "main menu")]
    assert await bot.get_my_commands() == []
    assert fake.commands_for({"type": "all_private_chats"}, "ru") == [
        {"command": "start", "description": "main menu"}
    ]
    assert await bot.delete_my_commands(scope=scope, language_code="ru")
    assert await bot.get_my_commands(scope=scope, language_code="ru") == []

    bad = [
        ([BotCommand(command="Start", description="x")], "BOT_COMMAND_INVALID"),
        ([BotCommand(command="a" * 33, description="x")], "BOT_COMMAND_INVALID"),
        ([BotCommand(command="start", description="")], "BOT_COMMAND_DESCRIPTION_INVALID"),
        ([BotCommand(command="start", description="x" * 257)], "BOT_COMMAND_DESCRIPTION_INVALID"),
        ([BotCommand(command=f"c{i}", description="x") for i in range(101)], "TOO_MUCH"),
    ]
    for wrong, reason in bad:
        with pytest.raises(TelegramBadRequest, match=reason):
            await bot.set_my_commands(wrong)
    assert fake.my_commands == {}
    assert await bot.set_chat_menu_button(menu_button=MenuButtonCommands())
    assert isinstance(await bot.get_chat_menu_button(), MenuButtonCommands)


# -------------------------------------------------------------------------------- with aiogram


def demo_router() -> Router:
    router = Router()

    @router.message(Command("start"))
    async def start(message: Message) -> None:
        name = html.escape(message.from_user.first_name if message.from_user else "")
        await message.answer(f"Menu for <b>{name}</b>", reply_markup=keyboard(("❓ Help", "help")))

    @router.callback_query(F.data == "help")
    async def help_button(query: CallbackQuery, bot: Bot) -> None:
        await query.answer("Opening help")
        if query.message is not None:
            await bot.edit_message_text(
                "Help text", chat_id=query.message.chat.id, message_id=query.message.message_id
            )

    return router


async def test_feed_update_with_message_update(fake: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()
    dp.include_router(demo_router())
    fake.user(USER, first_name="<Ann>")

    update = fake.message_update(USER, "/start")
    await dp.feed_update(bot, Update.model_validate(update, context={"bot": bot}))

    assert [(m.from_bot, m.text) for m in fake.chat(USER)] == [
        (False, "/start"),
        (True, "Menu for <Ann>"),
    ]
    assert fake.pending_updates == []


async def test_polling_end_to_end(fake: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()
    dp.include_router(demo_router())
    polling = asyncio.create_task(
        dp.start_polling(bot, polling_timeout=1, handle_signals=False, close_bot_session=False)
    )
    try:
        fake.send_text(USER, "/start")
        menu = await fake.wait_for_bot_message(USER, "Menu")
        assert menu.button_texts() == ["❓ Help"]

        query_id = fake.press_button(USER, "Help")["callback_query"]["id"]
        edited = await fake.wait_for_bot_message(USER, "Help text")
        assert edited.message_id == menu.message_id
        await fake.wait_for(lambda: query_id in fake.callback_answers)
        assert fake.callback_answers[query_id].text == "Opening help"
        with pytest.raises(AssertionError, match="no new bot message"):
            await fake.wait_for_bot_message(USER, "never", timeout=0.1)
    finally:
        await dp.stop_polling()
        await polling


# -------------------------------------------------------------------------------- files

MB = 1024 * 1024
CSV = b"phone,name\n+79991234567,Ann\n+79997654321,Bob\n"
REPORT = b"number,status\n+79991234567,delivered\n"


def files_router() -> Router:
    """Answers a document with its line count, as a /bulk upload would be read."""
    router = Router()

    @router.message(F.document)
    async def count_lines(message: Message, bot: Bot) -> None:
        assert message.document is not None
        data = await bot.download(message.document)
        assert data is not None
        await message.answer(f"{len(data.read().splitlines())} lines")

    return router


async def test_user_document_is_downloaded_by_the_bot(fake: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()
    dp.include_router(files_router())

    update = fake.document_update(USER, CSV, "numbers.csv", caption="/bulk list")
    await dp.feed_update(bot, Update.model_validate(update, context={"bot": bot}))

    document = update["message"]["document"]
    assert {k: v for k, v in document.items() if k not in ("file_id", "file_unique_id")} == {
        "file_name": "numbers.csv",
        "mime_type": "text/csv",
        "file_size": len(CSV),
    }
    assert update["message"]["caption"] == "/bulk list"
    assert update["message"]["caption_entities"] == [
        {"type": "bot_command", "offset": 0, "length": 5}
    ]
    sent, answer = fake.chat(USER)
    assert fake.document_of(sent) == ("numbers.csv", CSV)
    assert answer.text == "3 lines"
    assert [c.http_status for c in fake.downloads] == [200]


async def test_get_file_and_download(fake: FakeTelegram, bot: Bot) -> None:
    update = fake.document_update(USER, b"+79991234567\n", "list.TXT", "text/plain")
    file_id = update["message"]["document"]["file_id"]

    file = await bot.get_file(file_id)

    assert file.file_id == file_id
    assert file.file_size == 13
    assert file.file_path is not None
    assert file.file_path.startswith("documents/file_")
    assert file.file_path.endswith(".txt")
    assert (await bot.get_file(file_id)).file_path == file.file_path  # the path stays
    downloaded = await bot.download(file_id)
    assert downloaded is not None
    assert downloaded.read() == b"+79991234567\n"
    assert fake.downloads[-1].params == {"file_path": file.file_path}


async def test_get_file_refusals(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest) as info:
        await bot.get_file("BQACAgIAAxkBAAI-no-such-file")
    assert info.value.message == "Bad Request: invalid file_id"

    limit = fake.document_update(USER, b"x" * (20 * MB), "limit.csv")
    assert (await bot.get_file(limit["message"]["document"]["file_id"])).file_size == 20 * MB
    big = fake.document_update(USER, b"x" * (20 * MB + 1), "big.csv")
    with pytest.raises(TelegramBadRequest) as info:
        await bot.get_file(big["message"]["document"]["file_id"])
    assert info.value.message == "Bad Request: file is too big"


async def test_download_route_answers_like_telegram(
    fake: FakeTelegram, bot: Bot, http: aiohttp.ClientSession
) -> None:
    file_id = fake.document_update(USER, CSV, "numbers.csv")["message"]["document"]["file_id"]
    not_found = {"ok": False, "error_code": 404, "description": "Not Found"}
    never_given = f"{fake.url}/file/bot{fake.bot_token}/documents/file_0.csv"
    async with http.get(never_given) as response:  # no getFile yet: no path
        assert (response.status, await response.json()) == (404, not_found)

    path = (await bot.get_file(file_id)).file_path
    async with http.get(f"{fake.url}/file/bot{fake.bot_token}/{path}") as response:
        assert response.status == 200
        assert response.content_type == "application/octet-stream"
        assert await response.read() == CSV
    async with http.get(f"{fake.url}/file/bot123:wrong/{path}") as response:
        assert (response.status, await response.json()) == (404, not_found)
    async with http.get(f"{fake.url}/file/bot{fake.bot_token}/documents/nope.csv") as response:
        assert (response.status, await response.json()) == (404, not_found)
    assert [c.http_status for c in fake.downloads] == [404, 200, 404, 404]


async def test_sample_document_has_placeholder_bytes(fake: FakeTelegram, bot: Bot) -> None:
    update = fake.content_update(USER, "document")
    document = update["message"]["document"]

    downloaded = await bot.download(document["file_id"])

    assert downloaded is not None
    data = downloaded.read()
    assert len(data) == document["file_size"] == 321
    assert data.startswith(b"placeholder\n")
    assert fake.files[document["file_id"]].placeholder
    photo = fake.content_update(USER, "photo")["message"]["photo"][-1]
    path = (await bot.get_file(photo["file_id"])).file_path
    assert path is not None
    assert path.startswith("photos/")
    assert path.endswith(".jpg")


async def test_send_document_with_caption_and_keyboard(
    fake: FakeTelegram, bot: Bot, chat: int
) -> None:
    report = BufferedInputFile(REPORT, filename="r.csv")

    message = await bot.send_document(
        chat, report, caption="<b>Report</b> &amp; more", reply_markup=keyboard(("Again", "again"))
    )

    assert message.document is not None
    assert (message.document.file_name, message.document.mime_type) == ("r.csv", "text/csv")
    assert message.document.file_size == len(REPORT) == 37
    assert message.caption == "Report & more"
    assert [(e.type, e.offset, e.length) for e in message.caption_entities or []] == [
        ("bold", 0, 6)
    ]
    assert message.text is None
    stored = fake.last_bot_message(chat)
    assert fake.document_of(stored) == ("r.csv", REPORT)
    assert (stored.text, stored.html) == ("Report & more", "<b>Report</b> &amp; more")
    assert stored.button_texts() == ["Again"]
    again = await bot.download(message.document.file_id)  # the bot re-downloads its own file
    assert again is not None
    assert again.read() == REPORT
    resent = await bot.send_document(chat, message.document.file_id)
    assert resent.document is not None
    assert resent.document.file_id == message.document.file_id
    assert resent.caption is None


async def test_send_document_refusals(
    fake: FakeTelegram, bot: Bot, chat: int, http: aiohttp.ClientSession
) -> None:
    def csv() -> BufferedInputFile:
        return BufferedInputFile(b"a\n", filename="r.csv")

    assert (await bot.send_document(chat, csv(), caption="x" * 1024)).caption == "x" * 1024
    assert (await bot.send_document(chat, csv(), caption="😀" * 512)).caption == "😀" * 512
    sent = len(fake.bot_messages(chat))
    refusals = [
        ({"caption": "x" * 1025}, "Bad Request: message caption is too long"),
        ({"caption": "😀" * 513}, "Bad Request: message caption is too long"),
        ({"caption": "AT&T"}, 'Bad Request: can\'t parse entities: Character "&" must be'),
        ({"reply_markup": keyboard(("A", "x" * 65))}, "Bad Request: BUTTON_DATA_INVALID"),
    ]
    for kwargs, description in refusals:
        with pytest.raises(TelegramBadRequest) as info:
            await bot.send_document(chat, csv(), **kwargs)  # type: ignore[arg-type]
        assert info.value.message.startswith(description)
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_document(chat, BufferedInputFile(b"", filename="empty.csv"))
    assert info.value.message == "Bad Request: file must be non-empty"
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_document(chat, "BQACAgIAAxkBAAI-unknown")
    assert info.value.message == "Bad Request: wrong file identifier/HTTP URL specified"
    url = f"{fake.url}/bot{fake.bot_token}/sendDocument"
    async with http.post(url, data={"chat_id": str(chat), "caption": "x"}) as response:
        body = await response.json()
    assert (response.status, body["description"]) == (
        400,
        "Bad Request: there is no document in the request",
    )
    assert len(fake.bot_messages(chat)) == sent


async def test_send_document_size_limit(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    at_limit = await bot.send_document(chat, BufferedInputFile(b"x" * (50 * MB), filename="a.csv"))
    assert at_limit.document is not None
    assert at_limit.document.file_size == 50 * MB

    # checked by sendDocument itself / refused before the body is read
    for size, read in ((50 * MB + 1, True), (52 * MB, False)):
        with pytest.raises(TelegramEntityTooLarge) as info:
            await bot.send_document(chat, BufferedInputFile(b"x" * size, filename="b.csv"))
        assert info.value.message == "Request Entity Too Large"
        assert (fake.calls[-1].method, fake.calls[-1].http_status) == ("sendDocument", 413)
        assert ("chat_id" in fake.calls[-1].params) is read
    assert len(fake.bot_messages(chat)) == 1


async def test_send_document_counts_in_rate_limits(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    fake.enforce_rate_limits(per_chat_per_sec=1.0, burst=2)
    await bot.send_message(chat, "1")
    await bot.send_document(chat, BufferedInputFile(b"a\n", filename="r.csv"))

    with pytest.raises(TelegramRetryAfter):
        await bot.send_document(chat, BufferedInputFile(b"a\n", filename="r.csv"))
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(chat, "3")
    assert len(fake.bot_messages(chat)) == 2


async def test_edit_text_and_caption_of_a_document(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    sent = await bot.send_document(
        chat, BufferedInputFile(b"a\n", filename="r.csv"), caption="<b>v1</b>"
    )
    text = await bot.send_message(chat, "text")

    with pytest.raises(TelegramBadRequest) as info:
        await bot.edit_message_text("v2", chat_id=chat, message_id=sent.message_id)
    assert info.value.message == "Bad Request: there is no text in the message to edit"
    with pytest.raises(TelegramBadRequest) as info:
        await bot.edit_message_caption(chat_id=chat, message_id=text.message_id, caption="c")
    assert info.value.message == "Bad Request: there is no caption in the message to edit"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_caption(
            chat_id=chat, message_id=sent.message_id, caption="<b>v1</b>"
        )
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.edit_message_caption(chat_id=chat, message_id=sent.message_id, caption="x" * 1025)

    edited = await bot.edit_message_caption(
        chat_id=chat, message_id=sent.message_id, caption="<i>v2</i>"
    )

    assert isinstance(edited, Message)
    assert edited.caption == "v2"
    stored = fake.message(chat, sent.message_id)
    assert (stored.text, stored.history[0].text) == ("v2", "v1")
    assert fake.document_of(stored) == ("r.csv", b"a\n")


async def test_queued_document_and_optional_fields(fake: FakeTelegram, bot: Bot) -> None:
    queued = fake.send_document(USER, b"\x00\x01", None, caption="raw")

    updates = await bot.get_updates(timeout=0)

    assert [u.update_id for u in updates] == [queued["update_id"]]
    assert updates[0].message is not None
    document = updates[0].message.document
    assert document is not None
    assert (document.file_name, document.mime_type, document.file_size) == (None, None, 2)
    assert updates[0].message.caption == "raw"
    path = (await bot.get_file(document.file_id)).file_path
    assert path is not None
    assert path.startswith("documents/file_")
    assert "." not in path.removeprefix("documents/")
    guessed = fake.document_update(USER, b"x", "list.txt")["message"]["document"]
    assert guessed["mime_type"] == "text/plain"
    with pytest.raises(AssertionError, match="empty file"):
        fake.document_update(USER, b"", "empty.csv")
