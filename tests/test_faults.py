"""Faults everywhere at once: the APIs answer 5xx, 429 and slower than the client's timeout, the
Bot API answers 429 (retry_after) and 5xx. Every command still answers, every push arrives once,
and an API that stays down is backed off per user and recovered from without help.

Rates (fixed seeds, so a run is reproducible): GotSMS and GoSMS 30 % 500, 5 % 429, 10 % of the
answers 1 s late while the client gives an attempt 0.4 s; Telegram 20 % 429 (retry_after 1 s)
and 10 % 500. The user in these tests behaves like a person: an error message is an answer, and
after one they press the button (or send the command) again.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.api.http import RetryPolicy
from bot.app import build_deps, create_bot, create_dispatcher
from bot.config import Settings
from bot.db.models import Service
from bot.db.repo import CredentialRepo, DeviceRepo
from bot.poller import Poller
from bot.poller.alerts import DevicesJob
from bot.poller.codes import CodesJob, CodesTiming
from bot.poller.jobs import Job
from bot.poller.scheduler import Scheduler
from bot.poller.sender import OutboxSender
from bot.poller.sms import SmsJob
from bot.poller.writes import Writes
from bot.services.credentials import store_token
from bot.services.watch import watch_fresh_rent
from tests.conftest import Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import FakeTelegram, StoredMessage

ATTEMPT_TIMEOUT = 0.4
SLOW = 1.0  # a slow answer takes longer than a whole attempt may
assert SLOW > ATTEMPT_TIMEOUT
POLICY = RetryPolicy(
    attempts=3, backoff=0.05, attempt_timeout=ATTEMPT_TIMEOUT, deadline=2.5, max_inline_wait=3.0
)


def faults_on(tg: FakeTelegram, gotsms: FakeGotSMS, gosms: FakeGoSMS, seed: int) -> None:
    """The issue's rates on all three doubles, each with its own fixed seed."""
    gotsms.set_fault_rates(rate_5xx=0.3, rate_429=0.05, rate_slow=0.1, slow_seconds=SLOW, seed=seed)
    gosms.set_fault_rates(
        rate_5xx=0.3, rate_429=0.05, rate_slow=0.1, slow_seconds=SLOW, seed=seed + 1
    )
    tg.set_fault_rates(rate_429=0.2, rate_5xx=0.1, retry_after=1, seed=seed + 2)


# A short localized error is an answer; after one the user tries again.
RETRY_AFTER = re.compile(r"(?:Try again in|Попробуйте через) (\d+) (?:s|с)\b")
ERRORS = (
    "is not answering right now",
    "Too many requests to",
    "Telegram refused that action",
    "may have been done",  # after a Yes: "look at /rents before you try it again"
    "сейчас не отвечает",
    "Слишком много запросов к",
    "Telegram отклонил это действие",
    "возможно, уже выполнено",
)
NEVER = ("Traceback", "Exception", "Something went wrong", "I don't understand")


def gotsms_token(user_id: int) -> str:
    return f"gotsms-token-{user_id}-5f0e9d8c7b6a"


def gosms_token(user_id: int) -> str:
    return f"gosms-key-{user_id}-1a2b3c4d5e6f"


@pytest.fixture
async def harness(settings: Settings, tg: FakeTelegram) -> AsyncIterator[Harness]:
    """The real dispatcher with API attempts cut to 0.4 s, so a slow answer is a timeout."""
    deps = await build_deps(settings, api_policy=POLICY)
    bot = create_bot(settings)
    dp = create_dispatcher(deps)
    yield Harness(tg, deps, bot, dp)
    await bot.session.close()
    await deps.close()


