"""The poller benchmarks' workload, shared by bench/poller.py (one process) and bench/scale.py
(several instances of `python -m bot`): the users and their rents in the fakes, the database
seeded with them, the codes injected, and what the fakes saw scored.

Every user has a GotSMS token and one active rent (the worst case: no user can be skipped); a
share of them are hot (a rent created in the last 30 minutes, polled every POLL_INTERVAL). In the
measured window each hot user gets `codes_per_hot` codes and COLD_SAMPLE cold users get one each.
Latency of a code: from inject_message in the fake to the fake Telegram's 200 answer to the
sendMessage that carries that code.
"""

# ruff: noqa: ASYNC240  (a benchmark driver: blocking file I/O is fine)
from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.ext.asyncio import AsyncSession

    from bench._fakes import MeasuringTelegram, ScaledGotSMS
    from tests.fakes.gosms import FakeGoSMS

POLL_INTERVAL = 3.0
LATENCY = 0.05
USER_BASE = 1_000_000
SECRET_KEY = "bench-secret-key-0123456789"
BOT_TOKEN = "123456:BENCH-fake-bot-token-0123456789abcdef"
COLD_SAMPLE = 300
TAIL_CAP = 90.0  # after the last injection, wait at most this long for stragglers
SETTLE_CAP = 600.0
BUDGET = 30  # GotSMS requests a minute per token


# ============================================================================ the database


async def seed_main(cfg: dict[str, Any]) -> None:
    """Fresh DB, N users with a connected GotSMS token; hot users heated as /rent does."""
    from sqlalchemy import insert

    from bench._procs import bot_settings
    from bot.app import build_deps
    from bot.db.models import Credential, Service, User, utcnow
    from bot.db.outbox import PollState
    from bot.db.outbox_repo import PollStateRepo
    from bot.db.repo import UserRepo
    from bot.poller.codes import JOB
    from bot.services.credentials import JOBS_OF, store_token

    deps = await build_deps(bot_settings(cfg, BOT_TOKEN, SECRET_KEY))
    users = json.loads(Path(cfg["users_file"]).read_text())
    head, rest = users[:200], users[200:]
    async with deps.session_factory() as session:  # the real path, for a first slice
        for user in head:
            await UserRepo(session).upsert_seen(user["id"], user["id"], "en")
            await store_token(session, deps.cipher, user["id"], Service.GOTSMS, user["token"])
    # the same rows store_token writes, inserted in bulk (setup speed only, not measured)
    now = utcnow()
    for first in range(0, len(rest), 2000):
        chunk = rest[first : first + 2000]
        async with deps.session_factory() as session:
            await session.execute(
                insert(User),
                [
                    {"id": u["id"], "chat_id": u["id"], "language_code": "en", "is_active": True}
                    for u in chunk
                ],
            )
            await session.execute(
                insert(Credential),
                [
                    {
                        "user_id": u["id"],
                        "service": Service.GOTSMS.value,
                        "token_encrypted": deps.cipher.encrypt(u["token"]),
                    }
                    for u in chunk
                ],
            )
            await session.execute(
                insert(PollState),
                [
                    {"user_id": u["id"], "job": job, "next_at": now, "failures": 0}
                    for u in chunk
                    for job in JOBS_OF[Service.GOTSMS]
                ],
            )
            await session.commit()
    async with deps.session_factory() as session:
        until = utcnow() + timedelta(minutes=30)
        for user in users:
            if user["hot"]:
                await PollStateRepo(session).heat(user["id"], JOB, until)
        await session.commit()
    await deps.close()


def waiting_query() -> Select[int]:
    """How many users' first codes poll is not done yet (the run is settled at 0)."""
    from sqlalchemy import func, or_, select

    from bot.db.outbox import PollState
    from bot.poller.codes import JOB, WATCHING

    return (
        select(func.count())
        .select_from(PollState)
        .where(PollState.job == JOB, or_(PollState.cursor.is_(None), PollState.cursor != WATCHING))
    )


async def outbox_summary(session: AsyncSession) -> dict[str, Any]:
    """The outbox by kind, sent and dropped, and the poll states that are failing."""
    from sqlalchemy import func, select

    from bot.db.outbox import OutboxItem, PollState

    sent = OutboxItem.sent_at.is_not(None)
    rows = (
        await session.execute(
            select(OutboxItem.kind, sent, OutboxItem.dropped, func.count()).group_by(
                OutboxItem.kind, sent, OutboxItem.dropped
            )
        )
    ).all()
    failing = await session.scalar(
        select(func.count()).select_from(PollState).where(PollState.failures > 0)
    )
    outbox = [{"kind": k, "sent": bool(s), "dropped": d, "n": n} for k, s, d, n in rows]
    return {"outbox": outbox, "failing_states": failing or 0}


