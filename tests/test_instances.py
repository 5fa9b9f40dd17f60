"""Several instances (issue 12): three `python -m bot` in webhook mode behind one URL (a
round-robin proxy), on one PostgreSQL and one Redis, against the doubles.

300 users, each with a GotSMS token and a rent made a minute ago (hot: polled every
POLL_INTERVAL), are seeded into the database as a user who connected a token earlier and just
rented a number leaves them. Codes then arrive for everyone, twice; halfway through one instance
is SIGKILLed. What an operator would look at:

- every code pushed once (counted at the fake Telegram by chat and code), duplicates only of
  sends the killed instance had in flight; p95 from a code's arrival to its push within
  POLL_INTERVAL + 2 s before the kill;
  the dead instance's users' codes pushed by the others within 30 s;
- no GotSMS token over 30 requests in any minute, Telegram never more than 30 messages in a
  second over all instances; the webhook and the command menu set once for the deployment;
- updates reach the bot through the proxy before and after the kill, and are answered.

The figures are printed (`-s`) as one `INSTANCES` line. It runs alone:
`pytest tests/test_instances.py`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import os
import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from bot.db.crypto import TokenCipher
from bot.db.engine import create_engine, create_session_factory
from bot.db.models import Credential, Service, User, utcnow
from bot.db.outbox import PollState
from bot.i18n import LANGUAGES
from bot.poller.codes import JOB as CODES_JOB
from bot.poller.codes import RENTS_JOB, WATCHING
from tests.backends import Backend, Place
from tests.conftest import SECRET_KEY, BotProcess
from tests.fakes.balancer import Balancer
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import Call, FakeTelegram, WebhookDelivery
from tests.test_webhook import free_port

INSTANCES = 3
USERS = 300
FIRST_USER = 7_100_000_000
POLL = 3.0  # POLL_INTERVAL: hot polls every 3 s stay within GotSMS's 30 a minute
# s of arriving codes, one per user in each half: 15 a second, under the ~23 a second the
# deployment's Telegram pace sends (at that pace or above codes queue for Telegram, whatever polls)
STREAM = 40.0
KILL_AT = STREAM / 2
TAKEOVER = 30.0
# A kill doubles the pushes Telegram had accepted and the killed instance had not yet recorded:
# the sends in flight at that moment (the sender runs them side by side, ~23 a second in all), so
# each duplicate must be the killed instance's, sent within IN_FLIGHT_S before its kill.
IN_FLIGHT, IN_FLIGHT_S = 5, 0.5
ARRIVES_AFTER_KILL = 0.2  # s: a request written just before the kill reaches the fake after it
STARTS = 20  # users who send /start through the proxy, before and after the kill
PUBLIC = "https://bot.example.test/telegram/hook"
HOOK_PATH = "/telegram/hook"
HOOK_SECRET = "instances-webhook-secret-0123"
CODE_RE = re.compile(r"\d{8}")


@dataclass
class Instance:
    name: str
    port: int
    gotsms_host: str  # the Host header of its GotSMS requests (a port of the fake's own)
    telegram_host: str  # and of its Bot API calls
    bot: BotProcess


@dataclass
class Arrival:
    user: int
    code: str
    at: float


@dataclass
class Seeded:
    users: list[int]
    tokens: dict[int, str]
    rents: dict[int, str]


@dataclass
class Figures:
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


async def _seed(database: str, gotsms: FakeGotSMS, data_dir: Path) -> Seeded:
    """Users who connected a GotSMS token an hour ago and rented a number a minute ago: the
    rows /token and /rent leave (the codes job watching, heated for 30 minutes)."""
    plan = gotsms.plan_by("Telegram", "day", 1)["id"]
    gotsms.set_stock(plan, USERS + 10)
    users = [FIRST_USER + i for i in range(USERS)]
    tokens = {uid: f"gotsms-e2e-{uid}-{uuid.uuid4().hex[:16]}" for uid in users}
    now = utcnow()
    rents = {}
    for uid in users:
        gotsms.add_account(tokens[uid], balance=500.0)
        rents[uid] = gotsms.create_rent(tokens[uid], plan, created_at=now - timedelta(minutes=1))[
            "id"
        ]
    engine = create_engine(database)
    try:
        cipher = TokenCipher.from_settings(SECRET_KEY, data_dir)
        hot = now + timedelta(minutes=29)
        async with create_session_factory(engine)() as session:
            await session.execute(
                insert(User),
                [{"id": u, "chat_id": u, "language_code": "en", "is_active": True} for u in users],
            )
            await session.execute(
                insert(Credential),
                [
                    {
                        "user_id": u,
                        "service": Service.GOTSMS.value,
                        "token_encrypted": cipher.encrypt(tokens[u]),
                        "connected_at": now - timedelta(hours=1),
                    }
                    for u in users
                ],
            )
            states = [
                {"user_id": u, "job": CODES_JOB, "next_at": now, "failures": 0}
                | {"cursor": WATCHING, "hot_until": hot}
                for u in users
            ]
            states += [
                {"user_id": u, "job": RENTS_JOB, "next_at": now, "failures": 0} for u in users
            ]
            await session.execute(insert(PollState), states)
            await session.commit()
    finally:
        await engine.dispose()
    return Seeded(users, tokens, rents)


async def _start_instances(
    base_env: dict[str, str],
    tg: FakeTelegram,
    gotsms: FakeGotSMS,
    tmp_path: Path,
) -> list[Instance]:
    instances = []
    for number in range(INSTANCES):
        port, gotsms_url = free_port(), await gotsms.listen_also()
        telegram_url = await tg.listen_also()
        env = base_env | {
            "TELEGRAM_API_URL": telegram_url + "/",
            "WEBHOOK_URL": PUBLIC,
            "WEBHOOK_SECRET": HOOK_SECRET,
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
            "POLL_INTERVAL": str(POLL),
            "GOTSMS_API_URL": gotsms_url,
            "LOG_LEVEL": "INFO",
            "DB_POOL_SIZE": "8",
            "DB_POOL_OVERFLOW": "4",
        }
        workdir = tmp_path / f"instance-{number}"
        workdir.mkdir()
        got_host, tg_host = (
            url.split("//", 1)[1].split("/", 1)[0] for url in (gotsms_url, telegram_url)
        )
        instances.append(
            Instance(f"bot-{number}", port, got_host, tg_host, BotProcess(env, workdir))
        )
    await asyncio.gather(*(i.bot.start() for i in instances))  # at the same moment
    return instances


async def _listening(instance: Instance, seconds: float) -> None:
    """Until the instance's webhook server takes connections; its log if it died first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        process = instance.bot.process
        assert process is not None
        assert process.returncode is None, f"{instance.name} ended:\n{instance.bot.log[-3000:]}"
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", instance.port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{instance.name} never listened:\n{instance.bot.log[-3000:]}")


