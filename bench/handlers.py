"""Handler throughput: the real dispatcher against a bare aiogram echo bot (issue 6, item 6).

    .venv/bin/python bench/handlers.py [--updates 5000] [--users 500] [--concurrency 100]
                                       [--repeat 3] [--database sqlite postgres]
                                       [--profile-dir DIR]

`--database postgres` runs the bot on a PostgreSQL database of its own (BENCH_POSTGRES_URL's
server, default 127.0.0.1:5432) with its dialogs in Redis under a namespace of its own
(BENCH_REDIS_URL, default 127.0.0.1:6379), as several instances run; both are dropped afterwards.
Given both, it runs one after the other and ends with the bot / same-calls echo ratio of each.

Two processes:
  * this one (the driver) serves the three fakes (Telegram, GotSMS, GoSMS; 20 ms latency each) on
    loopback, makes the updates (the fake Telegram stores each user message, and the presses point
    at real bot messages with the buttons the bot drew), and counts what reached the fakes;
  * the bot process holds three bots, each with its own aiohttp session to the same fake Telegram:
    the real one (build_deps + create_bot + create_dispatcher, exactly what `python -m bot` runs,
    without the poller); a bare echo (aiogram `Bot` + `Dispatcher()` with one message handler
    that answers the text and one callback handler that answers the query); and a "same-calls"
    echo, as bare, that makes for each kind of update the API calls the real bot makes (MIX) and
    nothing else: the floor under the real bot's cost. It feeds each phase's updates as aiogram's
    polling does with handle_as_tasks: one task per update, at most `--concurrency` at once
    (aiogram's `tasks_concurrency_limit`; 100 = one getUpdates page).

Before the measured phases: a setup process seeds the database through the real services (users
via UserRepo.upsert_seen, GotSMS tokens via store_token), then every user sends /start and /rents
to the real bot (this draws the menus and lists the presses are made on), and each bot gets one
unmeasured round of the mix (one-time costs, such as pydantic building a type on first use, are
not what a handler costs). Each repeat runs the three bots on fresh updates of the same mix, in
alternating order. `--profile-dir` writes a pyinstrument profile of each measured real phase.

Handler time: from the start of the update's task to the end of `dp.feed_update` (so it includes
waiting for the CPU behind the other tasks in flight). The GotSMS fake's 30 requests/minute per
token is lifted (a benchmark user sends ~10 commands in a few seconds); Telegram's rate limits
are off. Both are about API budgets, not about what a handler costs.
"""

# ruff: noqa: ASYNC230, ASYNC240  (a benchmark driver: blocking file I/O is fine)
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._workload import pct  # noqa: E402

LATENCY = 0.02
USER_BASE = 2_000_000
SECRET_KEY = "bench-secret-key-0123456789"
BOT_TOKEN = "123456:BENCH-fake-bot-token-0123456789abcdef"
RENTS_PER_USER = 2
# kind -> (share of the updates, API calls the real bot makes one after the other for it);
# a press is on a button the real bot drew in the warm-up
MIX = {
    "/start": (0.15, 1),  # sendMessage
    "/balance": (0.15, 2),  # GotSMS /account, sendMessage
    "/rents": (0.15, 2),  # GotSMS /rents, sendMessage
    "press: menu Balance": (0.15, 3),  # answerCallbackQuery, GotSMS /account, sendMessage
    "press: menu My rents": (0.10, 3),  # answerCallbackQuery, GotSMS /rents, sendMessage
    "press: open rent card": (0.15, 3),  # answerCallbackQuery, GotSMS /rents, editMessageText
    "press: rent status": (0.15, 4),  # ... GotSMS /rents and /numbers/{id}/status, edit
}
HANDLER_BUDGET = 0.100  # target: p95 handler time <= this + the kind's API calls x LATENCY


# ============================================================================ bot side


def _settings(cfg: dict[str, Any]) -> Any:
    from bench._procs import bot_settings

    return bot_settings(cfg, BOT_TOKEN, SECRET_KEY)


