"""Retention over simulated months (issue 15): the database of a bot with N users, with the daily
pruning (bot/poller/retention.py, RETENTION_DAYS=30) and without it.

    .venv/bin/python bench/retention.py [--users 10000] [--days 60] [--every 15] [--seed 1]

Two fresh SQLite databases (the bot's migrations) get the same rows each simulated day: what a
day of pushes, polls, rentals, SMS and campaigns leaves in the tables, per user by a profile
(below). At the end of each day the real Retention.prune runs on one of them with the fake
clock. Every `--every` days both are measured: the file size (SQLite does not give freed pages
back: what is freed is reused), the live size (pages in use), and the rows per table.

Profiles of a day, by share of the users (synthetic, but counts a real bot of codes sees):
  heavy (5 %):    20 codes, 2 rentals, 4 SMS sent, a device episode every other day
  regular (35 %): 3 codes, a rental every other day, 1 SMS sent
  idle (60 %):    a code every 10 days
  and: 1 % of users run a /bulk campaign of 100 rows a day; 2 % share codes with a group;
  30 % have a GoSMS device; 10 % leave a dialog (a kept search) each day.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from bot.db.engine import create_engine, create_session_factory  # noqa: E402
from bot.db.fsm import FsmRecord  # noqa: E402
from bot.db.migrate import upgrade_to_head  # noqa: E402
from bot.db.models import (  # noqa: E402
    Base,
    Campaign,
    CampaignRow,
    Confirmation,
    Credential,
    NotificationSettings,
    RentWatch,
    SentSms,
    User,
)
from bot.db.outbox import OutboxItem, PollState  # noqa: E402
from bot.poller.retention import Retention  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
JOBS = ("codes", "rents", "balance", "no_code", "wake", "devices", "sms")
CODE_BODY = "Your Telegram code: 12345. Do not give this code to anyone, even if they say so."


@dataclass(frozen=True)
class Profile:
    codes: float
    rents: float
    sms: float
    episodes: float


HEAVY = Profile(codes=20, rents=2, sms=4, episodes=0.5)
REGULAR = Profile(codes=3, rents=0.5, sms=1, episodes=0.2)
IDLE = Profile(codes=0.1, rents=0.02, sms=0, episodes=0)


def profile_of(user: int, users: int) -> Profile:
    share = user / users
    return HEAVY if share < 0.05 else REGULAR if share < 0.40 else IDLE


def times(rng: random.Random, rate: float) -> int:
    """How many today at `rate` a day (the whole part, and the rest by chance)."""
    whole = int(rate)
    return whole + (1 if rng.random() < rate - whole else 0)


@dataclass
class Day:
    rows: dict[Any, list[dict[str, Any]]]

    def add(self, table: Any, **values: Any) -> None:
        self.rows.setdefault(table, []).append(values)


def payload(**values: Any) -> str:
    return json.dumps(values, ensure_ascii=False)


def one_day(day: int, users: int, rng: random.Random, campaign_ids: list[int]) -> Day:
    """The rows a day leaves (the outbox rows sent within the day)."""
    today = Day({})
    base = START + timedelta(days=day)
    for user in range(1, users + 1):
        profile = profile_of(user, users)
        at = base + timedelta(seconds=rng.randrange(86_000))
        sent = {"created_at": at, "not_before": at, "sent_at": at + timedelta(seconds=2)}
        for n in range(times(rng, profile.codes)):
            key = f"{day}-{n}-{rng.getrandbits(32):08x}"
            body = payload(service="Telegram", phone="+79990001122", code="12345", body=CODE_BODY)
            today.add(OutboxItem, user_id=user, kind="code", dedupe_key=key, payload=body, **sent)
            if user % 50 == 0:
                shown = payload(code="12345", phone="+79990001122")
                today.add(
                    OutboxItem, user_id=user, kind="group_code", dedupe_key=key, payload=shown,
                    chat_id=-100_000 - user, **sent,
                )  # fmt: skip
        for n in range(times(rng, profile.rents)):
            rent = f"r{day}-{user}-{n}"
            today.add(
                Confirmation, id=f"c{rent}"[:24], user_id=user, action="rent",
                payload=payload(plan_id="p1", phone="+7999"), created_at=at, consumed_at=at,
            )  # fmt: skip
            today.add(
                RentWatch, rent_id=rent, user_id=user, made_here=True, started_at=at,
                updated_at=at, phone="+79990001122", service_name="Telegram",
            )  # fmt: skip
            expiring = payload(rent_id=rent, phone="+7999", service="Telegram", within="1h")
            today.add(
                OutboxItem, user_id=user, kind="rent_expiring", dedupe_key=f"{rent}:1h",
                payload=expiring, **sent,
            )  # fmt: skip
        for n in range(times(rng, profile.sms)):
            sms = f"s{day}-{user}-{n}"
            today.add(
                Confirmation, id=f"c{sms}"[:24], user_id=user, action="send",
                payload=payload(phone="+7999", text="Hello there"), created_at=at, consumed_at=at,
            )  # fmt: skip
            today.add(
                SentSms, user_id=user, sms_id=sms, chat_id=user, message_id=n + 1,
                phone="+79990001122", text="Hello there", status=3, created_at=at, updated_at=at,
            )  # fmt: skip
            for status in (1, 3):
                card = payload(sms_id=sms, phone="+7999", text="Hello there", status=status)
                today.add(
                    OutboxItem, user_id=user, kind="sms_card", dedupe_key=f"{sms}:{status}",
                    payload=card, **sent,
                )  # fmt: skip
            today.add(
                OutboxItem, user_id=user, kind="sms_final", dedupe_key=f"{sms}:final",
                payload=payload(phone="+7999", status=3), **sent,
            )  # fmt: skip
        if user % 10 < 3 and rng.random() < profile.episodes:
            device = f"dev{user:06d}"
            count = 2 * day  # an episode a day at most: bad then ok
            for state, number in (("bad", count), ("ok", count + 1)):
                today.add(
                    OutboxItem, user_id=user, kind="device_online",
                    dedupe_key=f"{device}:net:{state}:{number}",
                    payload=payload(device_id=device, name="Pixel", bad=state == "bad"), **sent,
                )  # fmt: skip
        if user % 100 == day % 100:
            campaign_ids.append(len(campaign_ids) + 1)
            today.add(
                Campaign, id=campaign_ids[-1], user_id=user, state="done", total=100,
                created_at=at, started_at=at, finished_at=at + timedelta(hours=1),
            )  # fmt: skip
            for line in range(1, 101):
                today.add(
                    CampaignRow, campaign_id=campaign_ids[-1], line=line,
                    phone=f"+7999{line:07d}", text="Sale today only!", state="sent",
                    sms_id=f"b{campaign_ids[-1]}-{line}", tried_at=at, updated_at=at,
                )  # fmt: skip
            today.add(
                OutboxItem, user_id=user, kind="campaign_card",
                dedupe_key=f"{campaign_ids[-1]}:done", payload=payload(id=campaign_ids[-1]),
                **sent,
            )  # fmt: skip
        if rng.random() < 0.10:
            key = f"1:{user}::{user}::gotsms"
            data = payload(searches={f"{day:08x}": "telegram"})
            today.add(FsmRecord, key=key, state=None, data=data, updated_at=at)
    return today


async def create(path: Path, users: int) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade_to_head(engine)
    async with engine.begin() as connection:
        ids = range(1, users + 1)
        await connection.execute(
            insert(User), [{"id": u, "chat_id": u, "language_code": "en"} for u in ids]
        )
        await connection.execute(insert(NotificationSettings), [{"user_id": u} for u in ids])
        await connection.execute(
            insert(Credential),
            [{"user_id": u, "service": "gotsms", "token_encrypted": b"x" * 120} for u in ids],
        )
        await connection.execute(
            insert(PollState),
            [{"user_id": u, "job": job, "next_at": START} for u in ids for job in JOBS],
        )
    return engine


async def write(engine: AsyncEngine, day: Day) -> None:
    async with engine.begin() as connection:
        for table, rows in day.rows.items():
            if table is FsmRecord:  # one row per dialog: kept up to date
                keys = [row["key"] for row in rows]
                await connection.execute(
                    FsmRecord.__table__.delete().where(FsmRecord.key.in_(keys))
                )
            await connection.execute(insert(table), rows)


@dataclass(frozen=True)
class Size:
    file_mb: float
    live_mb: float
    rows: dict[str, int]


async def measure(engine: AsyncEngine, path: Path) -> Size:
    async with engine.connect() as connection:
        await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        pages = (await connection.execute(text("PRAGMA page_count"))).scalar_one()
        free = (await connection.execute(text("PRAGMA freelist_count"))).scalar_one()
        page = (await connection.execute(text("PRAGMA page_size"))).scalar_one()
        rows = {}
        for table in Base.metadata.sorted_tables:
            count = await connection.scalar(select(func.count()).select_from(table))
            rows[table.name] = int(count or 0)
        codes = select(func.count()).where(OutboxItem.kind == "code")
        rows["outbox (codes)"] = int(await connection.scalar(codes) or 0)
    files = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return Size(files / 1e6, (pages - free) * page / 1e6, rows)


SHOWN = (
    "outbox",
    "outbox (codes)",
    "confirmations",
    "sent_sms",
    "campaigns",
    "campaign_rows",
    "rent_watch",
    "fsm_state",
)


def line(day: int, kind: str, size: Size, took: float | None = None) -> str:
    counts = " | ".join(f"{size.rows[name]:>9,}" for name in SHOWN)
    prune = "" if took is None else f" {took:6.1f} s"
    return (
        f"| {day:>3} | {kind:<10} | {size.file_mb:>8.1f} | {size.live_mb:>8.1f} | {counts} |{prune}"
    )


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as where:
        kept_path, all_path = Path(where) / "pruned.db", Path(where) / "unpruned.db"
        pruned_db = await create(kept_path, args.users)
        unpruned_db = await create(all_path, args.users)
        retention = Retention(create_session_factory(pruned_db), args.retention_days)
        campaigns: list[int] = []
        header = " | ".join(f"{name:>9}" for name in SHOWN)
        print(f"{args.users} users, RETENTION_DAYS={args.retention_days}, {args.days} days")
        print(f"| day | database   |  file MB |  live MB | {header} | prune")
        print("|" + "---|" * (len(SHOWN) + 4))
        prune_time = 0.0
        for day in range(args.days):
            rows = one_day(day, args.users, rng, campaigns)
            await write(pruned_db, rows)
            await write(unpruned_db, rows)
            began = time.perf_counter()
            await retention.prune(START + timedelta(days=day + 1))
            prune_time = time.perf_counter() - began
            if (day + 1) % args.every == 0:
                print(line(day + 1, "unpruned", await measure(unpruned_db, all_path)))
                print(line(day + 1, "pruned", await measure(pruned_db, kept_path), prune_time))
                sys.stdout.flush()
        await pruned_db.dispose()
        await unpruned_db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--every", type=int, default=15, help="measure every N days")
    parser.add_argument("--retention-days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