@dataclass
class Person:
    """One Telegram user who acts and checks that every action got an answer."""

    h: Harness
    uid: int
    steps: list[str] = field(default_factory=list)
    errors_seen: int = 0

    @property
    def tg(self) -> FakeTelegram:
        return self.h.tg

    def transcript(self) -> str:
        lines = [f"steps: {self.steps}"]
        for m in self.tg.bot_messages(self.uid):
            lines += [f"  {m.message_id}: {m.text[:100]!r} {m.button_texts()}"]
            lines += [f"      was {v.text[:60]!r}" for v in m.history]
        for q in self.tg.callback_queries.values():
            if q.user_id == self.uid:
                lines.append(f"  press {q.data} on {q.message_id}: {q.answered} {q.text!r}")
        return "\n".join(lines)

    async def connect(self, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
        """Both tokens stored directly (the /token test connects through the chat)."""
        gotsms.add_account(gotsms_token(self.uid), balance=100.0)
        gosms.add_account(gosms_token(self.uid))
        self.tg.user(self.uid, language_code="en")
        async with self.h.deps.session_factory() as session:
            from bot.db.repo import UserRepo

            await UserRepo(session).upsert_seen(self.uid, self.uid, "en")
            repo = CredentialRepo(session, self.h.deps.cipher)
            await repo.save(self.uid, Service.GOTSMS, gotsms_token(self.uid))
            await repo.save(self.uid, Service.GOSMS, gosms_token(self.uid))
            await session.commit()

    async def send(self, text: str, *expect: str, tries: int = 8) -> StoredMessage | str:
        """Sends until one of `expect` is in the answer; every other answer must be an error."""
        for _attempt in range(tries):
            if (found := await self.once(text, None, expect)) is not None:
                return found
        raise AssertionError(f"{text}: no real answer after {tries} tries")

    async def press(self, label: str, *expect: str, tries: int = 8) -> StoredMessage | str:
        for _attempt in range(tries):
            if (found := await self.once(None, label, expect)) is not None:
                return found
        raise AssertionError(f"[{label}]: no real answer after {tries} tries")

    async def attempt(self, label: str, *expect: str) -> StoredMessage | str | None:
        """One press of a confirmation: its answer, or None after an error (the flow then
        starts over, as a person would)."""
        return await self.once(None, label, expect)

    async def connected(self) -> set[Service]:
        async with self.h.deps.session_factory() as session:
            return await CredentialRepo(session, self.h.deps.cipher).services(self.uid)

    async def press_on(self, message: StoredMessage, label: str, *expect: str) -> None:
        """Presses a button of one given message (the main menu) until a real answer comes."""
        [data] = [b.callback_data for row in message.buttons for b in row if label in b.text]
        assert data is not None
        for _attempt in range(8):
            update = self.tg.callback_update(self.uid, message.message_id, data)
            if await self.once(None, label, expect, update=update) is not None:
                return
        raise AssertionError(f"[{label}]: no real answer after 8 tries")

    async def once(
        self,
        text: str | None,
        label: str | None,
        expect: tuple[str, ...],
        *,
        update: dict[str, Any] | None = None,
    ) -> StoredMessage | str | None:
        """One action. The answer (new or edited message, or the press's alert) must come, must
        hold no traceback, and must be either expected (returned: the message, or the alert
        text) or a short error (None, after waiting what it asks)."""
        what = text if text is not None else f"[{label}]"
        before = self.tg.seq
        query_id = None
        if text is not None:
            await self.h.send(self.uid, text)
        else:
            assert label is not None
            update = update or self.h.press_update(self.uid, label)
            query_id = update["callback_query"]["id"]
            await self.h.feed(update)
        changed = [m for m in self.tg.bot_messages(self.uid) if m.seq > before]
        alert = ""
        if query_id is not None:
            record = self.tg.callback_queries.get(query_id)
            assert record is not None
            assert record.answered or changed, f"{what}: the press was not answered"
            alert = record.text or ""
        texts = [m.text for m in changed] + ([alert] if alert else [])
        if not texts and update is not None:  # a refresh that found nothing new: still shown
            pressed = update["callback_query"]["message"]["message_id"]
            texts = [self.tg.message(self.uid, pressed).text]
            changed = [self.tg.message(self.uid, pressed)]
        assert texts, f"{what}: silence"
        for shown in texts:
            assert not any(bad in shown for bad in NEVER), f"{what}: {shown!r}"
        self.steps.append(what)
        if any("may have gone through" in t or "may have been done" in t for t in texts):
            await asyncio.sleep(SLOW)  # "check before repeating": let a late request land
        for message in reversed(changed):
            if any(e in message.text for e in expect):
                return message
        if any(e in alert for e in expect):
            return alert
        assert any(e in t for t in texts for e in ERRORS), f"{what}: unexpected {texts!r}"
        self.errors_seen += 1
        wait = max((int(m.group(1)) for t in texts if (m := RETRY_AFTER.search(t))), default=0)
        await asyncio.sleep(min(wait, 3) + 0.05)
        return None


USED = "already used"
Scenario = Callable[["Person", FakeGotSMS, FakeGoSMS], Awaitable[None]]


async def general(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """/start, /help, /token (guided and one-liner) and /logout: the tokens connected through
    the chat itself."""
    gotsms.add_account(gotsms_token(p.uid), balance=100.0)
    gosms.add_account(gosms_token(p.uid))
    p.tg.user(p.uid, language_code="en")
    await p.send("/start", "I'm SMS Desk")
    await p.send("/help", "/devices —")
    for _attempt in range(8):  # the guided flow: an error ends it, so it starts over
        await p.send("/token", "Which service is the token for?")
        await p.press("GotSMS", "Send your GotSMS API token now.")
        if await p.once(gotsms_token(p.uid), None, ("GotSMS is connected",)):
            break
    else:
        raise AssertionError("the guided /token never connected")
    await p.send(f"/token gosms {gosms_token(p.uid)}", "GoSMS is connected")
    await p.send("/start", "See everything I can do with /help.")
    for _attempt in range(6):
        await p.send("/logout", "Which token should I disconnect?", "No token is connected")
        await p.press("Both", "Disconnect your")
        await p.attempt("Yes, disconnect", "Done: the", USED)
        if await p.connected() == set():
            break
    await p.send("/logout", "No token is connected")


async def settings(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """/cancel, /lang and /notify."""
    await p.connect(gotsms, gosms)
    await p.send("/send", "Send the phone number")
    await p.send("/cancel", "Cancelled.")
    await p.send("/cancel", "There is nothing to cancel.")
    await p.send("/lang", "Choose the language:")
    await p.press("Русский", "Язык: Русский")
    await p.send("/help", "/devices —")
    await p.send("/lang", "Выберите язык")
    await p.press("English", "Language: English")
    await p.send("/notify", "Tap a notification type")
    await p.press("New codes", "On", "Off")


async def menu(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """Every button of the main menu."""
    await p.connect(gotsms, gosms)
    start = await p.send("/start", "See everything I can do with /help.")
    assert isinstance(start, StoredMessage)
    for label, expect in [
        ("Rent a number", "Rent a number: choose the service."),
        ("My rentals", "No active rentals."),
        ("Codes", "No unread codes."),
        ("Balance", "Your GotSMS balance: 100.00"),
        ("Send SMS", "Send the phone number"),
        ("My SMS", "You have no SMS in GoSMS yet."),
        ("Devices", "You have no saved devices yet."),
        ("Connect a token", "Which service is the token for?"),
        ("Notifications", "Tap a notification type"),
        ("Language", "Choose the language:"),
        ("Help", "/devices —"),
        ("Disconnect a token", "Which token should I disconnect?"),
    ]:
        await p.press_on(start, label, expect)


async def catalog(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """/balance, /prices, /services, /plans, /codes, /messages and their buttons."""
    await p.connect(gotsms, gosms)
    made = gotsms.create_rent(gotsms_token(p.uid), gotsms.plan_by("Telegram", "day", 1)["id"])
    gotsms.inject_message(made["id"], "Your code is 481516")
    gotsms.inject_message(made["id"], "Login code: 234223")
    await p.send("/balance", "Your GotSMS balance: 99.00")
    await p.send("/prices", "GotSMS prices (1/")
    await p.press("›", "GotSMS prices (2/")
    await p.send("/services", "GotSMS services")
    await p.press("WhatsApp", "Plans of WhatsApp")
    await p.send("/plans telegram", "Plans of Telegram")
    await p.press("Months", "Plans of Telegram")
    await p.send("/codes", "Unread codes (2)")
    # "Marked 0": a timed-out first try had marked them (the user had seen them listed)
    await p.press("Mark as read", "messages as read.")
    await p.press("Check again", "No unread codes")
    await p.send("/messages", "Messages")
    await p.send(f"/messages {made['phone']}", "number: ")


async def renting(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """/rent: service → plan → any area code → confirmation → one rent at most."""
    await p.connect(gotsms, gosms)
    for _attempt in range(6):
        await p.send("/rent", "choose the service")
        await p.press("Telegram", "Plans of Telegram")
        await p.press("USA · 1 day · 1.00", "area code")
        await p.press("Any area code", "Rent a number?")
        done = await p.attempt("Rent for 1.00", "Your number", "may have gone through", USED)
        if isinstance(done, StoredMessage) and "Your number" in done.text:
            await p.press("Rental card", "Auto-renew: off")
            break
        if gotsms.rents_of(gotsms_token(p.uid)):  # it went through: the user sees it in /rents
            await p.send("/rents", "Your active rentals (1)")
            break
    else:
        raise AssertionError("never rented")
    assert len(gotsms.rents_of(gotsms_token(p.uid))) == 1


async def rent_card(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """/rents and every button of the rent card."""
    await p.connect(gotsms, gosms)
    made = gotsms.create_rent(gotsms_token(p.uid), gotsms.plan_by("Telegram", "day", 1)["id"])
    gotsms.inject_message(made["id"], "Your code is 777888")
    await p.send("/rents", "Your active rentals")
    await p.press(made["phone"], "Auto-renew: off")
    await p.press("Number status", "Number status")
    await p.press("Wake up", "Wake-up request sent", "Wake up is not available")
    await p.press("Messages", "Messages to")
    await p.press("Rental card", "Auto-renew: off")
    await p.press("Turn on auto-renew", "Auto-renew can be turned on or off only")
    await p.press("My rentals", "Your active rentals (1)")


async def moving(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """A move to a longer plan, confirmed; after an error the user goes back to the card."""
    await p.connect(gotsms, gosms)
    token = gotsms_token(p.uid)
    made = gotsms.create_rent(token, gotsms.plan_by("Telegram", "day", 1)["id"])
    await p.send("/rents", "Your active rentals")
    await p.press(made["phone"], "Auto-renew: off")
    for _attempt in range(6):
        await p.press("Longer plan", "to a longer plan")
        await p.press("3 months", "to 3 months?")
        await p.attempt("Pay 27.99", "3 months plan", "may have gone through", USED)
        if gotsms.rents_of(token)[0]["plan"]["duration_type"] == "month":
            break
        await p.press("Rental card", "Auto-renew:")
    else:
        raise AssertionError("never moved")
    await p.press("Rental card", "Auto-renew: off")


async def refund(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """A refund, confirmed; after an error the user opens the card again."""
    await p.connect(gotsms, gosms)
    token = gotsms_token(p.uid)
    made = gotsms.create_rent(token, gotsms.plan_by("Telegram", "day", 1)["id"])
    for _attempt in range(6):
        await p.send("/rents", "Your active rentals")
        await p.press(made["phone"], "Auto-renew: off")
        await p.press("Refund", "Refund the rental of")
        await p.attempt("Yes, refund", "Refunded", "may have gone through", USED)
        if gotsms.rents_of(token)[0]["status"] != "active":
            break
    else:
        raise AssertionError("never refunded")
    await p.send("/rents", "No active rentals.")


async def sending(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """/send as a one-liner and guided, with a device and a SIM slot; the card's refresh."""
    await p.connect(gotsms, gosms)
    token = gosms_token(p.uid)
    device = gosms.add_device(token, name="Poco")
    async with p.h.deps.session_factory() as session:
        await DeviceRepo(session).add(p.uid, device, "Poco")
        await session.commit()
    for _attempt in range(6):
        await p.send("/send +7 999 123-45-67 Hello", "Which device should send it?")
        await p.press("Poco", "Which SIM card")
        await p.press("SIM 2", "Send this SMS?")
        await p.attempt("📤 Send", "Status: ⏳ waiting", "may have gone through", USED)
        if gosms.sms_of(token):
            break
    else:
        raise AssertionError("never sent")
    await p.send("/sms", "Your SMS: 1")
    await p.press("1", "Status: ")
    await p.press("Refresh", "Status: ")
    for _attempt in range(6):
        await p.send("/send", "Send the phone number")
        await p.send("89120001122", "send the text of the SMS")
        await p.send("Your code: 1234", "Which device should send it?")
        await p.press("Any device", "Send this SMS?")
        await p.attempt("📤 Send", "Status: ⏳ waiting", "may have gone through", USED)
        if len(gosms.sms_of(token)) == 2:
            break
    else:
        raise AssertionError("never sent")
    phones = sorted(s["phone_number"] for s in gosms.sms_of(token))
    assert phones == ["79991234567", "89120001122"]


async def sms(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """/sms, its search, the SMS card, refresh and delete."""
    await p.connect(gotsms, gosms)
    token = gosms_token(p.uid)
    old = int(gosms.now()) - 3600
    gosms.add_sms(token, message="Keep me", status=4, time_create=old)
    gone = gosms.add_sms(token, message="Delete me", status=4, time_create=old + 60)
    await p.send("/sms", "Your SMS: 2")
    await p.send("/sms Delete", "SMS matching «Delete»: 1")
    await p.press("1", gone)
    await p.press("Refresh", gone)
    for _attempt in range(6):
        await p.press("Delete", "Delete the SMS")
        await p.attempt("Yes, delete", "The SMS is deleted", "no such SMS", USED)
        if len(gosms.sms_of(token)) == 1:
            break
        await p.send("/sms Delete", "SMS matching")
        await p.press("1", gone)
    assert [s["message"] for s in gosms.sms_of(token)] == ["Keep me"]


async def devices(p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """/devices: add by ID (guided), the card, refresh, turn off, turn on, delete, remove."""
    await p.connect(gotsms, gosms)
    token = gosms_token(p.uid)
    first = gosms.add_device(token, name="Poco")
    second = gosms.add_device(
        token, name="Pixel", last_online=datetime.now(UTC) - timedelta(hours=2)
    )
    await p.send("/devices", "no saved devices yet")
    await p.press("Add a device", "Send the device ID")
    await p.send(first, "Saved. You can now pick it in /send")
    await p.send(f"/devices add {second}", "Saved. You can now pick it in /send")
    await p.send("/devices", "Your devices: 2")
    await p.press("Pixel", "Offline for")
    await p.press("Refresh", "Offline for")
    await p.press("Turn off", "State: ⏸ off")
    assert gosms.device(second)["active"] is False
    # a try of the switch-off that timed out lands up to SLOW later and switches it off again:
    # GoSMS's state, which the card would then show truly; a person reads the card first
    await asyncio.sleep(SLOW)
    await p.press("Turn on", "State: ✅ on")
    await p.press("All devices", "Your devices: 2")
    await p.press("Pixel", "Pixel")
    await p.press("Remove from the bot", "Removed from the bot")
    for _attempt in range(6):
        await p.send("/devices", "Your devices: 1")
        await p.press("Poco", "Poco")
        await p.press("Delete from GoSMS", "Delete the device Poco")
        await p.attempt("Yes, delete", "deleted from GoSMS", "already gone from GoSMS", USED)
        if not gosms.has_device(first):
            break
    assert not gosms.has_device(first)
    assert gosms.has_device(second), "removed from the bot only"


async def play(scenario: Scenario, p: Person, gotsms: FakeGotSMS, gosms: FakeGoSMS) -> None:
    """Runs one person's scenario; a failure shows what that person saw."""
    try:
        await scenario(p, gotsms, gosms)
    except AssertionError as error:
        raise AssertionError(f"{scenario.__name__}: {error}\n{p.transcript()}") from None
    print(f"{scenario.__name__}: {len(p.steps)} actions, {p.errors_seen} errors")


async def test_every_command_answers_through_faults(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS
) -> None:
    faults_on(harness.tg, gotsms, gosms, seed=61)
    scenarios = [
        general,
        settings,
        menu,
        catalog,
        renting,
        rent_card,
        moving,
        refund,
        sending,
        sms,
        devices,
    ]
    people = [Person(harness, 6100 + n) for n in range(len(scenarios))]
    async with asyncio.TaskGroup() as group:
        for scenario, person in zip(scenarios, people, strict=True):
            group.create_task(play(scenario, person, gotsms, gosms))
    steps = sum(len(p.steps) for p in people)
    errors = sum(p.errors_seen for p in people)
    print(f"{steps} actions, {errors} answered with an error and repeated")
    assert errors > 0, "the faults were felt"
    failed = [c for c in harness.tg.calls if not c.ok and c.method != "getUpdates"]
    assert failed, "Telegram faults were felt"


# ---------------------------------------------------------------- pushes


def fast_poller(h: Harness, hot: float, every: float = 1.0) -> Poller:
    """The real poller (scheduler, jobs, outbox sender) with short intervals: codes every `hot`
    seconds for a user who just rented, SMS statuses and devices every `every` seconds."""
    deps = h.deps
    writes = Writes(deps.session_factory)
    sender = OutboxSender(h.bot, deps.session_factory, deps.i18n, lock=writes.lock)
    shared = (deps.session_factory, deps.cipher, deps.clients)
    options: dict[str, Any] = {"on_queued": sender.wake, "writes": writes}
    jobs: list[Job] = [
        CodesJob(*shared, timing=CodesTiming(hot_interval=hot), **options),
        SmsJob(*shared, busy=every, **options),
        DevicesJob(*shared, every=every, **options),
    ]
    return Poller(sender=sender, scheduler=Scheduler(deps.session_factory, jobs, writes=writes))


@dataclass
class Watched:
    """A user with both tokens, a fresh rent, a saved device and two SMS sent from the bot."""

    uid: int
    rent_id: str
    device_id: str
    sms_ids: list[str]
    phones: list[str]


async def watched_user(
    h: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS, uid: int, *, sms: int = 2
) -> Watched:
    gotsms.add_account(gotsms_token(uid), balance=100.0)
    gosms.add_account(gosms_token(uid))
    h.tg.user(uid, language_code="en")
    await h.send(uid, "/start")
    device = gosms.add_device(gosms_token(uid), name=f"Phone{uid}")
    rent = gotsms.create_rent(gotsms_token(uid), gotsms.plan_by("Telegram", "day", 1)["id"])
    async with h.deps.session_factory() as session:
        await store_token(session, h.deps.cipher, uid, Service.GOTSMS, gotsms_token(uid))
        await store_token(session, h.deps.cipher, uid, Service.GOSMS, gosms_token(uid))
        await DeviceRepo(session).add(uid, device, f"Phone{uid}")
        await watch_fresh_rent(session, uid)
        await session.commit()
    phones = [f"7999{uid}{n:03d}" for n in range(sms)]
    for phone in phones:
        await h.send(uid, f"/send {phone} Hello {phone}")
        await h.press(uid, "Any device")
        await h.press(uid, "📤 Send")
    sms_ids = [s["id"] for s in reversed(gosms.sms_of(gosms_token(uid)))]
    assert len(sms_ids) == sms
    return Watched(uid, rent["id"], device, sms_ids, phones)


def seen(tg: FakeTelegram, uid: int, needle: str) -> int:
    """How many of the bot's messages in the chat hold `needle` (edits count once)."""
    return sum(1 for m in tg.bot_messages(uid) if needle in m.text)


async def test_every_push_once_through_faults(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS
) -> None:
    tg = harness.tg
    users = [await watched_user(harness, gotsms, gosms, uid) for uid in (6201, 6202)]
    faults_on(tg, gotsms, gosms, seed=71)
    poller = fast_poller(harness, hot=1.5)
    poller.start()
    codes = {u.uid: [f"{u.uid % 100}{n:04d}" for n in range(5)] for u in users}
    expected: list[tuple[int, str]] = []
    try:
        for n in range(5):
            for u in users:
                gotsms.inject_message(u.rent_id, f"Your code is {codes[u.uid][n]}")
                expected.append((u.uid, f"\n{codes[u.uid][n]}\n"))
            if n == 1:
                for u in users:
                    gosms.set_device(
                        u.device_id, last_online=datetime.now(UTC) - timedelta(minutes=12)
                    )
                    expected.append((u.uid, f"Phone{u.uid} is offline"))
            if n == 2:
                for u in users:
                    gosms.set_status(u.sms_ids[0], 2)
                    gosms.set_status(u.sms_ids[1], 5)
                    expected.append((u.uid, f"SMS to {u.phones[1]} failed"))
            if n == 3:
                for u in users:
                    gosms.set_status(u.sms_ids[0], 4)
                    expected.append((u.uid, f"SMS to {u.phones[0]} was delivered"))
            await asyncio.sleep(0.7)
        await tg.wait_for(lambda: all(seen(tg, uid, e) for uid, e in expected), timeout=40)
        for u in users:
            gosms.set_device(u.device_id, last_online=datetime.now(UTC))
            expected.append((u.uid, f"Phone{u.uid} is back online"))
        await tg.wait_for(lambda: all(seen(tg, uid, e) for uid, e in expected), timeout=30)
        await asyncio.sleep(2.0)  # a duplicate would show up by now
    finally:
        await poller.stop()
    counts = Counter({(uid, e): seen(tg, uid, e) for uid, e in expected})
    assert counts == Counter(dict.fromkeys(expected, 1)), "every push exactly once"
    for u in users:
        others = [m.text for m in tg.bot_messages(u.uid)]
        strangers = [f"\n{c}\n" for v in users if v.uid != u.uid for c in codes[v.uid]]
        assert not any(c in t for c in strangers for t in others), "pushes reach their own chat"
        cards = [m for m in tg.bot_messages(u.uid) if u.sms_ids[0] in m.text]
        assert len(cards) == 1, "the card follows in place"
        assert "delivered" in cards[0].text
    failed = [c for c in tg.calls if not c.ok]
    assert any(c.method == "sendMessage" for c in failed), "Telegram faults were felt"
    assert any(r.status >= 500 for r in gotsms.requests), "GotSMS faults were felt"
    assert any(r.status >= 500 for r in gosms.requests), "GoSMS faults were felt"


# ---------------------------------------------------------------- an API that stays down

HOT = 0.7
OUTAGE = 7.0


def polls(times: list[float]) -> list[float]:
    """Start times of polls: requests closer than 0.5 s are one poll and its retries."""
    starts: list[float] = []
    for at in sorted(times):
        if not starts or at - starts[-1] > 0.5:
            starts.append(at)
    return starts


async def arrival(tg: FakeTelegram, uid: int, needle: str, within: float) -> float:
    """Seconds until a bot message holding `needle` is in the chat."""
    start = time.monotonic()
    await tg.wait_for(lambda: seen(tg, uid, needle) > 0, timeout=within)
    return time.monotonic() - start


async def test_an_api_down_is_backed_off_per_user_and_recovered_from(
    harness: Harness, gotsms: FakeGotSMS, gosms: FakeGoSMS
) -> None:
    tg = harness.tg
    user = await watched_user(harness, gotsms, gosms, 6301, sms=1)
    broken = await watched_user(harness, gotsms, gosms, 6302, sms=0)
    gotsms.forbid(gotsms_token(broken.uid))  # its token was revoked in the GotSMS panel
    poller = fast_poller(harness, hot=HOT, every=HOT)
    poller.start()
    try:
        gotsms.inject_message(user.rent_id, "Your code is 510001")
        before = await arrival(tg, user.uid, "\n510001\n", within=10)
        assert before <= HOT + 2, "a broken account does not slow a healthy user's codes"
        refused = len(gotsms.requests_for(gotsms_token(broken.uid)))
        assert refused <= 2, "a refused token is not hammered"

        gotsms.set_down(True)
        gosms.set_down(True)
        down_at = time.monotonic()
        gotsms.inject_message(user.rent_id, "Your code is 510002")
        gosms.set_status(user.sms_ids[0], 4)
        await asyncio.sleep(OUTAGE)
        gotsms.set_down(False)
        gosms.set_down(False)
        up_at = time.monotonic()

        watched = {
            "codes": [r.at for r in gotsms.requests_for(gotsms_token(user.uid), "/messages")],
            "sms": [r.at for r in gosms.requests_for(gosms_token(user.uid), "/sms")],
            "devices": [r.at for r in gosms.requests_for(gosms_token(user.uid), "/devices")],
        }
        for job, times in watched.items():
            starts = polls([at for at in times if down_at <= at < up_at])
            gaps = [round(b - a, 1) for a, b in itertools.pairwise(starts)]
            print(f"{job} during the outage: {len(starts)} polls, gaps {gaps} s")
            assert len(starts) <= OUTAGE / HOT / 2, f"{job}: not backed off: {gaps}"
            assert gaps == sorted(gaps), f"{job}: the polls do not thin out: {gaps}"
            assert gaps[-1] >= 3 * HOT, f"{job}: the polls do not thin out: {gaps}"
        assert len(gotsms.requests_for(gotsms_token(broken.uid))) == refused

        after = await arrival(tg, user.uid, "\n510002\n", within=30)
        await arrival(tg, user.uid, f"SMS to {user.phones[0]} was delivered", within=30)
        gotsms.inject_message(user.rent_id, "Your code is 510003")
        again = await arrival(tg, user.uid, "\n510003\n", within=10)
        await asyncio.sleep(1.5)
    finally:
        await poller.stop()
    print(f"code before {before:.1f} s, after the outage {after:.1f} s, then {again:.1f} s")
    assert after <= 16 * HOT + 2, "recovered by itself within the backoff"
    assert again <= HOT + 2, "back to the normal pace"
    for needle in ("\n510001\n", "\n510002\n", "\n510003\n", "was delivered"):
        assert seen(tg, user.uid, needle) == 1, needle
    assert not tg.bot_messages(broken.uid)[1:], "nothing pushed to the broken account"