async def setup_main(cfg: dict[str, Any]) -> None:
    """Fresh DB; every user seen once and with a GotSMS token, through the real code."""
    from bot.app import build_deps
    from bot.db.models import Service
    from bot.db.repo import UserRepo
    from bot.services.credentials import store_token

    deps = await build_deps(_settings(cfg))
    users = json.loads(Path(cfg["users_file"]).read_text())
    for user in users:
        async with deps.session_factory() as session:
            await UserRepo(session).upsert_seen(user["id"], user["id"], "en")
            await session.commit()
            await store_token(session, deps.cipher, user["id"], Service.GOTSMS, user["token"])
    await deps.close()


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _main_thread_cpu() -> float:
    """CPU seconds of the event loop's thread alone (the rest is aiosqlite's threads)."""
    return time.thread_time()


async def _feed(dp: Any, bot: Any, items: list[list[Any]], concurrency: int) -> dict[str, Any]:
    """aiogram's polling loop with handle_as_tasks and tasks_concurrency_limit, timed."""
    from aiogram.types import Update

    times: dict[str, list[float]] = defaultdict(list)
    failed: Counter[str] = Counter()
    semaphore = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def one(kind: str, update: Update) -> None:
        began = time.perf_counter()
        try:
            await dp.feed_update(bot, update)
        except Exception:  # as aiogram's _process_update: log it and go on
            logging.getLogger("bench").exception("update %s failed", update.update_id)
            failed[kind] += 1
        finally:
            times[kind].append(time.perf_counter() - began)
            semaphore.release()

    cpu, main_cpu, wall = _cpu(), _main_thread_cpu(), time.perf_counter()
    sys_before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for kind, raw in items:
        await semaphore.acquire()
        update = Update.model_validate(raw, context={"bot": bot})
        task = asyncio.create_task(one(kind, update))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    return {
        "wall": time.perf_counter() - wall,
        "cpu": _cpu() - cpu,
        "main_cpu": _main_thread_cpu() - main_cpu,
        "sys": resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys_before,
        "times": times,
        "failed": dict(failed),
    }


def _echo() -> Any:
    """The bare aiogram bot: no middlewares, no database, one handler per update type."""
    from aiogram import Dispatcher
    from aiogram.types import CallbackQuery, Message

    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "?")

    @dp.callback_query()
    async def echo_press(query: CallbackQuery) -> None:
        await query.answer(query.data)

    return dp


def _echo_same_calls(got: Any, tokens: dict[int, str]) -> Any:
    """A bare aiogram bot that makes, for each kind of update, the API calls the real bot makes
    (MIX) and nothing else: no middlewares, database, texts or keyboards of its own. Its answers
    carry the main menu's ten buttons (so Telegram's answers are as big as the real bot's), and
    GotSMS answers are only decoded from JSON. The floor under the real bot's cost per update."""
    from aiogram import Dispatcher, F
    from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

    from bot.keyboards.gotsms import RentCb, long_id

    dp = Dispatcher()
    menu = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=f"Button {2 * i + j}", callback_data=f"menu:b{i}{j}")]
            for i in range(5)
            for j in range(2)
        ]
    )
    text = "The same calls, a text of a few lines. " * 6

    async def gotsms(user_id: int, path: str) -> Any:
        headers = {"Authorization": f"Bearer {tokens[user_id]}", "Accept": "application/json"}
        async with got.get(path, headers=headers, params={"page": 1, "per_page": 10}) as resp:
            return await resp.json()

    @dp.message(F.text == "/start")
    async def start(message: Message) -> None:
        await message.answer(text, reply_markup=menu)

    @dp.message(F.text.in_({"/balance", "/rents"}))
    async def command(message: Message) -> None:
        assert message.from_user is not None
        await gotsms(message.from_user.id, "account" if message.text == "/balance" else "rents")
        await message.answer(text, reply_markup=menu)

    @dp.callback_query(F.data.startswith("menu:"))
    async def menu_press(query: CallbackQuery) -> None:
        await query.answer()
        path = "account" if query.data == "menu:balance" else "rents"
        await gotsms(query.from_user.id, path)
        assert query.message is not None
        await query.message.answer(text, reply_markup=menu)

    @dp.callback_query(RentCb.filter())
    async def card_press(query: CallbackQuery, callback_data: RentCb) -> None:
        await query.answer()
        await gotsms(query.from_user.id, "rents")
        if callback_data.a == "s":
            await gotsms(query.from_user.id, f"numbers/{long_id(callback_data.id)}/status")
        assert isinstance(query.message, Message)
        await query.message.edit_text(f"{text} {query.id}", reply_markup=menu)

    return dp