# ============================================================================ the fakes


@dataclass
class Injected:
    code: str
    user: int
    hot: bool
    at: float
    message_id: str = ""


@dataclass
class World:
    """The three fakes and the users in them."""

    got: ScaledGotSMS
    tg: MeasuringTelegram
    gosms: FakeGoSMS
    rng: random.Random
    users: list[dict[str, Any]]
    rent_of: dict[int, str]
    hot_ids: set[int]

    @property
    def hot_uids(self) -> list[int]:
        return [USER_BASE + i for i in sorted(self.hot_ids)]

    @property
    def cold_uids(self) -> list[int]:
        return [USER_BASE + i for i in range(len(self.users)) if i not in self.hot_ids]

    def urls(self) -> dict[str, str]:
        return {
            "telegram_url": self.tg.url,
            "gotsms_url": self.got.url,
            "gosms_url": self.gosms.url,
        }

    async def close(self) -> None:
        for fake in (self.got, self.tg, self.gosms):
            await fake.close()


async def start_world(n_users: int, hot_share: float, seed: int) -> World:
    """The fakes on loopback (LATENCY each, Telegram's rate limits on), N users with a rent."""
    from bench._fakes import MeasuringTelegram, ScaledGotSMS
    from tests.fakes.gosms import FakeGoSMS

    rng = random.Random(seed + n_users)
    got, tg, gosms = ScaledGotSMS(), MeasuringTelegram(bot_token=BOT_TOKEN), FakeGoSMS()
    for fake in (got, tg, gosms):
        await fake.start()
        fake.set_latency(LATENCY)
    tg.enforce_rate_limits(per_chat_per_sec=1.0, burst=3, global_per_sec=30.0)
    plan_id = got.plan_by("Telegram", "day", 1)["id"]
    got.set_stock(plan_id, n_users + 10)
    n_hot = max(1, round(n_users * hot_share))
    hot_ids = set(rng.sample(range(n_users), n_hot))
    now = datetime.now(UTC)
    users, rent_of = [], {}
    for i in range(n_users):
        uid, token, hot = USER_BASE + i, f"bench-{n_users}-{i:06d}-token", i in hot_ids
        got.add_account(token, balance=1000.0)
        # cold users' rents are older than the 30-minute hot window (the rents job would heat them)
        created = now if hot else now - timedelta(hours=2)
        rent_of[uid] = got.create_rent(token, plan_id, created_at=created)["id"]
        tg.register_chat(uid)
        users.append({"id": uid, "token": token, "hot": hot})
    return World(got, tg, gosms, rng, users, rent_of, hot_ids)


def plan_codes(world: World, duration: float, codes_per_hot: int) -> list[tuple[float, int, bool]]:
    """(offset in the window, user, hot) of every code to inject, in order."""
    rng, plan = world.rng, []
    hot_end = max(duration - 5.0, 1.0)
    for uid in world.hot_uids:  # at random moments, one in each part of the window
        for part in range(codes_per_hot):
            lo = hot_end * part / codes_per_hot
            hi = hot_end * (part + 1) / codes_per_hot
            plan.append((rng.uniform(lo, hi), uid, True))
    cold_end = max(duration - 60.0, duration / 2)  # leave the 60 s promise inside the window
    cold = world.cold_uids
    for uid in rng.sample(cold, min(COLD_SAMPLE, len(cold))):
        plan.append((rng.uniform(0.0, cold_end), uid, False))
    plan.sort()
    return plan


async def inject(
    world: World, plan: list[tuple[float, int, bool]], t0: float, duration: float
) -> list[Injected]:
    """Each code at its moment, then waits for the window's end and for stragglers (at most
    TAIL_CAP after the last injection)."""
    injected: list[Injected] = []
    code_seq = world.rng.randrange(10_000_000, 50_000_000)
    for offset, uid, hot in plan:
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        code_seq += 1
        code = str(code_seq)
        world.tg.watched.add(code)
        view = world.got.inject_message(
            world.rent_of[uid], f"Your Telegram code: {code}. Do not share it.", code=code
        )
        injected.append(Injected(code, uid, hot, time.monotonic(), view["id"]))
    delay = t0 + duration - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    last = injected[-1].at if injected else t0
    while time.monotonic() < last + TAIL_CAP:
        if all(i.code in world.tg.accepted for i in injected):
            break
        await asyncio.sleep(0.5)
    return injected