async def _wait(condition: Callable[[], bool], seconds: float, every: float = 0.1) -> bool:
    """Whether `condition` came true within `seconds` (checked `every` seconds)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)
    return True


async def _say_start(tg: FakeTelegram, users: Sequence[int], gap: float) -> dict[int, float]:
    """Each user sends /start (through the webhook and the proxy); when each was sent."""
    sent = {}
    for uid in users:
        tg.user(uid, first_name="Ann", language_code="en")
        tg.send_text(uid, "/start")
        sent[uid] = time.monotonic()
        await asyncio.sleep(gap)
    return sent


def _answered(tg: FakeTelegram, sent: dict[int, float]) -> dict[int, float]:
    """Per user who sent /start: seconds until the bot's greeting reached Telegram."""
    answers: dict[int, float] = {}
    for call in tg.calls_of("sendMessage"):
        uid = call.params.get("chat_id")
        if call.ok and uid in sent and "Hi, Ann" in str(call.params.get("text", "")):
            answers.setdefault(int(uid), call.at - sent[int(uid)])
    return answers


async def _inject(
    gotsms: FakeGotSMS, seeded: Seeded, plan: list[tuple[float, int]], t0: float
) -> list[Arrival]:
    arrivals = []
    codes = iter(random.sample(range(10_000_000, 99_999_999), len(plan)))
    for offset, uid in plan:
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        code = str(next(codes))
        gotsms.inject_message(seeded.rents[uid], f"Your Telegram code: {code}. Do not share it.")
        arrivals.append(Arrival(uid, code, time.monotonic()))
    return arrivals


def _push_calls(tg: FakeTelegram, watched: set[str]) -> dict[tuple[int, str], list[Call]]:
    """(chat, code) -> the accepted sendMessage calls carrying that code, in order."""
    found: dict[tuple[int, str], list[Call]] = defaultdict(list)
    for call in tg.calls_of("sendMessage"):
        if call.ok:
            chat = int(call.params.get("chat_id", 0))
            for code in set(CODE_RE.findall(str(call.params.get("text", "")))) & watched:
                found[(chat, code)].append(call)
    return found