def _dispatcher(deps: Any, cfg: dict[str, Any]) -> Any:
    """The real dispatcher; on Redis its dialogs under this run's namespace (deleted after)."""
    from bot.app import create_dispatcher

    if cfg.get("redis_namespace"):
        return create_dispatcher(deps, redis_prefix=f"{cfg['redis_namespace']}:fsm")
    return create_dispatcher(deps)


def _profiler() -> Any:
    """pyinstrument on the event loop's thread: py-spy, sampling from outside, missed half of
    its CPU time here."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    return profiler


async def bot_main(cfg: dict[str, Any]) -> None:
    from bot.lazy_types import import_aiogram

    import_aiogram()  # as `python -m bot` does
    import aiohttp
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    from bot.app import build_deps, create_bot, freeze_startup_heap
    from bot.logs import setup_logging

    settings = _settings(cfg)
    setup_logging(settings.log_level, [BOT_TOKEN, SECRET_KEY])
    deps = await build_deps(settings)
    tokens = {u["id"]: u["token"] for u in json.loads(Path(cfg["users_file"]).read_text())}
    got = aiohttp.ClientSession(base_url=cfg["gotsms_url"].rstrip("/") + "/")

    def bare() -> Any:
        api = TelegramAPIServer.from_base(cfg["telegram_url"])
        return Bot(BOT_TOKEN, session=AiohttpSession(api=api))

    bots = {
        "real": (create_bot(settings), _dispatcher(deps, cfg)),
        "echo": (bare(), _echo()),
        "calls": (bare(), _echo_same_calls(got, tokens)),
    }

    def say(kind: str, data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"kind": kind} | data) + "\n")
        sys.stdout.flush()

    freeze_startup_heap()  # as `python -m bot` does before its first update
    say("ready", {"pid": os.getpid()})
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "stop":
            break
        order = json.loads(line)
        bot, dp = bots[order["bot"]]
        items = json.loads(Path(order["file"]).read_text())
        profiler = _profiler() if order.get("profile") else None
        result = await _feed(dp, bot, items, order["concurrency"])
        if profiler is not None:
            profiler.stop()
            for suffix, show_all in ((".txt", False), (".all.txt", True)):
                text = profiler.output_text(unicode=False, color=False, show_all=show_all)
                Path(order["profile"] + suffix).write_text(text)
        say("result", result)
    for bot, _dp in bots.values():
        await bot.session.close()
    await got.close()
    await deps.close()


# ============================================================================ driver side


class World:
    """The fakes, the users, and the buttons each user can press."""

    def __init__(self, n_users: int, seed: int) -> None:
        from bench._fakes import ScaledGotSMS
        from tests.fakes.gosms import FakeGoSMS
        from tests.fakes.telegram import FakeTelegram

        self.rng = random.Random(seed)
        self.got = ScaledGotSMS(rate_limit=1_000_000)
        self.tg = FakeTelegram(bot_token=BOT_TOKEN)
        self.gosms = FakeGoSMS()
        self.uids = [USER_BASE + i for i in range(n_users)]
        self.buttons: dict[int, dict[str, tuple[int, str]]] = {}

    async def start(self) -> list[dict[str, Any]]:
        for fake in (self.got, self.tg, self.gosms):
            await fake.start()
            fake.set_latency(LATENCY)
        plan_id = self.got.plan_by("Telegram", "day", 1)["id"]
        self.got.set_stock(plan_id, len(self.uids) * RENTS_PER_USER + 10)
        users = []
        for uid in self.uids:
            token = f"bench-handlers-{uid}-token"
            self.got.add_account(token, balance=1000.0)
            for _ in range(RENTS_PER_USER):
                self.got.create_rent(token, plan_id)
            self.tg.user(uid, first_name=f"User {uid}", language_code="en")
            self.tg.register_chat(uid)
            users.append({"id": uid, "token": token})
        return users

    async def close(self) -> None:
        for fake in (self.got, self.tg, self.gosms):
            await fake.close()

    def warmup(self) -> list[list[Any]]:
        """Every user: /start (the main menu) and /rents (the list with the rent buttons)."""
        items = [["/start", self.tg.message_update(uid, "/start")] for uid in self.uids]
        return items + [["/rents", self.tg.message_update(uid, "/rents")] for uid in self.uids]

    def learn_buttons(self) -> None:
        """The callback data of the buttons the real bot drew in each user's chat."""
        from bot.keyboards.gotsms import RentCb

        for uid in self.uids:
            found: dict[str, tuple[int, str]] = {}
            for message in self.tg.bot_messages(uid):
                for row in message.buttons:
                    for button in row:
                        data = button.callback_data or ""
                        if data == "menu:balance":
                            found["press: menu Balance"] = (message.message_id, data)
                        elif data == "menu:rents":
                            found["press: menu My rents"] = (message.message_id, data)
                        elif data.startswith(RentCb.__prefix__ + ":o:"):
                            found["press: open rent card"] = (message.message_id, data)
                            status = RentCb.unpack(data).model_copy(update={"a": "s"}).pack()
                            found["press: rent status"] = (message.message_id, status)
            missing = [k for k in MIX if k.startswith("press") and k not in found]
            if missing:
                raise RuntimeError(f"user {uid}: no button for {missing} after the warm-up")
            self.buttons[uid] = found

    def updates(self, n: int) -> list[list[Any]]:
        kinds = self.rng.choices(list(MIX), weights=[w for w, _ in MIX.values()], k=n)
        items = []
        for kind in kinds:
            uid = self.rng.choice(self.uids)
            if kind.startswith("/"):
                items.append([kind, self.tg.message_update(uid, kind)])
            else:
                message_id, data = self.buttons[uid][kind]
                items.append([kind, self.tg.callback_update(uid, message_id, data)])
        return items


class BotProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def read(self, kind: str, within: float = 600) -> dict[str, Any]:
        from bench._procs import read_json

        assert self.proc.stdout is not None
        return await read_json(self.proc.stdout, kind, within)

    async def order(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()


async def run_phase(
    world: World,
    bot: BotProcess,
    which: str,
    items: list[list[Any]],
    work: Path,
    concurrency: int,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    path = work / f"updates-{which}-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(items))
    tg_before, got_before = len(world.tg.calls), len(world.got.requests)
    presses = {raw["callback_query"]["id"] for _k, raw in items if "callback_query" in raw}
    cpu = _cpu()
    order = {"bot": which, "file": str(path), "concurrency": concurrency}
    if profile_to is not None:
        order["profile"] = str(profile_to)
    await bot.order(json.dumps(order))
    result = await bot.read("result")
    result["fake_cpu"] = _cpu() - cpu
    path.unlink()
    tg_calls = world.tg.calls[tg_before:]
    got_calls = world.got.requests[got_before:]
    result["tg_calls"] = dict(Counter(c.method for c in tg_calls))
    result["tg_refused"] = dict(  # an unchanged card is not an error (util.show)
        Counter(
            f"{c.method} {c.http_status}"
            for c in tg_calls
            if not c.ok and "message is not modified" not in (c.description or "")
        )
    )
    result["got_calls"] = len(got_calls)
    result["got_refused"] = dict(Counter(r.status for r in got_calls if r.status >= 400))
    answers = [world.tg.callback_queries[q] for q in presses]
    result["unanswered"] = sum(1 for a in answers if not a.answered)
    result["alerts"] = sum(1 for a in answers if a.show_alert)
    result["n"] = len(items)
    return result


def _fmt_ms(values: list[float]) -> str:
    if not values:
        return "    -      -      -"
    return (
        f"{1000 * pct(values, 50):5.0f}  {1000 * pct(values, 95):5.0f}  {1000 * max(values):5.0f}"
    )


def budget_of(kind: str) -> float:
    return HANDLER_BUDGET + MIX[kind][1] * LATENCY


def report(which: str, r: dict[str, Any]) -> str:
    rate = r["n"] / r["wall"]
    lines = [
        f"  {which}: {r['n']} updates in {r['wall']:.2f} s = {rate:7.1f} updates/s;"
        f" bot CPU {r['cpu']:.2f} s ({100 * r['cpu'] / r['wall']:.0f} %,"
        f" {1000 * r['cpu'] / r['n']:.2f} ms/update, of which the loop's thread"
        f" {1000 * r['main_cpu'] / r['n']:.2f}, in the kernel {1000 * r['sys'] / r['n']:.2f});"
        f" fakes CPU {r['fake_cpu']:.2f} s;"
        f" Telegram calls {sum(r['tg_calls'].values())} {r['tg_calls']},"
        f" GotSMS calls {r['got_calls']}"
    ]
    problems = {
        "failed": r["failed"],
        "Telegram refused": r["tg_refused"],
        "GotSMS refused": r["got_refused"],
        "presses unanswered": r["unanswered"],
        "presses answered with an alert": r["alerts"],
    }
    bad = {k: v for k, v in problems.items() if v}
    lines.append(f"    problems: {bad or 'none'}")
    lines.append("    kind                        n  p50 ms p95 ms max ms  target p95")
    for kind in [*MIX, *sorted(set(r["times"]) - set(MIX))]:
        if kind in r["times"]:
            t = r["times"][kind]
            budget = f"<= {1000 * budget_of(kind):3.0f} ms" if kind in MIX else ""
            lines.append(f"    {kind:24s} {len(t):5d}  {_fmt_ms(t)}  {budget}")
    everything = [v for t in r["times"].values() for v in t]
    lines.append(f"    {'all':24s} {len(everything):5d}  {_fmt_ms(everything)}")
    return "\n".join(lines)


async def driver(args: argparse.Namespace) -> None:
    from bench._procs import server_place

    began = time.monotonic()
    print(
        f"bench/handlers.py: {args.updates} updates per phase, {args.users} users,"
        f" concurrency {args.concurrency}, API latency {LATENCY * 1000:.0f} ms,"
        f" {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, python {sys.version.split()[0]}",
        flush=True,
    )
    ratios: dict[str, list[float]] = {}
    for database in args.database:
        print(f"== on {database}", flush=True)
        if database == "postgres":
            async with server_place("bench_handlers") as place:
                rows = await run_database(args, place)
        else:
            rows = await run_database(args, {})
        ratios[database] = [rate_of(r["real"]) / rate_of(r["calls"]) for r in rows]
    print()
    print("| database | bot / same-calls echo, each run | mean | goal |")
    print("|---|---|---|---|")
    for database, values in ratios.items():
        each = ", ".join(f"{100 * v:.0f} %" for v in values)
        mean = 100 * sum(values) / len(values)
        print(f"| {database} | {each} | {mean:.0f} % | >= 50 % |")
    print(f"total run time {time.monotonic() - began:.0f} s, load {os.getloadavg()}")


async def run_database(
    args: argparse.Namespace, place: dict[str, str]
) -> list[dict[str, dict[str, Any]]]:
    """Setup, the bot process and the measured phases on one database (SQLite without place)."""
    from bench._procs import run_setup, start_bot

    world = World(args.users, args.seed)
    users = await world.start()
    tmp = tempfile.TemporaryDirectory(prefix="bench-handlers-")
    work = Path(tmp.name)
    cfg: dict[str, Any] = {
        "telegram_url": world.tg.url,
        "gotsms_url": world.got.url,
        "gosms_url": world.gosms.url,
        "database_url": f"sqlite+aiosqlite:///{work}/data/bot.db",
        "users_file": str(work / "users.json"),
    } | place
    Path(cfg["users_file"]).write_text(json.dumps(users))
    t = time.monotonic()
    await run_setup(__file__, cfg)
    print(f"setup: {len(users)} users with a GotSMS token in {time.monotonic() - t:.1f} s")
    errlog = open(work / "bot.stderr", "wb")  # noqa: SIM115
    proc = await start_bot(__file__, cfg, errlog, 2**26)
    bot = BotProcess(proc)
    backend = "postgres" if place else "sqlite"
    log_copy = Path(tempfile.gettempdir()) / f"bench-handlers-bot-{backend}.log"
    try:
        rows = await measure(world, bot, work, args)
    finally:
        errlog.close()
        log_copy.write_bytes((work / "bot.stderr").read_bytes())
    await bot.order("stop")
    await proc.wait()
    log_text = log_copy.read_text(errors="replace")
    levels = Counter(
        level
        for line in log_text.splitlines()
        for level in ("WARNING", "ERROR", "Traceback")
        if level in line
    )
    samples = [line[:200] for line in log_text.splitlines() if "WARNING" in line or "ERROR" in line]
    await world.close()
    tmp.cleanup()

    print()
    print(f"on {backend}:")
    print(summary(rows, args))
    print(f"bot log ({log_copy}): {dict(levels) or 'nothing above INFO'}")
    for line in samples[:5]:
        print(f"  {line}")
    return rows


async def measure(
    world: World, bot: BotProcess, work: Path, args: argparse.Namespace
) -> list[dict[str, dict[str, Any]]]:
    await bot.read("ready", 120)
    warm = await run_phase(world, bot, "real", world.warmup(), work, args.concurrency)
    print("warm-up (unmeasured):\n" + report("real", warm), flush=True)
    world.learn_buttons()
    for which in ("echo", "calls", "real"):  # every kind once: one-time costs are not measured
        await run_phase(world, bot, which, world.updates(len(world.uids)), work, args.concurrency)

    rows = []
    for repeat in range(args.repeat):
        order = ("echo", "calls", "real") if repeat % 2 == 0 else ("real", "calls", "echo")
        results = {}
        for which in order:
            profile_to = None
            if args.profile_dir is not None and which == "real":
                args.profile_dir.mkdir(parents=True, exist_ok=True)
                profile_to = args.profile_dir / f"handlers-real-{repeat + 1}"
            items = world.updates(args.updates)
            results[which] = await run_phase(
                world, bot, which, items, work, args.concurrency, profile_to
            )
        light = world.updates(args.light_updates)
        results["light"] = await run_phase(world, bot, "real", light, work, args.light_concurrency)
        print(f"-- run {repeat + 1} ({' then '.join(order)}, then real at light load)")
        for which in ("echo", "calls", "real"):
            print(report(f"{which} at concurrency {args.concurrency}", results[which]))
        for floor in ("echo", "calls"):
            ratio = rate_of(results["real"]) / rate_of(results[floor])
            print(f"  ratio real / {floor}: {100 * ratio:.0f} %")
        print(report(f"real at concurrency {args.light_concurrency}", results["light"]), flush=True)
        rows.append(results)
    return rows


def rate_of(r: dict[str, Any]) -> float:
    return float(r["n"] / r["wall"])


def summary(rows: list[dict[str, dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = [
        f"| run | echo updates/s | same-calls echo updates/s | real updates/s | real / echo"
        f" | real / same-calls echo | real p50 / p95 ms"
        f" at {args.concurrency} in flight | real p95 ms at {args.light_concurrency} in flight"
        " (all kinds) | kinds over their p95 target"
        " | bot CPU ms/update real / echo / same-calls echo |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, results in enumerate(rows, 1):
        echo, calls, real = results["echo"], results["calls"], results["real"]
        light = results["light"]
        loaded = [v for t in real["times"].values() for v in t]
        calm = [v for t in light["times"].values() for v in t]
        over = [k for k, t in light["times"].items() if k in MIX and pct(t, 95) > budget_of(k)]
        lines.append(
            f"| {i} | {rate_of(echo):.0f} | {rate_of(calls):.0f} | {rate_of(real):.0f} |"
            f" {100 * rate_of(real) / rate_of(echo):.0f} % |"
            f" {100 * rate_of(real) / rate_of(calls):.0f} % |"
            f" {1000 * pct(loaded, 50):.0f} / {1000 * pct(loaded, 95):.0f} |"
            f" {1000 * pct(calm, 95):.0f} | {', '.join(over) or 'none'} |"
            f" {1000 * real['cpu'] / real['n']:.1f} / {1000 * echo['cpu'] / echo['n']:.1f}"
            f" / {1000 * calls['cpu'] / calls['n']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] in ("--_setup", "--_bot"):
        cfg = json.loads(sys.argv[2])
        asyncio.run(setup_main(cfg) if sys.argv[1] == "--_setup" else bot_main(cfg))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=5000, help="updates per bot per run")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument(
        "--concurrency", type=int, default=100, help="updates in flight for the rates"
    )
    parser.add_argument(
        "--light-concurrency", type=int, default=4, help="updates in flight for handler times"
    )
    parser.add_argument("--light-updates", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database",
        nargs="+",
        choices=["sqlite", "postgres"],
        default=["sqlite"],
        help="postgres: a database of its own on the PostgreSQL server, dialogs in Redis",
    )
    parser.add_argument(
        "--profile-dir", type=Path, default=None, help="pyinstrument the real bot's phases"
    )
    asyncio.run(driver(parser.parse_args()))


if __name__ == "__main__":
    main()
