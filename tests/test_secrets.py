"""Secrets: tokens never leak, token messages leave the chat, groups get nothing private, and a
user's buttons never act with another user's token.

The first test runs `python -m bot` as a real subprocess at LOG_LEVEL=DEBUG, connects both tokens
(one-liner and guided), runs every command and at least one push of each kind, stops the bot and
then searches the whole log, the raw bytes of every file in the data folder (the SQLite database
with its -wal and -shm files included, also copied while the bot was still running), every Bot
API call the bot made and every message left in the chats for each token — as is, and in its
base64, hex and URL-encoded forms.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from bot.db.models import Service
from bot.db.repo import CredentialRepo
from bot.keyboards.callbacks import ConfirmCb
from bot.keyboards.gosms import DeviceCb, SmsCb
from bot.keyboards.gotsms import RentCb, short_id
from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, BotProcess, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import CallbackQueryRecord, FakeTelegram

ALICE, BOB = 9101, 9102
GROUP = -1009101
OTHER_GOTSMS = "gotsms-token-of-bob-0a1b2c3d4e5f"
OTHER_GOSMS = "gosms-key-of-bob-6a7b8c9d0e1f"
WAIT = 20.0


# --------------------------------------------------------------------------- token forms


def forms(secret: str) -> set[bytes]:
    """The token as is and as it would look base64-, hex- or URL-encoded anywhere in a file.

    A token inside a longer base64 text is encoded at one of three alignments; for each, the
    characters that depend on the token alone are searched.
    """
    raw = secret.encode()
    found = {raw, quote(secret).encode(), quote_plus(secret).encode()}
    found |= {binascii.hexlify(raw), binascii.hexlify(raw).upper()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):
            text = encode(b"\0" * shift + raw + b"\0\0\0")
            start = (shift * 4 + 2) // 3 + 1
            core = text[start : (shift + len(raw)) * 4 // 3 - 1]
            found.add(core)
    return found


def leaks(blob: bytes, secrets: dict[str, str]) -> list[str]:
    return [
        f"{name} ({form[:12]!r}…)"
        for name, secret in secrets.items()
        for form in forms(secret)
        if form in blob
    ]


def test_the_forms_find_an_encoded_token() -> None:
    secret = {"t": GOTSMS_TOKEN}
    for prefix in (b"", b"x", b"xy"):
        assert leaks(base64.b64encode(prefix + GOTSMS_TOKEN.encode()), secret)
        assert leaks(base64.urlsafe_b64encode(b"{" + prefix + GOTSMS_TOKEN.encode()), secret)
    assert leaks(GOTSMS_TOKEN.encode().hex().encode(), secret)
    assert not leaks(base64.b64encode(b"an unrelated text of about the same length"), secret)


# --------------------------------------------------------------------------- the real bot


class Chat:
    """Alice talking to the bot process through the fake Bot API."""

    def __init__(self, tg: FakeTelegram) -> None:
        self.tg = tg
        self.with_tokens: list[tuple[int, int]] = []  # (chat, message) of every token message

    async def say(
        self, text: str, expect: str | None, *, chat_id: int | None = None, secret: bool = False
    ) -> None:
        kwargs: dict[str, Any] = {}
        if chat_id is not None:
            kwargs = {"chat_id": chat_id, "chat_type": "supergroup"}
        update = self.tg.send_text(ALICE, text, **kwargs)
        if secret:
            message = update["message"]
            self.with_tokens.append((message["chat"]["id"], message["message_id"]))
        await self.tg.wait_for_bot_message(chat_id or ALICE, expect, timeout=WAIT)

    async def press(self, label: str, expect: str | None) -> None:
        self.tg.press_button(ALICE, label)
        await self.tg.wait_for_bot_message(ALICE, expect, timeout=WAIT)

    async def push(self, expect: str) -> None:
        """A push, whenever it came."""
        await self.tg.wait_for_bot_message(ALICE, expect, timeout=WAIT, since=0)


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


async def test_no_token_in_the_log_the_database_or_the_chat(
    bot_env: dict[str, str],
    tmp_path: Path,
    tg: FakeTelegram,
    gotsms: FakeGotSMS,
    gosms: FakeGoSMS,
) -> None:
    assert bot_env["LOG_LEVEL"] == "DEBUG"
    data = tmp_path / "state"
    day = gotsms.plan_by("Telegram", "day", 1)["id"]
    ending = gotsms.create_rent(GOTSMS_TOKEN, day)  # ends within the hour: the rent alert
    gotsms.set_rent_end(ending["id"], gotsms.now() + timedelta(minutes=30))
    gotsms.set_balance(GOTSMS_TOKEN, 5.0)  # under the threshold of 50 set below
    device = gosms.add_device(
        GOSMS_TOKEN,
        name="Poco",
        battery=9,
        charging=False,
        last_online=datetime.now(UTC) - timedelta(minutes=30),
    )
    tg.user(ALICE, first_name="Alice", language_code="en")
    chat = Chat(tg)
    bot = BotProcess(bot_env, tmp_path)
    await bot.start()
    try:
        await tg.wait_for(lambda: bool(tg.calls_of("getUpdates")), timeout=60)
        await chat.say("/start", "Hi, Alice!")
        await chat.say("/help", "Commands")
        await chat.say("/lang", None)
        await chat.press("English", None)
        # the low-balance alert, wanted before GotSMS is connected (GotSMS checks it at once)
        await chat.say("/notify", "Notifications")
        await chat.press("Low balance", None)
        await chat.press("Set threshold", "Send the amount")
        await chat.say("50", "below 50")
        # GotSMS by the one-liner, GoSMS by the guided flow
        await chat.say(f"/token gotsms {GOTSMS_TOKEN}", "GotSMS is connected", secret=True)
        await chat.say("/token", "Which service")
        await chat.press("GoSMS", "Send your GoSMS API token")
        await chat.say(GOSMS_TOKEN, "GoSMS is connected", secret=True)
        await chat.say(GOTSMS_TOKEN, "looked like an API token", secret=True)  # pasted outside
        # a rent, and a code on it
        await chat.say("/rent telegram", "Plans of Telegram")
        await chat.press("USA · 1 day · 1.00", "area code")
        await chat.press("Any area code", "Rent a number?")
        await chat.press("Rent for 1.00", "Your number")
        [rent] = [r for r in gotsms.rents_of(GOTSMS_TOKEN) if r["id"] != ending["id"]]
        gotsms.inject_message(rent["id"], "Your Telegram code is 424242")
        # GotSMS allows 30 requests a minute, and the poller keeps 8 for the user's commands:
        # its pushes come first here, the many commands after them
        for push in ("New code from", "ends soon", "dropped below"):
            await chat.push(push)
        for command in ("/balance", "/prices", "/services", "/plans telegram", "/codes"):
            await chat.say(command, None)
        await chat.say("/messages", None)
        await chat.say("/rents", "Your active rentals")
        await chat.press(rent["phone"], "Auto-renew")
        await chat.press("Number status", None)
        # an SMS, delivered
        await chat.say("/send 79991234567 Hello from the test", "Send this SMS?")
        await chat.press("Send", "Status:")
        [sms] = gosms.sms_of(GOSMS_TOKEN)
        gosms.set_status(sms["id"], 4)
        await chat.say("/sms", "Your SMS")
        # a device (offline, low battery): watched from the next connection on
        await chat.say(f"/devices add {device}", "Poco")
        await chat.say("/devices", "Your devices")
        await chat.say(f"/token gosms {GOSMS_TOKEN}", "GoSMS is connected", secret=True)
        for push in ("was delivered", "is offline", "battery at 9 %"):
            await chat.push(push)
        # groups: tokens refused and deleted, nothing private answered
        await chat.say(
            f"/token gosms {GOSMS_TOKEN}", "only in a private chat", chat_id=GROUP, secret=True
        )
        await chat.say("/balance", "I work only in a private chat", chat_id=GROUP)
        await chat.say("/cancel", None)
        running = files_of(data)
        await chat.say("/logout", "Which token")
        await chat.press("Both", "Disconnect your")
        await chat.press("Yes, disconnect", "tokens are disconnected")
    finally:
        code = await bot.stop()
    assert code == 0, bot.log[-3000:]
    assert "Traceback" not in bot.log
    assert "DEBUG" in bot.log, "the log is the real, verbose one"
    secrets = {"GotSMS token": GOTSMS_TOKEN, "GoSMS token": GOSMS_TOKEN, "bot token": tg.bot_token}

    assert chat.with_tokens
    for chat_id, message_id in chat.with_tokens:
        assert tg.message(chat_id, message_id).deleted, "a message with a token stays in the chat"
    for chat_id in (ALICE, GROUP):
        for message in tg.chat(chat_id):
            assert not leaks(message.text.encode(), secrets), message.text
    group = tg.bot_messages(GROUP)
    assert all("private chat" in m.text for m in group), [m.text for m in group]

    sent_to_telegram = repr([(c.method, c.params) for c in tg.calls]).encode()
    assert not leaks(sent_to_telegram, {k: v for k, v in secrets.items() if k != "bot token"})
    assert not leaks(bot.log.encode(), secrets)
    stopped = files_of(data)
    assert any(name.endswith("-wal") for name in running), sorted(running)
    for name, blob in {**running, **stopped}.items():
        assert not leaks(blob, secrets), f"{name}: {leaks(blob, secrets)}"
    assert "bot.db" in stopped


# --------------------------------------------------------------------------- groups


async def test_groups_get_a_private_chat_note_and_nothing_else(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    harness.tg.user(ALICE, language_code="en")
    await store(harness, ALICE, Service.GOTSMS, GOTSMS_TOKEN)
    calls = len(gotsms.requests)
    for chat_type in ("group", "supergroup"):
        for text in ("/start", "/help", f"/help@{harness.tg.bot_username}"):
            await harness.send(ALICE, text, chat_id=GROUP, chat_type=chat_type)
            note = harness.last(GROUP).text
            assert "I work only in a private chat" in note
            assert f"@{harness.tg.bot_username}" in note
        update = harness.tg.message_update(
            ALICE, f"/token gotsms {GOTSMS_TOKEN}", chat_id=GROUP, chat_type=chat_type
        )
        await harness.feed(update)
        assert harness.tg.message(GROUP, update["message"]["message_id"]).deleted
        assert "only in a private chat" in harness.last(GROUP).text
        for command in ("/balance", "/rents", "/codes", "/sms", "/devices", "/logout", "/rent"):
            await harness.send(ALICE, command, chat_id=GROUP, chat_type=chat_type)
            assert "I work only in a private chat" in harness.last(GROUP).text, command
        count = len(harness.tg.bot_messages(GROUP))
        await harness.send(ALICE, "hello everyone", chat_id=GROUP, chat_type=chat_type)
        await harness.send(ALICE, "/start@some_other_bot", chat_id=GROUP, chat_type=chat_type)
        assert len(harness.tg.bot_messages(GROUP)) == count, "group talk is not answered"
    assert len(gotsms.requests) == calls, "nothing in a group reached GotSMS"
    assert all(GOTSMS_TOKEN not in m.text for m in harness.tg.chat(GROUP))


async def test_group_note_in_russian(harness: Harness) -> None:
    harness.tg.user(ALICE, language_code="ru")
    await harness.send(ALICE, "/balance", chat_id=GROUP, chat_type="group")
    assert "только в личном чате" in harness.last(GROUP).text


# --------------------------------------------------------------------------- other users' buttons


async def store(harness: Harness, user_id: int, service: Service, token: str) -> None:
    harness.tg.user(user_id, language_code="en")
    await harness.send(user_id, "/help")  # the user row
    async with harness.deps.session_factory() as session:
        await CredentialRepo(session, harness.deps.cipher).save(user_id, service, token)
        await session.commit()


def tokens_seen(gotsms: FakeGotSMS, gosms: FakeGoSMS, since: tuple[int, int]) -> set[str | None]:
    return {r.token for r in gotsms.requests[since[0] :]} | {
        r.token for r in gosms.requests[since[1] :]
    }


async def press_as(
    harness: Harness, user_id: int, chat_id: int, message_id: int, data: str
) -> CallbackQueryRecord:
    update = harness.tg.callback_update(user_id, message_id, data, chat_id=chat_id)
    await harness.feed(update)
    record = harness.tg.callback_queries[update["callback_query"]["id"]]
    assert record.answered, "never silence"
    return record


async def test_another_users_buttons_never_act_with_their_token(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS
) -> None:
    gotsms.add_account(OTHER_GOTSMS)
    gosms.add_account(OTHER_GOSMS)
    for user_id, gotsms_token, gosms_token in (
        (ALICE, GOTSMS_TOKEN, GOSMS_TOKEN),
        (BOB, OTHER_GOTSMS, OTHER_GOSMS),
    ):
        await store(harness, user_id, Service.GOTSMS, gotsms_token)
        await store(harness, user_id, Service.GOSMS, gosms_token)
    day = gotsms.plan_by("Telegram", "day", 1)["id"]
    rent = gotsms.create_rent(GOTSMS_TOKEN, day)
    sms = gosms.add_sms(GOSMS_TOKEN, message="Alice's SMS", phone_number="79990001122")
    device = gosms.add_device(GOSMS_TOKEN, name="Alice's phone")
    await harness.send(ALICE, f"/devices add {device}")

    # Alice's cards and a confirmation of hers, as they are in her chat
    await harness.send(ALICE, "/rents")
    await harness.press(ALICE, rent["phone"])
    rent_card = harness.last(ALICE)
    await harness.send(ALICE, "/sms")
    await harness.press(ALICE, "1 ")
    sms_card = harness.last(ALICE)
    await harness.send(ALICE, "/devices")
    await harness.press(ALICE, "Alice's phone")
    device_card = harness.last(ALICE)
    await harness.press(ALICE, "Delete from GoSMS")
    question = harness.last(ALICE)
    _yes_id, yes = harness.find_button(ALICE, "Yes, delete")
    assert ConfirmCb.unpack(yes).ok

    buttons = [
        (rent_card.message_id, data)
        for data in (b.callback_data for row in rent_card.buttons for b in row)
        if data
    ]
    buttons += [
        (sms_card.message_id, data)
        for data in (b.callback_data for row in sms_card.buttons for b in row)
        if data
    ]
    buttons += [
        (device_card.message_id, data)
        for data in (b.callback_data for row in device_card.buttons for b in row)
        if data
    ]
    buttons.append((question.message_id, yes))
    assert len(buttons) >= 10

    # Bob presses each of them (a forged update: Alice's message, Bob as the presser)
    before = (len(gotsms.requests), len(gosms.requests))
    alice_view = {m.message_id: m.text for m in harness.tg.bot_messages(ALICE)}
    for message_id, data in buttons:
        answer = await press_as(harness, BOB, ALICE, message_id, data)
        assert answer.show_alert, data
        assert "belongs to another user" in (answer.text or ""), data
    assert tokens_seen(gotsms, gosms, before) == set(), "the APIs saw nothing at all"
    assert {m.message_id: m.text for m in harness.tg.bot_messages(ALICE)} == alice_view
    assert gosms.has_device(device)

    # Bob sends the same data from his own chat: only his own token is ever used
    await harness.send(BOB, "/help")
    bob_message = harness.last(BOB).message_id
    forged = [
        RentCb(a=action, id=short_id(rent["id"])).pack() for action in ("o", "s", "w", "f", "t")
    ]
    forged += [SmsCb(action=action, id=sms).pack() for action in ("o", "r", "d")]
    forged += [DeviceCb(action=action, row=1).pack() for action in ("o", "r", "on", "x", "f")]
    forged.append(yes)
    before = (len(gotsms.requests), len(gosms.requests))
    for data in forged:
        await press_as(harness, BOB, BOB, bob_message, data)
    assert tokens_seen(gotsms, gosms, before) <= {OTHER_GOTSMS, OTHER_GOSMS}
    changes = [
        (r.path, r.token, r.status)
        for r in gotsms.requests[before[0] :]
        if r.method == "POST" and r.path.endswith(("/refund", "/wake-up", "/transition"))
    ]
    assert all(status == 404 for _path, _token, status in changes), changes
    assert gosms.sms(sms), "Alice's SMS is still there"
    assert gosms.has_device(device), "Alice's device is still there"
    assert gotsms.rents_of(GOTSMS_TOKEN)[0]["status"] == "active"

    # and Alice's own question still works for her, once
    answer = await press_as(harness, ALICE, ALICE, question.message_id, yes)
    assert not answer.show_alert
    assert not gosms.has_device(device)
