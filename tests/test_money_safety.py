"""Money safety: every paid or destructive action runs at most once per confirmation.

For rent, refund, plan change, SMS send, SMS delete, device delete and logout the bot is brought
to its confirmation, then Yes is pressed twice within 50 ms (the first press still waiting for
the API) and twice from two dispatcher tasks at once. The fake APIs count the paid or
destructive requests: exactly one; the user sees one result and a polite "already used" alert
for the other press, never silence. Stale confirmations — Yes after Cancel, after /cancel, after
a newer question, and Cancel after Yes — do nothing and say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.db.models import Service
from bot.db.repo import CredentialRepo
from tests.conftest import GOSMS_TOKEN, GOTSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import CallbackQueryRecord

USER = 8101
API_LATENCY = 0.2  # the first press is still waiting for the API when the second arrives
ALREADY = "already used"


@dataclass
class World:
    harness: Harness
    gotsms: FakeGotSMS
    gosms: FakeGoSMS
    facts: dict[str, Any]

    def fresh_budget(self) -> None:
        """Rate limits are not under test here: each question starts with a full budget."""
        self.gotsms.reset_rate_limits()
        self.harness.deps.clients.http.rate_limits.quotas.clear()

    def set_latency(self, seconds: float) -> None:
        self.gotsms.set_latency(seconds)
        self.gosms.set_latency(seconds)


@dataclass(frozen=True)
class Action:
    setup: Callable[[World], Awaitable[None]]
    ask: Callable[[World], Awaitable[None]]  # brings a fresh confirmation question
    yes: str  # the label of its Yes button
    runs: Callable[[World], Awaitable[int]]  # how many times the action reached its target
    result: str  # a piece of the result the user sees


async def store(world: World, service: Service, token: str) -> None:
    world.harness.tg.user(USER, language_code="en")
    await world.harness.send(USER, "/help")  # the user row
    async with world.harness.deps.session_factory() as session:
        await CredentialRepo(session, world.harness.deps.cipher).save(USER, service, token)
        await session.commit()


def posts(gotsms: FakeGotSMS, path: str) -> int:
    return sum(1 for r in gotsms.requests if r.method == "POST" and r.path.endswith(path))


# --------------------------------------------------------------------------- the actions


async def gotsms_user(world: World) -> None:
    await store(world, Service.GOTSMS, GOTSMS_TOKEN)


async def gotsms_user_with_rent(world: World) -> None:
    plan = world.gotsms.plan_by("Telegram", "day", 1)
    world.facts["rent"] = world.gotsms.create_rent(GOTSMS_TOKEN, plan["id"])
    await gotsms_user(world)


async def ask_rent(world: World) -> None:
    await world.harness.send(USER, "/rent telegram")
    await world.harness.press(USER, "USA · 1 day · 1.00")
    await world.harness.press(USER, "Any area code")


async def open_rent_card(world: World) -> None:
    await world.harness.send(USER, "/rents")
    await world.harness.press(USER, world.facts["rent"]["phone"])


async def ask_refund(world: World) -> None:
    await open_rent_card(world)
    await world.harness.press(USER, "Refund")


async def ask_move(world: World) -> None:
    await open_rent_card(world)
    await world.harness.press(USER, "Longer plan")
    await world.harness.press(USER, "1 month — 9.99")


async def gosms_user_with_sms(world: World) -> None:
    old = int(world.gosms.now()) - 3600  # old enough to be deleted
    world.facts["sms"] = world.gosms.add_sms(
        GOSMS_TOKEN, message="Hello", phone_number="79990001122", time_create=old, status=4
    )
    await store(world, Service.GOSMS, GOSMS_TOKEN)


async def ask_sms_delete(world: World) -> None:
    await world.harness.send(USER, "/sms")
    await world.harness.press(USER, "1 ✅")
    await world.harness.press(USER, "Delete")


async def gosms_user_with_device(world: World) -> None:
    device_id = world.gosms.add_device(GOSMS_TOKEN, name="Poco")
    world.facts["device"] = device_id
    await store(world, Service.GOSMS, GOSMS_TOKEN)
    await world.harness.send(USER, f"/devices add {device_id}")
    assert "Poco" in world.harness.last(USER).text


async def ask_device_delete(world: World) -> None:
    await world.harness.send(USER, "/devices")
    await world.harness.press(USER, "Poco")
    await world.harness.press(USER, "Delete from GoSMS")


async def gosms_user(world: World) -> None:
    world.gosms.add_device(GOSMS_TOKEN)
    await store(world, Service.GOSMS, GOSMS_TOKEN)


async def ask_send(world: World) -> None:
    await world.harness.send(USER, "/send 79991234567 Once only")


async def ask_logout(world: World) -> None:
    await world.harness.send(USER, "/logout")
    await world.harness.press(USER, "GotSMS")


async def token_forgotten(world: World) -> int:
    async with world.harness.deps.session_factory() as session:
        token = await CredentialRepo(session, world.harness.deps.cipher).token(USER, Service.GOTSMS)
    return int(token is None)


async def rents_made(world: World) -> int:
    return posts(world.gotsms, "/rents")


async def refunds(world: World) -> int:
    return posts(world.gotsms, "/refund")


async def moves(world: World) -> int:
    return posts(world.gotsms, "/transition")


async def sms_deletes(world: World) -> int:
    return len(world.gosms.requests_for(GOSMS_TOKEN, "/sms/del"))


async def device_deletes(world: World) -> int:
    return len(world.gosms.requests_for(GOSMS_TOKEN, "/devices/del"))


async def sms_sends(world: World) -> int:
    return len(world.gosms.requests_for(GOSMS_TOKEN, "/sms/send"))


ACTIONS: dict[str, Action] = {
    "rent": Action(gotsms_user, ask_rent, "Rent for 1.00", rents_made, "Your number:"),
    "refund": Action(gotsms_user_with_rent, ask_refund, "Yes, refund", refunds, "Refunded"),
    "plan change": Action(gotsms_user_with_rent, ask_move, "Pay 9.99", moves, "now on the"),
    "SMS delete": Action(
        gosms_user_with_sms, ask_sms_delete, "Yes, delete", sms_deletes, "The SMS is deleted"
    ),
    "device delete": Action(
        gosms_user_with_device,
        ask_device_delete,
        "Yes, delete",
        device_deletes,
        "is deleted from GoSMS",
    ),
    "SMS send": Action(gosms_user, ask_send, "Send", sms_sends, "Status: ⏳ waiting"),
    "logout": Action(
        gotsms_user, ask_logout, "Yes, disconnect", token_forgotten, "is disconnected"
    ),
}


# --------------------------------------------------------------------------- helpers


@pytest.fixture
async def world(harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> World:
    return World(harness, gotsms, gosms, {})


async def ask(world: World, action: Action) -> None:
    world.fresh_budget()
    await action.ask(world)
    assert action.yes in " ".join(world.harness.last(USER).button_texts())


def answer(world: World, update: dict[str, Any]) -> CallbackQueryRecord:
    record = world.harness.tg.callback_queries[update["callback_query"]["id"]]
    assert record.answered, "every press is answered, never silence"
    return record


def refused(world: World, update: dict[str, Any]) -> bool:
    record = answer(world, update)
    return record.show_alert and ALREADY in (record.text or "")


def results_seen(world: World, result: str) -> int:
    """How many times a result appeared in the chat, counting every version of every message."""
    seen = 0
    for message in world.harness.tg.bot_messages(USER):
        versions = [v.text for v in message.history] + [message.text]
        seen += sum(1 for text in versions if result in text)
    return seen


async def within_50_ms(world: World, first: dict[str, Any], second: dict[str, Any]) -> None:
    """A double tap: the second press arrives 30 ms after the first (which, for the actions
    that call an API, is still waiting for it)."""
    task = asyncio.create_task(world.harness.feed(first))
    await asyncio.sleep(0.03)
    await world.harness.feed(second)
    await task


async def at_once(world: World, first: dict[str, Any], second: dict[str, Any]) -> None:
    """Two dispatcher tasks feed the same press at the same moment."""
    await asyncio.gather(world.harness.feed(first), world.harness.feed(second))


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("how", [within_50_ms, at_once], ids=["within 50 ms", "at once"])
@pytest.mark.parametrize("name", list(ACTIONS))
async def test_yes_pressed_twice_runs_once(
    world: World, name: str, how: Callable[[World, dict[str, Any], dict[str, Any]], Awaitable[None]]
) -> None:
    action = ACTIONS[name]
    await action.setup(world)
    await ask(world, action)
    assert await action.runs(world) == 0, "nothing runs before yes"
    first = world.harness.press_update(USER, action.yes)
    second = world.harness.press_update(USER, action.yes)  # the same button, pressed again
    world.set_latency(API_LATENCY)
    await how(world, first, second)
    world.set_latency(0)
    assert await action.runs(world) == 1
    assert [refused(world, first), refused(world, second)].count(True) == 1
    assert results_seen(world, action.result) == 1, "one result, shown once"


@pytest.mark.parametrize("name", list(ACTIONS))
async def test_stale_confirmations_do_nothing(world: World, name: str) -> None:
    action = ACTIONS[name]
    harness = world.harness
    await action.setup(world)

    await ask(world, action)  # Cancel, then Yes
    yes = harness.press_update(USER, action.yes)
    cancelled = await harness.press(USER, "Cancel")
    assert cancelled.text == "Cancelled"
    await harness.feed(yes)
    assert refused(world, yes)

    await ask(world, action)  # /cancel, then Yes
    yes = harness.press_update(USER, action.yes)
    await harness.send(USER, "/cancel")
    assert harness.last(USER).text.startswith("Cancelled")
    await harness.feed(yes)
    assert refused(world, yes)

    await ask(world, action)  # a newer question, then Yes on the older one
    older = harness.press_update(USER, action.yes)
    await ask(world, action)
    newer = harness.press_update(USER, action.yes)
    cancel_newer = harness.press_update(USER, "Cancel")
    await harness.feed(older)
    assert refused(world, older)
    assert await action.runs(world) == 0, "no stale press reached the API"

    await harness.feed(newer)  # the newest question still works, once
    assert not answer(world, newer).show_alert
    assert await action.runs(world) == 1
    shown = harness.tg.message(USER, newer["callback_query"]["message"]["message_id"]).text
    assert action.result in shown

    await harness.feed(cancel_newer)  # Cancel after Yes: too late, and the result stays
    assert refused(world, cancel_newer)
    assert harness.tg.message(USER, newer["callback_query"]["message"]["message_id"]).text == shown
    assert await action.runs(world) == 1


async def test_the_refusal_is_localized(world: World) -> None:
    await gotsms_user(world)
    await world.harness.send(USER, "/lang")
    await world.harness.press(USER, "Русский")
    await world.harness.send(USER, "/logout")
    await world.harness.press(USER, "GotSMS")
    presses = [world.harness.press_update(USER, "Да, отключить") for _ in range(2)]
    for update in presses:
        await world.harness.feed(update)
    second = answer(world, presses[1])
    assert second.show_alert
    assert "уже использовано" in (second.text or "")
    assert await token_forgotten(world) == 1


async def test_when_telegram_fails_after_yes_the_user_is_not_told_to_simply_try_again(
    world: World,
) -> None:
    action = ACTIONS["rent"]
    await action.setup(world)
    await ask(world, action)
    world.harness.tg.fail_next("editMessageText", 500, "Internal Server Error", times=20)
    press = world.harness.press_update(USER, action.yes)
    await world.harness.feed(press)
    assert await action.runs(world) == 1
    answer(world, press)
    told = world.harness.last(USER).text
    assert "may have been done" in told
    assert "/rents" in told
