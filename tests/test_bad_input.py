"""Bad input, generated: the real dispatcher gets hundreds of hostile texts, commands and presses.

Every input is fed in a dialog state that matters (idle, in the middle of /token, the /rent area
code, each step of /send, the /notify threshold, /devices add), with both tokens connected. For
each one: every Bot API call the bot made is valid (no "can't parse entities", no "message is too
long", no BUTTON_DATA_INVALID, nothing else refused), nothing is logged at ERROR, a text gets an
answer (or its token-looking message is deleted) and a press is answered. Every kind of message
that is not text (photo, sticker, file, voice, location, contact, poll...) gets, in every state, the
short answer of that state, and leaves the dialog where it was.

The inputs come from `hypothesis` strategies, drawn once with a fixed seed (`derandomize`), so a
run is deterministic and a failure names the input that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.commands import COMMANDS
from bot.db.models import Service
from bot.db.repo import ConfirmationRepo, CredentialRepo, DeviceRepo, NotificationRepo
from bot.keyboards import gosms as gkb
from bot.keyboards import gotsms as tkb
from bot.keyboards.callbacks import ConfirmCb
from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import CONTENT_KINDS, SERVICE_KINDS, Call, buttons_of

EN, RU, OTHER = 9101, 9102, 9103
OTHER_GOSMS = "gosms-other-key-0c1d2e3f4a5b6c7d"
OTHER_GOTSMS = "gotsms-other-token-9e8d7c6b5a4f"
REFUSED = ("can't parse entities", "message is too long", "BUTTON_DATA_INVALID")
PHONE = "+7 999 123-45-67"


# ---------------------------------------------------------------- generated data


def draw(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """`count` examples of a strategy, the same on every run."""
    found: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found


# Anything Telegram can carry in a text: every category except lone surrogates.
ANY_CHAR = st.characters(codec="utf-8")
PIECES = st.sampled_from(
    [
        "\u202e",  # right-to-left override
        "\u200f",  # right-to-left mark
        "שלום",
        "مرحبا",
        "١٢٣",  # Arabic-Indic digits
        "²³",
        "😀",
        "👨‍👩‍👧‍👦",
        "🇺🇸",
        "\x00",
        "\x1b[31m",
        "\t",
        "\r\n",
        "\u0301",  # a combining accent
        "\ufeff",
        "\U0010fffd",
    ]
)
HTML_PIECES = st.sampled_from(
    [
        "<b>",
        "</b>",
        "&",
        "&amp;",
        "&lt;",
        "&#",
        "&#x110000;",
        "</code>",
        "<code>",
        "<pre>",
        '<a href="',
        '<a href="tg://user?id=1">',
        "</a>",
        "<",
        ">",
        '"',
        "<tg-spoiler>",
        "<blockquote>",
        "<span>",
        "<br/>",
        "<!--",
        "]]>",
        "{name}",
        "{0}",
        "%s",
    ]
)


def usable(text: str) -> bool:
    """Telegram delivers no empty or blank message."""
    return bool(text.strip())


UNICODE_TEXT = st.text(ANY_CHAR, min_size=1, max_size=120).filter(usable)
MIXED_TEXT = (
    st.lists(st.one_of(PIECES, st.text(ANY_CHAR, max_size=6)), min_size=1, max_size=12)
    .map("".join)
    .filter(usable)
)
HTML_TEXT = (
    st.lists(st.one_of(HTML_PIECES, st.text(ANY_CHAR, max_size=4)), min_size=1, max_size=15)
    .map("".join)
    .filter(usable)
)
HUGE_TEXT = (
    st.text(ANY_CHAR, min_size=1, max_size=40)
    .filter(usable)
    .map(lambda seed: (seed * 5000)[:5000])
    .filter(usable)
)
ARGS = st.one_of(
    st.text(ANY_CHAR, min_size=1, max_size=60),
    HTML_TEXT,
    st.lists(st.text(ANY_CHAR, min_size=1, max_size=8), min_size=2, max_size=8).map(" ".join),
)


# Texts that mean something in one dialog state: area codes, amounts, phones, device ids, tokens.
SPECIAL_TEXTS = (
    "١٢٣",
    "²¹²",
    "212",
    "0.001",
    "1e-9",
    "NaN",
    "-0",
    "1e6",
    "999999.999",
    "1,5",
    "Infinity",
    "+7 (999) 123-45-67",
    "+" + "1" * 31,
    "6622a8bbd963898821ebf934",
    "0F8FAD5B-D9CB-469F-A165-70867728950E",
    "abcdefghij1234567890abcdef",
    "gotsms-token-" + "0" * 20,
    "x" * 513,
    "text with `backtick`",
)


def command_inputs(bot_username: str) -> list[str]:
    """Every command bare, addressed, with junk, HTML, huge, extra and specially bad arguments."""
    generated = iter(draw(ARGS, 3 * len(COMMANDS)))
    texts: list[str] = []
    for name, _description in COMMANDS:
        texts += [
            f"/{name}",
            f"/{name}@{bot_username}",
            f"/{name}@SomeOtherBot",
            f"/{name.upper()}",
            f"/{name} <b>&</code>",
            f"/{name} " + "9" * 4990,
            f"/{name} a b c d e f g h",
            f"/{name}\n\n<a href=x>",
            *(f"/{name} {next(generated)}" for _ in range(3)),
        ]
    texts += [
        "/token gotsms",
        "/token gosms",
        "/token gotsms short",
        "/token gosms " + "x" * 600,
        "/token gotsms <b>not&a&token</b>",
        "/token nope something",
        "/token gotsms one two",
        "/send 123",
        "/send +7 999 123-45-67",
        f"/send {PHONE} `backtick`",
        f"/send {PHONE} " + "é" * 301,
        f"/send {PHONE}\n<b>hi</b> & bye",
        "/send ١٢٣٤٥٦٧٨٩ hello",
        "/send abc hello",
        "/send " + "1" * 31 + " hello",
        "/devices add",
        "/devices add zz",
        "/devices add 6622a8bbd963898821ebf934 extra",
        "/devices add 6622A8BBD963898821EBF934",
        "/messages ٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣",
        "/messages ²³⁴",
        "/messages +1 (212) 555",
        "/messages <b>Telegram</b>",
        "/services <b>",
        "/plans <code>&",
        "/rent Telegram & <b>",
        "/sms " + "s" * 101,
        "/sms <b>&</b>",
        "/",
        "//",
        "/ start",
        "/unknown",
        "/" + "x" * 4000,
    ]
    return texts


# ---------------------------------------------------------------- the world


@dataclass
class World:
    harness: Harness
    gotsms: FakeGotSMS
    gosms: FakeGoSMS
    caplog: pytest.LogCaptureFixture
    rows: dict[int, int] = field(default_factory=dict)
    fed: dict[str, int] = field(default_factory=dict)

    @property
    def tg(self) -> Any:
        return self.harness.tg

    def count(self, kind: str) -> None:
        self.fed[kind] = self.fed.get(kind, 0) + 1

    def fresh_budget(self) -> None:
        """The fuzzing is not about rate limits: every input starts with a full budget."""
        self.gotsms.reset_rate_limits()
        self.harness.deps.clients.http.rate_limits.quotas.clear()

    async def press_data(self, user_id: int, prefix: str) -> None:
        for message in reversed(self.tg.bot_messages(user_id)):
            for row in message.buttons:
                for button in row:
                    data = button.callback_data
                    if data is not None and data.startswith(prefix):
                        await self.harness.feed(
                            self.tg.callback_update(user_id, message.message_id, data)
                        )
                        return
        raise AssertionError(f"no button {prefix!r} for {user_id}")

    def problems(self, since: int, since_log: int, label: str) -> list[str]:
        found = []
        calls: list[Call] = self.tg.calls[since:]
        for call in calls:
            # an unchanged card is answered "not modified", and `show` takes that as done
            if call.http_status != 200 and "message is not modified" not in (
                call.description or ""
            ):
                found.append(f"{call.method} -> {call.http_status} {call.description}")
        for record in self.caplog.records[since_log:]:
            if record.levelno >= logging.ERROR or "Telegram refused" in record.getMessage():
                found.append(f"log {record.levelname}: {record.getMessage()}")
        return [f"{label}: {p}" for p in found]


Setup = Callable[[World, int], Awaitable[None]]


async def idle(world: World, user_id: int) -> None:
    await world.harness.send(user_id, "/cancel")


async def as_is(world: World, user_id: int) -> None:
    """No setup: the press or text lands in whatever state the user is in."""


async def token_flow(world: World, user_id: int) -> None:
    await world.harness.send(user_id, "/token")
    await world.press_data(user_id, "tok:gotsms")


async def rent_area_code(world: World, user_id: int) -> None:
    await world.harness.send(user_id, "/rent telegram")
    await world.press_data(user_id, "gpk:")


async def send_phone(world: World, user_id: int) -> None:
    await world.harness.send(user_id, "/send")


async def send_text(world: World, user_id: int) -> None:
    await world.harness.send(user_id, f"/send {PHONE}")


async def send_device(world: World, user_id: int) -> None:
    await world.harness.send(user_id, f"/send {PHONE} Hello")


async def send_sim(world: World, user_id: int) -> None:
    await send_device(world, user_id)
    await world.press_data(user_id, f"sv:{world.rows[user_id]}")


async def send_confirm(world: World, user_id: int) -> None:
    await send_sim(world, user_id)
    await world.press_data(user_id, "sm:1")


async def notify_threshold(world: World, user_id: int) -> None:
    await world.harness.send(user_id, "/notify")
    await world.press_data(user_id, "nt:threshold")


async def devices_add(world: World, user_id: int) -> None:
    await world.harness.send(user_id, "/devices")
    await world.press_data(user_id, "dl:add")


async def language_chosen(world: World, user_id: int) -> None:
    await world.harness.send(user_id, "/lang")
    await world.press_data(user_id, "lang:en" if user_id != RU else "lang:ru")


STATES: tuple[Setup, ...] = (
    idle,
    token_flow,
    rent_area_code,
    send_phone,
    send_text,
    send_device,
    send_sim,
    send_confirm,
    notify_threshold,
    devices_add,
)


async def make_world(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> World:
    world = World(harness, gotsms, gosms, caplog)
    gosms.per_endpoint_rps = 0
    gosms.add_account(OTHER_GOSMS)
    gotsms.add_account(OTHER_GOTSMS)
    for user_id, language, gosms_token, gotsms_token in (
        (EN, "en", GOSMS_TOKEN, GOTSMS_TOKEN),
        (RU, "ru", GOSMS_TOKEN, GOTSMS_TOKEN),
        (OTHER, "en", OTHER_GOSMS, OTHER_GOTSMS),
    ):
        harness.tg.user(user_id, first_name="<b>&Eve</b>", language_code=language)
        await harness.send(user_id, "/start")
        device_id = gosms.add_device(gosms_token, name=f"Phone <{user_id}> & co")
        async with harness.deps.session_factory() as session:
            credentials = CredentialRepo(session, harness.deps.cipher)
            await credentials.save(user_id, Service.GOSMS, gosms_token)
            await credentials.save(user_id, Service.GOTSMS, gotsms_token)
            device = await DeviceRepo(session).add(user_id, device_id, f"Phone <{user_id}>")
            await session.commit()
            world.rows[user_id] = device.id
    plan = gotsms.plan_by("Telegram", "day", 1)["id"]
    for token in (GOTSMS_TOKEN, OTHER_GOTSMS):
        rent = gotsms.create_rent(token, plan)
        gotsms.inject_message(rent["id"], "Your code is 123456 <b>&</b>")
    gosms.add_sms(GOSMS_TOKEN, message="<i>hi</i> & `x`", phone_number="79990001122")
    world.fresh_budget()
    return world


async def feed_text(
    world: World, user_id: int, state: Setup, text: str, kind: str, *, group: int | None = None
) -> list[str]:
    world.fresh_budget()
    await state(world, user_id)
    since, since_log = len(world.tg.calls), len(world.caplog.records)
    if group is None:
        update = world.tg.message_update(user_id, text)
    else:
        update = world.tg.message_update(user_id, text, chat_id=group, chat_type="group")
    chat_id = group if group is not None else user_id
    await world.harness.feed(update)
    world.count(kind)
    where = f" in group {group}" if group is not None else ""
    label = f"{kind} in {state.__name__}{where} from {user_id}: {text[:80]!r}"
    problems = world.problems(since, since_log, label)
    message_id = update["message"]["message_id"]
    answered = any(
        call.ok
        and (
            (
                call.method in ("sendMessage", "editMessageText")
                and call.params["chat_id"] == chat_id
            )
            or (call.method == "deleteMessage" and call.params.get("message_id") == message_id)
        )
        for call in world.tg.calls[since:]
    )
    if not answered:
        problems.append(f"{label}: no answer")
    return problems


async def feed_press(
    world: World, user_id: int, state: Setup, data: str, message_id: int | None = None
) -> list[str]:
    world.fresh_budget()
    await state(world, user_id)
    since, since_log = len(world.tg.calls), len(world.caplog.records)
    target = message_id if message_id is not None else world.harness.last(user_id).message_id
    update = world.tg.callback_update(user_id, target, data)
    await world.harness.feed(update)
    world.count("callback")
    label = f"press in {state.__name__} from {user_id}: {data!r}"
    problems = world.problems(since, since_log, label)
    if not world.tg.callback_answers[update["callback_query"]["id"]].answered:
        problems.append(f"{label}: not answered")
    return problems


def report(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


# ---------------------------------------------------------------- the tests


async def test_generated_texts_in_every_dialog_state(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(harness, gotsms, gosms, caplog)
    inputs = (
        [("unicode", t) for t in draw(UNICODE_TEXT, 60)]
        + [("mixed", t) for t in draw(MIXED_TEXT, 40)]
        + [("html", t) for t in draw(HTML_TEXT, 40)]
        + [("huge", t) for t in draw(HUGE_TEXT, 20)]
    )
    problems: list[str] = []
    for number, (kind, text) in enumerate(inputs):
        user_id = RU if number % 3 == 2 else EN
        for shift in (0, 5):  # two different states for each text
            state = STATES[(number + shift) % len(STATES)]
            problems += await feed_text(world, user_id, state, text, kind)
    for text in SPECIAL_TEXTS:
        for state in STATES:
            problems += await feed_text(world, EN, state, text, "special")
    report(problems)
    assert sum(world.fed.values()) >= 450, world.fed


async def test_every_command_with_bad_arguments_in_every_state(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(harness, gotsms, gosms, caplog)
    problems: list[str] = []
    for number, text in enumerate(command_inputs(harness.tg.bot_username)):
        user_id = RU if number % 4 == 3 else EN
        for shift in (0, 5):  # two different states for each command
            state = STATES[(number + shift) % len(STATES)]
            problems += await feed_text(world, user_id, state, text, "command")
    for name, _description in COMMANDS:  # in a group: answered there, tokens refused
        for text in (f"/{name}", f"/{name}@{harness.tg.bot_username} x <b>", f"/{name} gotsms x"):
            problems += await feed_text(world, EN, as_is, text, "group command", group=-1009)
    report(problems)
    assert world.fed["command"] >= len(COMMANDS) * 22, world.fed


def forged_callbacks(world: World, other_confirmations: dict[str, str]) -> list[str]:
    """50+ callback_data strings a real keyboard of this user never carries now."""
    other_row = world.rows[OTHER]
    uuid_short = tkb.short_id("0f8fad5b-d9cb-469f-a165-70867728950e")
    forged = [
        # other users' ids
        gkb.DeviceCb(action="o", row=other_row).pack(),
        gkb.DeviceCb(action="x", row=other_row).pack(),
        gkb.DeviceCb(action="f", row=other_row).pack(),
        gkb.DeviceCb(action="on", row=other_row).pack(),
        gkb.SendDeviceCb(row=other_row).pack(),
        *(
            ConfirmCb(action=action, id=confirmation, ok=ok).pack()
            for action, confirmation in other_confirmations.items()
            for ok in (True, False)
        ),
        # unknown prefixes and no structure at all
        "",
        "zz:1",
        "menu",
        "menu:",
        "menu:nope",
        "::::",
        "cf",
        "🙂",
        "<b>&</b>",
        # wrong types
        "gpr:abc",
        "gpr:0",
        "gpr:-5",
        "gpr:" + "9" * 60,
        "sl:x",
        "sl:" + "9" * 60,
        "dv:o:abc",
        "dv:o:" + "9" * 59,
        "sv:1.5",
        "sv:" + "9" * 61,
        "sm:9",
        "cf:logout:abc:maybe",
        "grl:a:-1",
        "grl:a:" + "9" * 58,
        "grl:z:1",
        "gms:" + "9" * 50 + "::",
        "nt:toggle:__class__",
        "lang:xx",
        "tok:nope",
        "out:nobody",
        # exactly 64 bytes
        "menu:" + "x" * 59,
        "cf:gr:" + "A" * 51 + ":1:1",
        "é" * 32,
        "grc:o:" + "~" + "a" * 50 + ":a:1",
        "dl:" + "y" * 61,
        # valid prefixes, garbage fields
        "grc:o:garbage:a:1",
        "grc:w:~..:a:1",
        "grc:r:~../../rents:a:1",
        "grc:f:~x/../refund:a:1",
        f"grc:q:{uuid_short}:a:1",
        f"grc:o:{uuid_short}:a:1",
        "grm:!!!:",
        f"grm:{uuid_short}:!!!",
        "gtr:a:b",
        f"gtr:{uuid_short}:{uuid_short}",
        "gpk:x:y",
        f"gpk:{uuid_short}:{uuid_short}",
        "gpl:p:~x:z:q:w:1",
        f"gpl:p:{uuid_short}:d:s:!!:1",
        "gms:1:~x:abc",
        "gms:1::١٢٣",
        "gcd:r:zzzz",
        "gcd:q:",
        "gac:z",
        "gac:s",
        "gsv:z:1:",
        "gsv:p:1:deadbeef",
        "sc:o:zzz:0:",
        "sc:d:<b>:0:",
        "sc:o:6622a8bbd963898821ebf934:0:",
        "sc:d:6622a8bbd963898821ebf934:-1:",
        "sl:1:cafebabe",
        "dl:nope",
        "cf:ss:nope:1",
        "cf:zz:nope:1",
    ]
    assert all(len(data.encode()) <= 64 for data in forged), [
        d for d in forged if len(d.encode()) > 64
    ]
    return forged


async def test_forged_and_stale_buttons(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(harness, gotsms, gosms, caplog)
    async with harness.deps.session_factory() as session:
        repo = ConfirmationRepo(session)
        other_confirmations = {
            action: await repo.create(OTHER, action, {"rent_id": "x", "services": ["gosms"]})
            for action in (
                tkb.RENT,
                tkb.REFUND,
                tkb.MOVE,
                gkb.SEND,
                gkb.SMS_DELETE,
                gkb.DEVICE_DELETE,
                "logout",
            )
        }
    forged = forged_callbacks(world, other_confirmations)
    problems: list[str] = []
    for number, data in enumerate(forged):
        user_id = RU if number % 3 == 2 else EN
        for state in STATES:  # a button may mean something in one dialog state only
            problems += await feed_press(world, user_id, state, data)

    # Stale: every button of a dialog, pressed again after the dialog ended.
    stale: list[tuple[int, str]] = []
    for state in (
        rent_area_code,
        send_confirm,
        token_flow,
        notify_threshold,
        devices_add,
        language_chosen,
    ):
        await state(world, EN)
        for message in world.tg.bot_messages(EN)[-3:]:
            keyboards = [message.reply_markup, *(v.reply_markup for v in message.history)]
            stale += [
                (message.message_id, b.callback_data)
                for markup in keyboards
                for row in buttons_of(markup)
                for b in row
                if b.callback_data is not None
            ]
    await harness.send(EN, "/cancel")
    for message_id, data in stale:
        problems += await feed_press(world, EN, idle, data, message_id)
    report(problems)
    assert world.fed["callback"] >= len(forged) * len(STATES) + len(stale), world.fed
    assert len(forged) >= 50


# ---------------------------------------------------------------- focused regressions


async def test_a_forged_rent_id_cannot_walk_the_api_path(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    """`~` marks a whole (non-UUID) id in a button; `~../rents/ID/refund#` once turned the wake-up
    call `POST /numbers/{id}/wake-up` into `POST /rents/ID/refund`: a refund without confirmation,
    in exactly 64 bytes."""
    world = await make_world(harness, gotsms, gosms, caplog)
    rent_id = gotsms.rents_of(GOTSMS_TOKEN)[0]["id"]
    forged = [
        f"grc:w:~../rents/{rent_id}/refund#:a:1",
        f"grc:r:~../rents/{rent_id}/refund?:a:1",
        "grm:~..%2F..%2Faccount:",
        f"gtr:~../../rents/{rent_id}:~x",
    ]
    before = len(gotsms.requests)
    for data in forged:
        assert len(data.encode()) <= 64
        assert not await feed_press(world, EN, idle, data)
        answer = list(harness.tg.callback_queries.values())[-1]
        assert answer.show_alert
        assert answer.text == "This button is out of date. Send /start for a fresh menu."
    assert gotsms.requests[before:] == [], "a forged id never reaches the API"
    assert gotsms.rents_of(GOTSMS_TOKEN)[0]["status"] == "active"
    assert gotsms.balance(GOTSMS_TOKEN) == 99.0


async def test_a_row_id_beyond_sqlite_integers_is_a_stale_button(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    """`dv:o:999…9` used to reach SQLite and fail with OverflowError (a traceback)."""
    world = await make_world(harness, gotsms, gosms, caplog)
    huge = "9" * 40
    for state, data in ((idle, f"dv:o:{huge}"), (send_device, f"sv:{huge}"), (idle, "dv:x:-1")):
        assert not await feed_press(world, EN, state, data)
        answer = list(harness.tg.callback_queries.values())[-1]
        assert answer.show_alert, data
        assert answer.text == "This button is out of date. Send /start for a fresh menu."


async def test_the_same_choice_pressed_twice_is_not_an_error(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    """A second press of a language or a token service edited the message to the same text:
    Telegram's "message is not modified" became "Telegram refused that action"."""
    world = await make_world(harness, gotsms, gosms, caplog)
    for command, data in (("/lang", "lang:en"), ("/token", "tok:gosms")):
        await harness.send(EN, command)
        message_id = harness.last(EN).message_id
        for _ in range(2):
            assert not await feed_press(world, EN, as_is, data, message_id), data
        assert harness.last(EN).message_id == message_id, "no extra message"
    assert "Send your GoSMS API token now." in harness.last(EN).text


