"""Benchmark of the real poller + sender against the fakes (issue 5, "Performance").

    .venv/bin/python bench/poller.py [--users 100 1000 10000] [--hot 0.05] [--codes-per-hot 1]
                                     [--duration S] [--sql-stats] [--profile-dir DIR]
    .venv/bin/python bench/poller.py --month [--users 10000 --days 60]  (bench/retention.py)

Three processes per user count:
  * this one (the driver): serves the three fakes (GotSMS, Telegram, GoSMS; 50 ms latency) on
    loopback, injects the codes and reads the fakes' logs;
  * a setup process: fresh SQLite DB (migrations via build_deps), N users, each with a GotSMS
    token (store_token) and one active rent; the hot ones heated like /rent does;
  * the bot process: build_deps + create_bot + create_poller, nothing else; its CPU and peak RSS
    are what the table shows. It prints SETTLED when every user's first codes poll is done
    (cursor "watching"), then runs until told to stop on stdin and prints its getrusage.

The workload (users, codes, scoring) is bench/_workload.py, shared with bench/scale.py.
"""

# ruff: noqa: ASYNC230, ASYNC240  (a benchmark driver: blocking file I/O is fine)
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._workload import (  # noqa: E402
    BOT_TOKEN,
    LATENCY,
    POLL_INTERVAL,
    SECRET_KEY,
    SETTLE_CAP,
    Score,
    details,
    fmt3,
    inject,
    outbox_line,
    pct,
    plan_codes,
    read_log,
    score,
    seed_main,
    start_world,
)

# ============================================================================ bot side


def _settings(cfg: dict[str, Any]) -> Any:
    from bench._procs import bot_settings

    return bot_settings(cfg, BOT_TOKEN, SECRET_KEY, poll_interval=POLL_INTERVAL)


def _status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def _usage() -> dict[str, float]:
    # ru_maxrss survives fork+exec on Linux (it would show the driver's RSS): use VmHWM.
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu": ru.ru_utime + ru.ru_stime,
        "maxrss_kb": _status_kb("VmHWM"),
        "rss_kb": _status_kb("VmRSS"),
        "wall": time.time(),
    }


def _watch_sql(engine: Any) -> dict[str, list[float]]:
    """Per statement (first 90 characters): count and wall seconds, on stderr at the end."""
    from sqlalchemy import event

    stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        _conn.info["t0"] = time.perf_counter()

    def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        entry = stats[" ".join(statement.split())[:90]]
        entry[0] += 1
        entry[1] += time.perf_counter() - _conn.info.pop("t0", time.perf_counter())

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    return stats


def _print_sql(stats: dict[str, list[float]]) -> None:
    total = sum(t for _n, t in stats.values())
    print(
        f"SQL: {sum(n for n, _t in stats.values()):.0f} statements, {total:.1f} s", file=sys.stderr
    )
    for text, (n, t) in sorted(stats.items(), key=lambda kv: -kv[1][1])[:25]:
        print(f"  {t:7.2f} s {n:8.0f} x {t / n * 1000:6.2f} ms  {text}", file=sys.stderr)


async def bot_main(cfg: dict[str, Any]) -> None:
    """The measured process: the real poller and sender, as bot.app._on_startup starts them."""
    from bot.lazy_types import import_aiogram

    import_aiogram()  # as bot/__main__.py does
    from sqlalchemy import select

    from bench._workload import outbox_summary, waiting_query
    from bot.app import build_deps, create_bot
    from bot.db.outbox import OutboxItem
    from bot.logs import setup_logging
    from bot.poller import create_poller

    settings = _settings(cfg)
    setup_logging(settings.log_level, [BOT_TOKEN, SECRET_KEY])
    deps = await build_deps(settings)
    bot = create_bot(settings)
    poller = create_poller(
        bot, deps.session_factory, deps.cipher, deps.clients, deps.i18n, settings.poll_interval
    )

    def say(kind: str, data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"kind": kind} | data) + "\n")
        sys.stdout.flush()

    sql_stats = _watch_sql(deps.engine) if cfg.get("sql_stats") else None
    start = _usage()
    say("ready", {"start": start})
    poller.start()

    waiting_q = waiting_query()
    while True:  # settle: every user's first codes poll done
        await asyncio.sleep(0.5)
        async with deps.session_factory() as session:
            waiting = await session.scalar(waiting_q)
        if waiting == 0:
            break
    say("settled", {"start": start, "now": _usage()})

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
    end = _usage()
    await poller.stop()
    async with deps.session_factory() as session:
        summary = await outbox_summary(session)
        queued = (
            await session.execute(
                select(OutboxItem.created_at, OutboxItem.sent_at).where(
                    OutboxItem.kind == "code", OutboxItem.sent_at.is_not(None)
                )
            )
        ).all()
    say("stopped", {"end": end} | summary)
    if sql_stats is not None:
        _print_sql(sql_stats)
        waits = sorted((sent - made).total_seconds() for made, sent in queued)
        if waits:
            print(
                f"code rows, queued -> sent: p50 {pct(waits, 50):.2f} s,"
                f" p95 {pct(waits, 95):.2f} s, max {waits[-1]:.2f} s",
                file=sys.stderr,
            )
    await bot.session.close()
    await deps.close()