def _pushes(tg: FakeTelegram, watched: set[str]) -> dict[tuple[int, str], list[float]]:
    """(chat, code) -> when Telegram got each accepted message carrying that code."""
    return {key: [c.at for c in calls] for key, calls in _push_calls(tg, watched).items()}


def _polls_by_token(gotsms: FakeGotSMS) -> dict[str, list[float]]:
    polls: dict[str, list[float]] = defaultdict(list)
    for record in gotsms.requests:
        if record.token and record.path == "/messages":
            polls[record.token].append(record.at)
    return polls


def _split(
    gotsms: FakeGotSMS,
    seeded: Seeded,
    pushed: dict[tuple[int, str], list[float]],
    arrivals: list[Arrival],
) -> dict[str, float]:
    """Where the time of a push goes: arrival -> the first poll after it (the find), the find ->
    Telegram; and the time between two polls of one user."""
    polls = _polls_by_token(gotsms)
    found, sent = [], []
    for a in arrivals:
        times = polls[seeded.tokens[a.user]]
        at = bisect.bisect_left(times, a.at)
        if at < len(times) and (a.user, a.code) in pushed:
            found.append(times[at] - a.at)
            sent.append(pushed[(a.user, a.code)][0] - times[at])
    end = max((a.at for a in arrivals), default=0.0)
    gaps = [
        later - earlier
        for times in polls.values()
        for earlier, later in itertools.pairwise(times)
        if later <= end
    ]
    return {
        "find_p95_s": _pct(found, 95),
        "find_to_telegram_p95_s": _pct(sent, 95),
        "poll_gap_p50_s": _pct(gaps, 50),
        "poll_gap_p95_s": _pct(gaps, 95),
    }


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 2)


def _last_poller(gotsms: FakeGotSMS, before: float) -> dict[str, str]:
    """Per token: the Host (the instance) of its last /messages request before `before`."""
    last: dict[str, str] = {}
    for record in gotsms.requests:
        if record.at < before and record.token and record.path == "/messages":
            last[record.token] = record.headers.get("Host", "")
    return last


def _first_poll_after(gotsms: FakeGotSMS, after: float) -> dict[str, float]:
    first: dict[str, float] = {}
    for record in gotsms.requests:
        if record.at >= after and record.token and record.path == "/messages":
            first.setdefault(record.token, record.at)
    return first


def _busiest(gotsms: FakeGotSMS, instances: list[Instance], since: float) -> Instance:
    """The instance that polled GotSMS the most lately (it surely holds users)."""
    counts = {i.gotsms_host: 0 for i in instances}
    for record in reversed(gotsms.requests):
        if record.at < since:
            break
        host = record.headers.get("Host", "")
        if host in counts:
            counts[host] += 1
    return max(instances, key=lambda i: counts[i.gotsms_host])


@dataclass
class Run:
    arrivals: list[Arrival]
    victim: Instance
    kill_at: float
    starts_after: dict[int, float]
    began: float  # of the stream


async def _ready(
    instances: list[Instance], tg: FakeTelegram, gotsms: FakeGotSMS, seeded: Seeded
) -> None:
    """Until every instance listens, the webhook is set and every user was polled once."""
    for instance in instances:
        await _listening(instance, 60)
    assert await _wait(lambda: tg.webhook is not None, 30), "no webhook set"
    tokens = set(seeded.tokens.values())
    polled = await _wait(lambda: tokens <= set(_first_poll_after(gotsms, 0.0)), 45, 0.5)
    assert polled, "not every user was polled within 45 s"