# ============================================================================ scoring


@dataclass(kw_only=True)
class Score:
    """What the fakes saw: latencies, losses, duplicates, the GotSMS budget."""

    hot_lat: list[float] = field(default_factory=list)
    cold_lat: list[float] = field(default_factory=list)
    lost_hot: int = 0
    lost_cold: int = 0
    duplicates: int = 0
    hot_found: list[float] = field(default_factory=list)
    hot_after_found: list[float] = field(default_factory=list)
    cold_found: list[float] = field(default_factory=list)
    cold_after_found: list[float] = field(default_factory=list)
    window_requests: dict[str, int] = field(default_factory=dict)
    window_s: float = 1.0
    max_req_60s: int = 0
    over_budget_tokens: int = 0
    gotsms_requests: int = 0
    gotsms_429: int = 0
    tg_refused: dict[int, int] = field(default_factory=dict)
    log_counts: dict[str, int] = field(default_factory=dict)
    log_samples: list[str] = field(default_factory=list)


def score(into: Score, world: World, injected: list[Injected], t0: float, t_end: float) -> None:
    got, tg = world.got, world.tg
    for item in injected:
        times = tg.accepted.get(item.code, [])
        if not times:
            if item.hot:
                into.lost_hot += 1
            else:
                into.lost_cold += 1
            continue
        into.duplicates += len(times) - 1
        (into.hot_lat if item.hot else into.cold_lat).append(times[0] - item.at)
        served = got.first_served.get(item.message_id)
        if served is not None:
            (into.hot_found if item.hot else into.cold_found).append(served - item.at)
            after = into.hot_after_found if item.hot else into.cold_after_found
            after.append(times[0] - served)
    by_token: dict[str | None, list[float]] = defaultdict(list)
    for request in got.requests:
        by_token[request.token].append(request.at)
        into.gotsms_429 += request.status == 429
    into.gotsms_requests = len(got.requests)
    into.window_s = t_end - t0
    for request in got.requests:
        if t0 <= request.at <= t_end:
            key = request.path if not request.path.startswith("/rents") else "/rents"
            into.window_requests[key] = into.window_requests.get(key, 0) + 1
    peaks = [max_in_window(times) for token, times in by_token.items() if token]
    into.max_req_60s = max(peaks, default=0)
    into.over_budget_tokens = sum(1 for p in peaks if p > BUDGET)
    into.tg_refused = dict(tg.refused)
    if got.errors or tg.errors:
        print(f"  !! fake errors: gotsms={got.errors[:3]} telegram={tg.errors[:3]}")


def requests_between(world: World, start: float, end: float) -> int:
    return sum(1 for r in world.got.requests if start <= r.at <= end)


def read_log(into: Score, text: str) -> None:
    """Counts the bot's WARNING / ERROR / Traceback lines and keeps a few."""
    for line in text.splitlines():
        for level in ("ERROR", "WARNING", "Traceback"):
            if level in line:
                into.log_counts[level] = into.log_counts.get(level, 0) + 1
                if len(into.log_samples) < 5 and level != "Traceback":
                    into.log_samples.append(line[:240])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def max_in_window(times: list[float], window: float = 60.0) -> int:
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def fmt3(values: list[float]) -> str:
    """p50 p95 max."""
    if not values:
        return "      -       -       -"
    return f"{pct(values, 50):7.2f} {pct(values, 95):7.2f} {max(values):7.2f}"


def outbox_line(outbox: list[dict[str, Any]]) -> str:
    sent = sum(o["n"] for o in outbox if o["sent"])
    pending = sum(o["n"] for o in outbox if not o["sent"] and o["dropped"] is None)
    dropped = {o["dropped"]: o["n"] for o in outbox if o["dropped"]}
    return f"outbox sent {sent}, pending {pending}, dropped {dropped}"


def details(s: Score) -> str:
    """The latency split, the request rates and the log lines of a run."""
    return (
        f"    split p50/p95/max s: hot inject->1st /messages with it {fmt3(s.hot_found)},"
        f" ->Telegram {fmt3(s.hot_after_found)}; cold {fmt3(s.cold_found)} /"
        f" {fmt3(s.cold_after_found)}\n"
        f"    GotSMS requests/s in the measured window: "
        + ", ".join(f"{k} {v / s.window_s:.1f}" for k, v in sorted(s.window_requests.items()))
        + f"\n    bot log lines: {s.log_counts or 'none above INFO'}"
        + "".join(f"\n      {line}" for line in s.log_samples)
    )