# ============================================================================ driver side


@dataclass(kw_only=True)
class RunResult(Score):
    users: int
    hot_users: int
    setup_s: float
    settle_s: float
    duration_s: float
    tail_s: float
    cpu_measured: float = 0.0
    cpu_total: float = 0.0
    rss_mb: float = 0.0
    rss_ready_mb: float = 0.0
    rss_end_mb: float = 0.0
    cpu_startup: float = 0.0
    cpu_settle: float = 0.0
    wall_measured: float = 1.0
    outbox: list[dict[str, Any]]
    failing_states: int = 0


def _py_spy(pid: int, output: Path, duration: float) -> subprocess.Popen[bytes]:
    """Sample the bot process (all threads, incl. aiosqlite's) into collapsed stacks."""
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid)]
    command += ["--duration", str(int(duration)), "--rate", "50", "--nonblocking"]
    command += ["--format", "raw", "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def run_one(
    n_users: int,
    hot_share: float,
    duration: float,
    seed: int,
    profile_dir: Path | None,
    sql_stats: bool = False,
    codes_per_hot: int = 1,
) -> RunResult:
    from bench._procs import read_json, run_setup, start_bot

    t_setup = time.monotonic()
    world = await start_world(n_users, hot_share, seed)
    tmp = tempfile.TemporaryDirectory(prefix="bench-poller-")
    work = Path(tmp.name)
    cfg: dict[str, Any] = world.urls() | {
        "database_url": f"sqlite+aiosqlite:///{work}/data/bot.db",
        "users_file": str(work / "users.json"),
        "sql_stats": sql_stats,
    }
    Path(cfg["users_file"]).write_text(json.dumps(world.users))
    await run_setup(__file__, cfg)
    setup_s = time.monotonic() - t_setup

    errlog = open(work / "bot.stderr", "wb")  # noqa: SIM115
    proc = await start_bot(__file__, cfg, errlog, 2**20)
    assert proc.stdout is not None
    assert proc.stdin is not None
    ready = await read_json(proc.stdout, "ready", 120)
    settle_spy = None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        settle_spy = _py_spy(proc.pid, profile_dir / f"poller-{n_users}-settle.txt", SETTLE_CAP)
    t_start = time.monotonic()
    settled = await read_json(proc.stdout, "settled", SETTLE_CAP)
    t0 = time.monotonic()
    settle_s = t0 - t_start

    spy = None
    if settle_spy is not None:
        settle_spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        await asyncio.to_thread(settle_spy.wait, 120)
    if profile_dir is not None:
        spy = _py_spy(proc.pid, profile_dir / f"poller-{n_users}-measured.txt", duration)

    injected = await inject(world, plan_codes(world, duration, codes_per_hot), t0, duration)
    t_end = time.monotonic()
    await asyncio.sleep(2 * POLL_INTERVAL)  # a late duplicate would show up here
    if spy is not None:
        await asyncio.to_thread(spy.wait, 120)

    proc.stdin.write(b"stop\n")
    await proc.stdin.drain()
    stopped = await read_json(proc.stdout, "stopped", 120)
    await proc.wait()
    errlog.close()
    log_dir = Path(tempfile.gettempdir()) / "bench-poller-logs"
    log_dir.mkdir(exist_ok=True)
    log_text = (work / "bot.stderr").read_text(errors="replace")
    (log_dir / f"bot-{n_users}.stderr").write_text(log_text)

    result = RunResult(
        users=n_users,
        hot_users=len(world.hot_ids),
        setup_s=setup_s,
        settle_s=settle_s,
        duration_s=duration,
        tail_s=t_end - t0 - duration,
        outbox=stopped["outbox"],
        failing_states=stopped["failing_states"],
    )
    score(result, world, injected, t0, t_end)
    read_log(result, log_text)
    result.cpu_measured = stopped["end"]["cpu"] - settled["now"]["cpu"]
    result.cpu_total = stopped["end"]["cpu"]
    result.wall_measured = stopped["end"]["wall"] - settled["now"]["wall"]
    result.rss_mb = stopped["end"]["maxrss_kb"] / 1024
    result.rss_ready_mb = ready["start"]["rss_kb"] / 1024
    result.rss_end_mb = stopped["end"]["rss_kb"] / 1024
    result.cpu_startup = ready["start"]["cpu"]
    result.cpu_settle = settled["now"]["cpu"] - ready["start"]["cpu"]
    await world.close()
    tmp.cleanup()
    return result