async def _stream_and_kill(
    tg: FakeTelegram,
    gotsms: FakeGotSMS,
    seeded: Seeded,
    instances: list[Instance],
    rng: random.Random,
) -> Run:
    """Every user gets a code in each half of the stream, at random moments; at half time the
    instance that polled the most lately is SIGKILLed, and a few users send /start."""
    plan = [(rng.uniform(0, KILL_AT), uid) for uid in seeded.users]
    plan += [(rng.uniform(KILL_AT, STREAM), uid) for uid in seeded.users]
    plan.sort()
    t0 = time.monotonic()
    injecting = asyncio.create_task(_inject(gotsms, seeded, plan, t0))
    await asyncio.sleep(t0 + KILL_AT - time.monotonic())
    victim = _busiest(gotsms, instances, time.monotonic() - POLL)
    assert victim.bot.process is not None
    kill_at = time.monotonic()
    victim.bot.process.kill()
    after = await _say_start(tg, seeded.users[STARTS : 2 * STARTS], 0.25)
    arrivals = await injecting
    watched = {a.code for a in arrivals}

    def all_pushed() -> bool:
        pushed = _pushes(tg, watched)
        return all((a.user, a.code) in pushed for a in arrivals)

    await _wait(all_pushed, arrivals[-1].at + TAKEOVER + 2 - time.monotonic(), 0.5)  # or lost
    await asyncio.sleep(2)  # a late duplicate would come now
    return Run(arrivals, victim, kill_at, after, t0)


@pytest.mark.timeout(240)  # ~60 s when it passes; the waits of a failing run add up
@pytest.mark.parametrize("backend", [Backend.POSTGRES], indirect=True)
async def test_three_instances_behind_one_url(
    backend: Place,
    bot_env: dict[str, str],
    tmp_path: Path,
    tg: FakeTelegram,
    gotsms: FakeGotSMS,
) -> None:
    """bot_env: a PostgreSQL database, a REDIS_NAMESPACE and a bot of the test's own."""
    began = time.monotonic()
    assert backend.postgres_url is not None
    seeded = await _seed(backend.postgres_url, gotsms, tmp_path)
    for uid in seeded.users:
        tg.register_chat(uid)
    instances = await _start_instances(bot_env, tg, gotsms, tmp_path)
    balancer = Balancer([f"http://127.0.0.1:{i.port}" for i in instances])
    await balancer.start()
    delivery = WebhookDelivery(tg, balancer.url + HOOK_PATH)
    await delivery.start()
    figures = Figures()
    run: Run | None = None
    try:
        await _ready(instances, tg, gotsms, seeded)
        figures.values["start_s"] = round(time.monotonic() - began, 1)
        await asyncio.sleep(POLL)
        before = await _say_start(tg, seeded.users[:STARTS], 0.1)
        run = await _stream_and_kill(tg, gotsms, seeded, instances, random.Random())
        figures.values["wall_s"] = round(time.monotonic() - began, 1)
        _measure(figures, tg, gotsms, seeded, instances, run)
        _measure_updates(figures, tg, balancer, delivery, before, run.starts_after)
    finally:
        await delivery.close()
        codes = await _stop(instances)
        await balancer.close()
    _measure_logs(figures, instances, run.victim if run else None, codes, seeded)
    print("INSTANCES " + json.dumps(figures.values, sort_keys=True))
    assert not figures.problems, "\n".join(figures.problems) + "\n" + json.dumps(figures.values)


async def _stop(instances: list[Instance]) -> dict[str, int | str]:
    """SIGTERM to all at once; the exit codes (an instance still running after 20 s is
    killed: no process outlives the test)."""
    ended = await asyncio.gather(*(i.bot.stop() for i in instances), return_exceptions=True)
    codes: dict[str, int | str] = {}
    for instance, code in zip(instances, ended, strict=True):
        process = instance.bot.process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        codes[instance.name] = code if isinstance(code, int) else f"did not stop: {code!r}"
    return codes


def _measure(
    figures: Figures,
    tg: FakeTelegram,
    gotsms: FakeGotSMS,
    seeded: Seeded,
    instances: list[Instance],
    run: Run,
) -> None:
    pushed = _pushes(tg, {a.code for a in run.arrivals})
    _measure_codes(figures, gotsms, seeded, run, pushed)
    _measure_takeover(figures, gotsms, seeded, run, pushed)
    _measure_limits(figures, tg, gotsms, seeded, run.kill_at)
    hosts: dict[str, int] = defaultdict(int)
    for record in gotsms.requests:
        hosts[record.headers.get("Host", "")] += 1
    figures.values |= {
        "gotsms_requests_by_instance": {i.name: hosts[i.gotsms_host] for i in instances},
        "killed": run.victim.name,
        "load_average": [round(n, 1) for n in os.getloadavg()],
    }
    figures.values |= _senders(tg, instances, {a.code for a in run.arrivals}, run.kill_at)
    for first, *_again in figures.values["duplicate_sends"]:
        figures.check(
            first[0] == run.victim.name and -IN_FLIGHT_S <= first[1] <= ARRIVES_AFTER_KILL,
            f"a duplicate first sent by {first[0]} {first[1]} s from the kill: not one in flight",
        )
    figures.values |= _timeline(run, pushed)