async def test_digits_of_other_scripts_are_not_ascii_digits(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    """`\\d` and `isdigit()` take "١٢٣" and "²": an area code "١٢٣" went to the rent question,
    and /messages ٣٣٣ filtered by Arabic-Indic digits."""
    world = await make_world(harness, gotsms, gosms, caplog)
    assert not await feed_text(world, EN, rent_area_code, "١٢٣", "special")
    assert "An area code is 2 to 5 digits" in harness.last(EN).text
    await harness.send(EN, "/messages +٧ ٩٩٩")
    assert gotsms.requests[-1].query["phone"] == "7999"
    assert "number: 7999" in harness.last(EN).text


async def test_a_threshold_that_rounds_to_zero_is_refused(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(harness, gotsms, gosms, caplog)
    for text in ("0.001", "1e-9", "0.004"):
        assert not await feed_text(world, EN, notify_threshold, text, "special")
        assert "Send a positive amount like 5 or 2.50" in harness.last(EN).text
    assert not await feed_text(world, EN, notify_threshold, "0.006", "special")
    assert "I'll warn you when your GotSMS balance drops below 0.01." in harness.last(EN).text


# ---------------------------------------------------------------- messages that are not text

BUTTONS_HINT = "Please choose with the buttons above, or /cancel."
# What each dialog step answers a photo, a sticker, a file, a voice note, a location...: what it
# understands there. The English text is the gettext id; the Russian one comes from the catalog.
NOT_TEXT_HINTS: dict[Setup, str] = {
    idle: "I understand commands and text messages. /help lists what I can do.",
    token_flow: "Send the token as text, or /cancel.",
    rent_area_code: "Send the area code as digits, or /cancel.",
    send_phone: "Send the phone number as text, or /cancel.",
    send_text: "An SMS carries only text: type it as a message, or /cancel.",
    send_device: BUTTONS_HINT,
    send_sim: BUTTONS_HINT,
    send_confirm: BUTTONS_HINT,
    notify_threshold: "Send the amount as text, like 5 or 2.50, or /cancel.",
    devices_add: "Please send the device ID as text, or /cancel.",
}
OTHER_STEP_HINT = "I'm waiting for your answer: a text or a button press. /cancel stops."
LANGUAGES = {EN: "en", RU: "ru"}


def localized(world: World, user_id: int, message_id: str) -> str:
    text = world.harness.deps.i18n.gettext(message_id, locale=LANGUAGES[user_id])
    if user_id == RU:
        assert text != message_id, f"no Russian for {message_id!r}"
    return text


async def dialog(world: World, user_id: int) -> tuple[str | None, dict[str, Any]]:
    """The chat's dialog step and its data, as stored."""
    key = StorageKey(bot_id=world.harness.bot.id, chat_id=user_id, user_id=user_id)
    storage = world.harness.dp.storage
    return await storage.get_state(key), await storage.get_data(key)


async def feed_kind(
    world: World, user_id: int, where: str, kind: str, expected: str | None
) -> list[str]:
    """A message of `kind` (not text): answered with `expected` alone (None: not answered at
    all), no call refused, nothing logged at ERROR, the dialog step and its data unchanged."""
    before = await dialog(world, user_id)
    since, since_log = len(world.tg.calls), len(world.caplog.records)
    await world.harness.feed(world.tg.content_update(user_id, kind))
    world.count(kind)
    label = f"{kind} in {where} from {user_id}"
    problems = world.problems(since, since_log, label)
    answers = [
        call.params.get("text")
        for call in world.tg.calls[since:]
        if call.ok and call.method == "sendMessage" and call.params["chat_id"] == user_id
    ]
    wanted = [] if expected is None else [expected]
    if answers != wanted:
        problems.append(f"{label}: answered {answers!r}, expected {wanted!r}")
    if (after := await dialog(world, user_id)) != before:
        problems.append(f"{label}: the dialog changed from {before!r} to {after!r}")
    return problems


async def press_where(world: World, user_id: int, wanted: Callable[[str], bool]) -> None:
    for message in reversed(world.tg.bot_messages(user_id)):
        for button in (b for row in message.buttons for b in row):
            if button.callback_data is not None and wanted(button.callback_data):
                update = world.tg.callback_update(user_id, message.message_id, button.callback_data)
                await world.harness.feed(update)
                return
    raise AssertionError(f"no such button for {user_id}")


async def wanted_input_still_works(world: World, user_id: int, setup: Setup) -> list[str]:
    """After the photos and stickers, the input the step asked for is taken as that input."""
    tg, label = world.tg, f"the input {setup.__name__} wanted, from {user_id}"
    world.fresh_budget()
    since = len(tg.calls)
    expected_state: str | None = None
    done = True
    if setup is idle:
        await world.harness.send(user_id, "/help")
        done = "/send" in world.harness.last(user_id).text
    elif setup is token_flow:
        update = tg.message_update(user_id, GOTSMS_TOKEN)
        await world.harness.feed(update)
        done = tg.message(user_id, update["message"]["message_id"]).deleted
    elif setup is rent_area_code:
        await world.harness.send(user_id, "212")
        done = any(b.startswith("cf:") for b in data_of(world.harness.last(user_id)))
    elif setup is send_phone:
        await world.harness.send(user_id, PHONE)
        expected_state = "SendFlow:text"
    elif setup is send_text:
        await world.harness.send(user_id, "Hello")
        expected_state = "SendFlow:device"
    elif setup is send_device:
        await world.press_data(user_id, f"sv:{world.rows[user_id]}")
        expected_state = "SendFlow:sim"
    elif setup is send_sim:
        await world.press_data(user_id, "sm:1")
        expected_state = "SendFlow:confirm"
    elif setup is send_confirm:
        sent = len(world.gosms.sms_of(GOSMS_TOKEN))
        await press_where(world, user_id, lambda d: d.startswith("cf:") and d.endswith(":1"))
        done = len(world.gosms.sms_of(GOSMS_TOKEN)) == sent + 1
    elif setup is notify_threshold:
        await world.harness.send(user_id, "5")
        async with world.harness.deps.session_factory() as session:
            threshold = (await NotificationRepo(session).get(user_id)).balance_threshold
        done = threshold == 5
    elif setup is devices_add:
        device_id = world.gosms.add_device(GOSMS_TOKEN, name=f"New phone of {user_id}")
        await world.harness.send(user_id, device_id)
        async with world.harness.deps.session_factory() as session:
            done = device_id in {d.device_id for d in await DeviceRepo(session).list(user_id)}
    else:
        raise AssertionError(f"no follow-up for {setup.__name__}")
    problems = world.problems(since, len(world.caplog.records), label)  # (logs: checked later)
    state, _data = await dialog(world, user_id)
    if state != expected_state or not done:
        problems.append(f"{label}: not taken (step {state!r}, done {done})")
    return problems


def data_of(message: Any) -> list[str]:
    return [b.callback_data for row in message.buttons for b in row if b.callback_data]


async def test_every_message_kind_in_every_dialog_state(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    """A photo, a sticker, a file, a voice note, a location, a contact, a poll, a dice...: in
    every dialog step, in English and in Russian, each gets the short answer of that step (what
    it understands there), nothing fails or is logged at ERROR, the step keeps its place and
    data, and the input the step asked for still works after all of them."""
    assert set(NOT_TEXT_HINTS) == set(STATES)
    world = await make_world(harness, gotsms, gosms, caplog)
    since_log = len(caplog.records)
    problems: list[str] = []
    for user_id in (EN, RU):
        for setup in STATES:
            world.fresh_budget()
            await setup(world, user_id)
            expected = localized(world, user_id, NOT_TEXT_HINTS[setup])
            for kind in CONTENT_KINDS:
                problems += await feed_kind(world, user_id, setup.__name__, kind, expected)
            problems += await wanted_input_still_works(world, user_id, setup)
    problems += world.problems(0, since_log, "the whole run")
    report(problems)
    assert sum(world.fed.values()) == 2 * len(STATES) * len(CONTENT_KINDS) >= 250, world.fed


async def test_a_step_without_its_own_hint_and_telegrams_own_notes(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, caplog: pytest.LogCaptureFixture
) -> None:
    """A step that has no hint of its own (a future dialog) gets the generic one; what Telegram
    itself posts in the chat (a pin, the auto-delete timer) gets no answer in any step; a photo
    in a group is not for the bot; a caption is not taken for the text a step wants."""
    world = await make_world(harness, gotsms, gosms, caplog)
    problems: list[str] = []
    for user_id in (EN, RU):
        key = StorageKey(bot_id=harness.bot.id, chat_id=user_id, user_id=user_id)
        await harness.dp.storage.set_state(key, "FutureFlow:step")
        expected = localized(world, user_id, OTHER_STEP_HINT)
        for kind in ("photo", "document", "contact"):
            problems += await feed_kind(world, user_id, "FutureFlow:step", kind, expected)
        for setup in STATES:
            await setup(world, user_id)
            for kind in SERVICE_KINDS:
                problems += await feed_kind(world, user_id, setup.__name__, kind, None)

    since, since_log = len(world.tg.calls), len(caplog.records)
    for kind in CONTENT_KINDS:
        await harness.feed(world.tg.content_update(EN, kind, chat_id=-1009, chat_type="group"))
    problems += world.problems(since, since_log, "in a group")
    if world.tg.calls[since:]:
        problems.append(f"in a group: {[c.method for c in world.tg.calls[since:]]}")

    await send_phone(world, EN)
    await harness.feed(world.tg.content_update(EN, "photo", caption=PHONE))
    assert harness.last(EN).text == NOT_TEXT_HINTS[send_phone]
    assert (await dialog(world, EN))[0] == "SendFlow:phone"
    report(problems)