HEADER = (
    "  users  hot |  hot n   p50 s   p95 s   max s | cold n   p50 s   p95 s   max s |"
    " lost dup | CPU s (meas/total)  CPU% |  RSS MB | max GotSMS req/60s/token"
)


def _row(r: RunResult) -> str:
    busy = 100 * r.cpu_measured / max(r.wall_measured, 1e-9)
    return (
        f"{r.users:7d} {r.hot_users:4d} | {len(r.hot_lat):6d} {fmt3(r.hot_lat)} |"
        f" {len(r.cold_lat):6d} {fmt3(r.cold_lat)} |"
        f" {r.lost_hot + r.lost_cold:4d} {r.duplicates:3d} |"
        f" {r.cpu_measured:8.1f} / {r.cpu_total:7.1f} {busy:5.0f} | {r.rss_mb:7.1f} |"
        f" {r.max_req_60s:3d} ({r.over_budget_tokens} tokens > 30)"
    )


def _details(r: RunResult) -> str:
    return (
        f"    setup {r.setup_s:.0f} s, settle {r.settle_s:.1f} s, measured {r.duration_s:.0f} s"
        f" + tail {r.tail_s:.1f} s; GotSMS requests {r.gotsms_requests} ({r.gotsms_429} x 429);"
        f" Telegram refusals {r.tg_refused or 0}; {outbox_line(r.outbox)};"
        f" poll states failing {r.failing_states}; lost hot {r.lost_hot} cold {r.lost_cold}\n"
        f"    bot CPU: startup {r.cpu_startup:.1f} s, first polls {r.cpu_settle:.1f} s,"
        f" measured {r.cpu_measured:.1f} s; RSS when ready {r.rss_ready_mb:.0f} MB,"
        f" at stop {r.rss_end_mb:.0f} MB, peak {r.rss_mb:.0f} MB\n" + details(r)
    )


async def driver(args: argparse.Namespace) -> None:
    began = time.monotonic()
    print(
        f"bench/poller.py: POLL_INTERVAL={POLL_INTERVAL} s, API latency {LATENCY * 1000:.0f} ms,"
        f" hot share {args.hot:.0%}, {args.codes_per_hot} code(s) per hot user,"
        f" {os.cpu_count()} CPUs, python {sys.version.split()[0]}"
    )
    results = []
    for n in args.users:
        duration = args.duration if args.duration is not None else 120.0
        print(f"-- {n} users, measured window {duration:.0f} s ...", flush=True)
        r = await run_one(
            n, args.hot, duration, args.seed, args.profile_dir, args.sql_stats, args.codes_per_hot
        )
        results.append(r)
        print(HEADER)
        print(_row(r))
        print(_details(r), flush=True)
    print()
    print(
        "Latency: code injected in the fake GotSMS -> sendMessage with that code accepted by the"
        " fake Telegram. CPU s: bot process, settle..stop (meas) / whole life (total);"
        " CPU% = meas over the measured wall time. RSS: bot process peak (VmHWM)."
    )
    print(HEADER)
    for r in results:
        print(_row(r))
    print(f"total run time {time.monotonic() - began:.0f} s")
    hot_target = POLL_INTERVAL + 1
    for r in results:
        p95 = pct(r.hot_lat, 95)
        cold_max = max(r.cold_lat, default=float("nan"))
        print(
            f"  {r.users:6d}: hot p95 {p95:.2f} s <= {hot_target:.0f} s: "
            f"{'MET' if p95 <= hot_target and not r.lost_hot else 'MISSED'}; "
            f"cold max {cold_max:.1f} s <= 60 s: "
            f"{'MET' if cold_max <= 60 and not r.lost_cold else 'MISSED'}; "
            f"RSS {r.rss_mb:.0f} MB <= 200: {'MET' if r.rss_mb <= 200 else 'MISSED'}; "
            f"max {r.max_req_60s} GotSMS req/60 s <= 30: "
            f"{'MET' if r.max_req_60s <= 30 else 'MISSED'}; duplicates {r.duplicates}"
        )


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "--month":  # the database over a simulated month
        sys.argv = [str(Path(__file__).with_name("retention.py")), *sys.argv[2:]]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return
    if len(sys.argv) >= 3 and sys.argv[1] in ("--_setup", "--_bot"):
        cfg = json.loads(sys.argv[2])
        asyncio.run(seed_main(cfg) if sys.argv[1] == "--_setup" else bot_main(cfg))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--hot", type=float, default=0.05)
    parser.add_argument(
        "--codes-per-hot",
        type=int,
        default=1,
        help="codes each hot user receives in the window (the cold ones: 300 users, one each)",
    )
    parser.add_argument("--duration", type=float, default=None, help="measured window, s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile-dir", type=Path, default=None, help="py-spy record the bot (raw stacks)"
    )
    parser.add_argument(
        "--sql-stats", action="store_true", help="time each SQL statement (bot's stderr log)"
    )
    asyncio.run(driver(parser.parse_args()))


if __name__ == "__main__":
    main()