def _timeline(run: Run, pushed: dict[tuple[int, str], list[float]]) -> dict[str, list[int]]:
    """Codes that arrived and pushes sent in each 3 s from the start of the stream."""

    def per_slot(times: list[float]) -> list[int]:
        slots = [0] * int((max(times, default=run.began) - run.began) // 3 + 1)
        for at in times:
            slots[int((at - run.began) // 3)] += 1
        return slots

    return {
        "arrived_per_3s": per_slot([a.at for a in run.arrivals]),
        "pushed_per_3s": per_slot([t for times in pushed.values() for t in times]),
    }


def _steady_end(run: Run) -> float:
    """A code that came before this was pushed before the kill could cut its push off."""
    return run.kill_at - (POLL + 2)


def _measure_codes(
    figures: Figures,
    gotsms: FakeGotSMS,
    seeded: Seeded,
    run: Run,
    pushed: dict[tuple[int, str], list[float]],
) -> None:
    check, values, arrivals = figures.check, figures.values, run.arrivals
    lost = [a for a in arrivals if (a.user, a.code) not in pushed]
    doubled = sum(len(pushed[(a.user, a.code)]) - 1 for a in arrivals if (a.user, a.code) in pushed)
    steady_end = _steady_end(run)
    steady = [
        pushed[(a.user, a.code)][0] - a.at
        for a in arrivals
        if a.at < steady_end and (a.user, a.code) in pushed
    ]
    values |= {
        "codes": len(arrivals),
        "lost": len(lost),
        "duplicates": doubled,
        "steady_codes": len(steady),
        "p50_s": _pct(steady, 50),
        "p95_s": _pct(steady, 95),
        "max_s": _pct(steady, 100),
    }
    values |= _split(gotsms, seeded, pushed, [a for a in arrivals if a.at < steady_end])
    check(not lost, f"{len(lost)} of {len(arrivals)} codes never pushed")
    check(
        doubled <= IN_FLIGHT,
        f"{doubled} duplicate pushes (at most the {IN_FLIGHT} a kill can catch in flight)",
    )
    check(
        _pct(steady, 95) <= POLL + 2,
        f"p95 {_pct(steady, 95)} s before the kill > POLL_INTERVAL + 2 = {POLL + 2} s",
    )


def _measure_takeover(
    figures: Figures,
    gotsms: FakeGotSMS,
    seeded: Seeded,
    run: Run,
    pushed: dict[tuple[int, str], list[float]],
) -> None:
    """The killed instance's users: those it made the last poll of before the kill."""
    check, values, kill_at, steady_end = (
        figures.check,
        figures.values,
        run.kill_at,
        _steady_end(run),
    )
    victim = run.victim
    owner = _last_poller(gotsms, kill_at)
    theirs = {uid for uid in seeded.users if owner.get(seeded.tokens[uid]) == victim.gotsms_host}
    waits: list[float] = []
    rest: list[float] = []
    for a in run.arrivals:
        times = pushed.get((a.user, a.code))
        if a.at < steady_end or not times or times[0] < kill_at:
            continue
        (waits if a.user in theirs else rest).append(times[0] - max(a.at, kill_at))
    repolled = _first_poll_after(gotsms, kill_at)
    gaps = [repolled.get(seeded.tokens[u], float("inf")) - kill_at for u in theirs]
    values |= {
        "victim_users": len(theirs),
        "takeover_push_max_s": _pct(waits, 100),
        "takeover_push_p95_s": _pct(waits, 95),
        "others_after_kill_p95_s": _pct(rest, 95),
        "victim_users_repolled_max_s": round(max(gaps, default=float("nan")), 1),
    }
    late = [w for w in waits if w > TAKEOVER]
    check(bool(theirs), "the killed instance polled nobody just before the kill")
    check(not late, f"{len(late)} codes of the killed instance's users pushed after {TAKEOVER} s")


def _measure_limits(
    figures: Figures, tg: FakeTelegram, gotsms: FakeGotSMS, seeded: Seeded, kill_at: float
) -> None:
    """The GotSMS budget per token, Telegram's pace, the start-up work done once."""
    check, values = figures.check, figures.values
    per_token = gotsms.max_calls_per_token(60.0)
    ours = [per_token.get(t, 0) for t in seeded.tokens.values()]
    over = sum(1 for n in ours if n > 30)
    values |= {"gotsms_max_per_token_min": max(ours), "gotsms_tokens_over_30": over}
    check(over == 0, f"{over} GotSMS tokens over 30 requests in a minute (most {max(ours)})")

    per_second = tg.most_in_one_second("sendMessage")
    values |= {
        "telegram_max_per_s": per_second,
        "telegram_max_per_s_before_kill": tg.most_in_one_second(before=kill_at),
        "telegram_max_per_s_after_kill": tg.most_in_one_second(after=kill_at),
    }
    check(per_second <= 30, f"the fake Telegram saw {per_second} messages in one second")

    webhooks = len(tg.calls_of("setWebhook"))
    menus = len(tg.calls_of("setMyCommands"))
    values |= {"set_webhook_calls": webhooks, "set_my_commands_calls": menus}
    check(webhooks == 1, f"setWebhook called {webhooks} times for one deployment")
    check(
        menus == len(LANGUAGES),
        f"setMyCommands called {menus} times (once per language for the deployment: "
        f"{len(LANGUAGES)})",
    )


def _senders(
    tg: FakeTelegram, instances: list[Instance], watched: set[str], kill_at: float
) -> dict[str, Any]:
    """Which instance sent the pushes, and each duplicate: by whom, when (s from the kill)."""
    names = {i.telegram_host: i.name for i in instances}
    sent: dict[str, int] = defaultdict(int)
    doubles = []
    for calls in _push_calls(tg, watched).values():
        for call in calls:
            sent[names.get(call.host, call.host)] += 1
        if len(calls) > 1:
            doubles.append([(names.get(c.host, c.host), round(c.at - kill_at, 1)) for c in calls])
    return {"pushes_by_instance": dict(sent), "duplicate_sends": doubles}


def _measure_updates(
    figures: Figures,
    tg: FakeTelegram,
    balancer: Balancer,
    delivery: WebhookDelivery,
    before: dict[int, float],
    after: dict[int, float],
) -> None:
    answered_before, answered_after = _answered(tg, before), _answered(tg, after)
    figures.values |= {
        "starts_answered": f"{len(answered_before)}/{len(before)} before the kill, "
        f"{len(answered_after)}/{len(after)} after",
        "start_answer_max_s": round(max([*answered_before.values(), *answered_after.values()]), 1)
        if answered_before or answered_after
        else None,
        "proxy_served": dict(balancer.served),
        "proxy_skipped": dict(balancer.skipped),
        "proxy_502": balancer.failed,
        "updates_undelivered": delivery.pending,
    }
    slow = [s for s in answered_after.values() if s > 10]
    figures.check(
        len(answered_before) == len(before) and len(answered_after) == len(after),
        "a /start sent through the proxy got no answer",
    )
    figures.check(not slow, f"{len(slow)} /start after the kill answered after more than 10 s")


def _measure_logs(
    figures: Figures,
    instances: list[Instance],
    victim: Instance | None,
    codes: dict[str, int | str],
    seeded: Seeded,
) -> None:
    tracebacks = {i.name: i.bot.log.count("Traceback") for i in instances}
    errors = {i.name: i.bot.log.count(" ERROR ") for i in instances}
    figures.values |= {"exit_codes": codes, "tracebacks": tracebacks, "error_lines": errors}
    figures.values["warnings"] = _warnings(instances)
    for instance in instances:
        if instance is victim:
            continue
        figures.check(codes[instance.name] == 0, f"{instance.name} exited {codes[instance.name]}")
        if tracebacks[instance.name]:
            start = instance.bot.log.index("Traceback")
            excerpt = instance.bot.log[max(0, start - 300) : start + 1500]
            figures.check(False, f"{instance.name} logged a traceback:\n{excerpt}")
    every_log = "".join(i.bot.log for i in instances)
    leaked = sum(1 for token in seeded.tokens.values() if token in every_log)
    figures.check(leaked == 0, f"{leaked} GotSMS tokens in the instances' logs")


def _warnings(instances: list[Instance]) -> dict[str, int]:
    """The instances' WARNING lines by their first words (user ids and numbers left out)."""
    counts: dict[str, int] = defaultdict(int)
    for instance in instances:
        for line in instance.bot.log.splitlines():
            if " WARNING " in line:
                message = line.split(" WARNING ", 1)[1]
                counts[re.sub(r"\d+", "N", message)[:90]] += 1
    return dict(counts)
