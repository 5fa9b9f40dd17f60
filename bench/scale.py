"""Several instances of `python -m bot` on one PostgreSQL + Redis (issue 12, "Benchmark").

    .venv/bin/python bench/scale.py [--users 1000] [--instances 1 2 3] [--duration 60]
                                    [--sqlite] [--hot 0.05] [--codes-per-hot 1] [--seed 1]
                                    [--env NAME=VALUE ...]

For each user count and each number of instances: a fresh PostgreSQL database of its own on
BENCH_POSTGRES_URL's server (default 127.0.0.1:5432) and a Redis namespace of its own on
BENCH_REDIS_URL (default 127.0.0.1:6379), both dropped afterwards; the workload of
bench/poller.py (bench/_workload.py: every user with a GotSMS token and one active rent, 5 % hot,
one code per hot user and 300 cold codes in the measured window, fakes at 50 ms); then N
instances of `python -m bot` in webhook mode (ROLE=all, each on its own WEB_PORT; the fake
Telegram never calls the webhook, so they run the poller and the sender only). `--sqlite` adds
a row of one instance on SQLite per user count, the baseline of the CPU a poll costs.

Measured from the moment every user's first codes poll is done (settled) to the end of the tail:
  * latency of a code: its arrival in the fake GotSMS -> the fake Telegram accepts its message;
  * lost / doubled codes over all instances;
  * CPU of each instance (/proc/<pid>/stat), per poll: a poll is one GotSMS request (the fake
    counts them); per instance when its /metrics counts its polls, else over all instances;
  * PostgreSQL: the backends connected to this run's database, and the server's background
    processes (checkpointer, WAL writer, autovacuum: shared with whoever else uses the server);
    Redis: the redis-server process (shared too);
  * the most GotSMS requests one token made in any 60 s (the budget is 30), over the whole run;
  * the settle phase is the throughput of polls at saturation: at the start every user is due
    at once, so requests / settle time is what the instances can poll per second.
"""

# ruff: noqa: ASYNC230, ASYNC240  (a benchmark driver: blocking file I/O is fine)
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._procs import (  # noqa: E402
    bot_environment,
    cpu_seconds,
    machine_busy,
    peak_rss_mb,
    processes,
    run_setup,
    server_place,
)
from bench._workload import (  # noqa: E402
    BOT_TOKEN,
    LATENCY,
    POLL_INTERVAL,
    SECRET_KEY,
    SETTLE_CAP,
    Score,
    World,
    details,
    fmt3,
    inject,
    outbox_line,
    outbox_summary,
    pct,
    plan_codes,
    read_log,
    requests_between,
    score,
    seed_main,
    start_world,
    waiting_query,
)

START_CAP = 120.0  # s for an instance to listen on its WEB_PORT
STOP_CAP = 30.0  # s for an instance to exit after SIGTERM
SAMPLE_EVERY = 1.0  # s between two reads of the PostgreSQL backends' CPU
WEBHOOK_SECRET = "bench-webhook-secret"
PG_BACKGROUND = ("checkpointer", "background writer", "walwriter", "autovacuum")


# ============================================================================ the instances


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Instance:
    """One `python -m bot` in webhook mode on its own port."""

    proc: asyncio.subprocess.Process
    port: int
    log_path: Path
    log_file: IO[bytes]
    cpu0: float = 0.0
    cpu1: float = 0.0
    polls0: float | None = None
    polls1: float | None = None
    rss_mb: float = 0.0
    exit_code: int | None = None

    @property
    def polls(self) -> float | None:
        if self.polls0 is None or self.polls1 is None:
            return None
        return self.polls1 - self.polls0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def start_instance(
    cfg: dict[str, Any], work: Path, number: int, extra: dict[str, str]
) -> Instance:
    port = _free_port()
    env = bot_environment(
        cfg,
        BOT_TOKEN,
        SECRET_KEY,
        poll_interval=str(POLL_INTERVAL),
        webhook_url=f"https://bench.invalid/telegram/{cfg['database']}",
        webhook_secret=WEBHOOK_SECRET,
        web_host="127.0.0.1",
        web_port=str(port),
        role="all",
        **extra,
    )
    home = work / f"instance-{number}"
    home.mkdir()
    log_path = home / "bot.log"
    log_file = open(log_path, "wb")  # noqa: SIM115
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=home, env=env, stdout=log_file, stderr=log_file
    )
    return Instance(proc, port, log_path, log_file)


async def wait_listening(instance: Instance) -> None:
    deadline = time.monotonic() + START_CAP
    while time.monotonic() < deadline:
        if instance.proc.returncode is not None:
            raise RuntimeError(
                f"instance on port {instance.port} exited with {instance.proc.returncode}:\n"
                + instance.log()[-3000:]
            )
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", instance.port)
            writer.close()
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"instance on port {instance.port} not listening within {START_CAP:.0f} s")


async def stop_instance(instance: Instance) -> None:
    if instance.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            instance.proc.send_signal(signal.SIGTERM)
    try:
        instance.exit_code = await asyncio.wait_for(instance.proc.wait(), STOP_CAP)
    except TimeoutError:
        instance.proc.kill()
        instance.exit_code = await instance.proc.wait()
    instance.log_file.close()


async def polls_counted(port: int) -> float | None:
    """The instance's own count of its polls (sms_desk_polls_total over every job and outcome),
    or None when it serves no /metrics."""
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            if resp.status != 200:
                return None
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sms_desk_polls_total")
    ]
    return sum(values) if values else None


# ============================================================================ the servers' CPU


class ServerCpu:
    """CPU of the PostgreSQL backends on this run's database (sampled, as backends come and
    go), of the server's background processes, and of redis-server, over the window."""

    def __init__(self, database: str | None) -> None:
        self.database = database
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.background0 = self._background()
        self.redis_pids = processes("redis-server")
        self.redis0 = self._sum(self.redis_pids)
        self.started = False

    @staticmethod
    def _sum(pids: list[int]) -> float:
        return sum(cpu_seconds(pid) or 0.0 for pid in pids)

    def _background(self) -> float:
        return self._sum([p for name in PG_BACKGROUND for p in processes(f"postgres: {name}")])

    def sample(self) -> None:
        if self.database is None:
            return
        for pid in processes(f" {self.database} "):
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            # a backend first seen after the window began spent all its CPU in it
            self.first.setdefault(pid, cpu if not self.started else 0.0)
            self.last[pid] = cpu

    def begin(self) -> None:
        self.first.clear()
        self.last.clear()
        self.sample()
        self.started = True
        self.background0 = self._background()
        self.redis0 = self._sum(self.redis_pids)

    def end(self) -> dict[str, float]:
        self.sample()
        return {
            "pg_ours": sum(self.last[p] - self.first[p] for p in self.last),
            "pg_background": self._background() - self.background0,
            "redis": self._sum(self.redis_pids) - self.redis0,
            "pg_backends": float(len(self.last)),
        }

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            self.sample()


# ============================================================================ one run


@dataclass(kw_only=True)
class ScaleResult(Score):
    users: int
    instances: int
    database: str  # "postgresql" or "sqlite"
    setup_s: float = 0.0
    start_s: float = 0.0
    settle_s: float = 0.0
    settle_requests: int = 0
    window_wall: float = 1.0
    window_polls: int = 0
    per_instance: list[dict[str, Any]] = field(default_factory=list)
    servers: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0  # share of the machine's CPU busy in the window, 0..1
    driver_cpu: float = 0.0
    outbox: list[dict[str, Any]] = field(default_factory=list)
    failing_states: int = 0
    exit_codes: list[int | None] = field(default_factory=list)

    @property
    def bot_cpu(self) -> float:
        return float(sum(i["cpu"] for i in self.per_instance))

    @property
    def ms_per_poll(self) -> float:
        return 1000 * self.bot_cpu / max(self.window_polls, 1)

    @property
    def ms_per_poll_with_servers(self) -> float:
        cpu = self.bot_cpu + self.servers.get("pg_ours", 0.0)
        return 1000 * cpu / max(self.window_polls, 1)

    @property
    def settle_rate(self) -> float:
        return self.settle_requests / max(self.settle_s, 1e-9)


@contextlib.asynccontextmanager
async def _database(use_sqlite: bool, work: Path) -> Any:
    if use_sqlite:
        yield {"database_url": f"sqlite+aiosqlite:///{work}/data/bot.db", "database": "sqlite"}
        return
    async with server_place("bench_scale") as place:
        yield place


async def _settle(cfg: dict[str, Any], instances: list[Instance]) -> None:
    """Until every user's first codes poll is done (an instance that dies fails the run)."""
    from bot.db.engine import create_engine, create_session_factory

    engine = create_engine(cfg["database_url"])
    factory = create_session_factory(engine)
    deadline = time.monotonic() + SETTLE_CAP
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            for instance in instances:
                if instance.proc.returncode is not None:
                    raise RuntimeError(
                        f"an instance exited with {instance.proc.returncode} while settling:\n"
                        + instance.log()[-3000:]
                    )
            async with factory() as session:
                if await session.scalar(waiting_query()) == 0:
                    return
        raise TimeoutError(f"not settled within {SETTLE_CAP:.0f} s")
    finally:
        await engine.dispose()


async def _outbox(cfg: dict[str, Any]) -> dict[str, Any]:
    from bot.db.engine import create_engine, create_session_factory

    engine = create_engine(cfg["database_url"])
    try:
        async with create_session_factory(engine)() as session:
            return await outbox_summary(session)
    finally:
        await engine.dispose()


def _driver_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def run_one(
    n_users: int, n_instances: int, use_sqlite: bool, args: argparse.Namespace
) -> ScaleResult:
    result = ScaleResult(
        users=n_users,
        instances=n_instances,
        database="sqlite" if use_sqlite else "postgresql",
    )
    began = time.monotonic()
    world = await start_world(n_users, args.hot, args.seed)
    tmp = tempfile.TemporaryDirectory(prefix="bench-scale-")
    work = Path(tmp.name)
    try:
        async with _database(use_sqlite, work) as place:
            cfg: dict[str, Any] = world.urls() | place | {"users_file": str(work / "users.json")}
            Path(cfg["users_file"]).write_text(json.dumps(world.users))
            await run_setup(__file__, cfg)
            result.setup_s = time.monotonic() - began
            await _measure(result, world, cfg, work, n_instances, args)
    finally:
        await world.close()
        tmp.cleanup()
    return result


async def _measure(
    result: ScaleResult,
    world: World,
    cfg: dict[str, Any],
    work: Path,
    n_instances: int,
    args: argparse.Namespace,
) -> None:
    t_start = time.monotonic()
    extra = dict(item.split("=", 1) for item in args.env)
    instances = [await start_instance(cfg, work, n, extra) for n in range(n_instances)]
    try:
        await asyncio.gather(*(wait_listening(i) for i in instances))
        result.start_s = time.monotonic() - t_start
        t_up = time.monotonic()
        await _settle(cfg, instances)
        t0 = time.monotonic()
        # the instances poll from their start-up on, before they listen
        first = min((r.at for r in world.got.requests if r.at >= t_start), default=t_up)
        result.settle_s = t0 - first
        result.settle_requests = requests_between(world, first, t0)

        servers = ServerCpu(None if cfg["database"] == "sqlite" else cfg["database"])
        servers.begin()
        sampler = asyncio.create_task(servers.run())
        busy0, total0 = machine_busy()
        driver0 = _driver_cpu()
        for instance in instances:
            instance.cpu0 = cpu_seconds(instance.proc.pid) or 0.0
            instance.polls0 = await polls_counted(instance.port)

        plan = plan_codes(world, args.duration, args.codes_per_hot)
        injected = await inject(world, plan, t0, args.duration)
        t_end = time.monotonic()
        await asyncio.sleep(2 * POLL_INTERVAL)  # a late duplicate would show up here
        t_stop = time.monotonic()

        for instance in instances:
            instance.cpu1 = cpu_seconds(instance.proc.pid) or instance.cpu0
            instance.polls1 = await polls_counted(instance.port)
            instance.rss_mb = peak_rss_mb(instance.proc.pid)
        sampler.cancel()
        result.servers = servers.end()
        busy1, total1 = machine_busy()
        result.machine_busy = (busy1 - busy0) / max(total1 - total0, 1e-9)
        result.driver_cpu = _driver_cpu() - driver0
        result.window_wall = t_stop - t0
        result.window_polls = requests_between(world, t0, t_stop)
    finally:
        await asyncio.gather(*(stop_instance(i) for i in instances))
    result.exit_codes = [i.exit_code for i in instances]
    summary = await _outbox(cfg)
    result.outbox, result.failing_states = summary["outbox"], summary["failing_states"]
    score(result, world, injected, t0, t_end)
    log_dir = Path(tempfile.gettempdir()) / "bench-scale-logs"
    log_dir.mkdir(exist_ok=True)
    for number, instance in enumerate(instances):
        text = instance.log()
        name = f"{result.database}-{result.users}-{n_instances}of{number + 1}.log"
        (log_dir / name).write_text(text)
        read_log(result, text)
        result.per_instance.append(
            {
                "cpu": instance.cpu1 - instance.cpu0,
                "polls": instance.polls,
                "rss_mb": instance.rss_mb,
            }
        )


# ============================================================================ the table


def _per_instance(r: ScaleResult) -> str:
    parts = []
    for i in r.per_instance:
        busy = 100 * i["cpu"] / r.window_wall
        if i["polls"]:
            parts.append(f"{busy:.0f} % {1000 * i['cpu'] / i['polls']:.2f}")
        else:
            parts.append(f"{busy:.0f} % -")
    return ", ".join(parts)


HEADER = (
    "| database | instances | users | hot p50 / p95 / max s | cold max s | lost / doubled"
    " | polls/s in window | CPU ms per poll: all instances (+ PG backends)"
    " | per instance: CPU % of a core, ms per poll | PostgreSQL CPU % ours / background"
    " | Redis CPU % | max GotSMS req / token / 60 s | settle: s, polls/s |"
)


def row(r: ScaleResult) -> str:
    wall = r.window_wall
    hot = (
        f"{pct(r.hot_lat, 50):.1f} / {pct(r.hot_lat, 95):.1f} / {max(r.hot_lat):.1f}"
        if r.hot_lat
        else "-"
    )
    cold = f"{max(r.cold_lat):.1f}" if r.cold_lat else "-"
    pg = (
        f"{100 * r.servers.get('pg_ours', 0) / wall:.0f} /"
        f" {100 * r.servers.get('pg_background', 0) / wall:.0f}"
        if r.database == "postgresql"
        else "-"
    )
    redis = f"{100 * r.servers.get('redis', 0) / wall:.0f}" if r.database == "postgresql" else "-"
    return (
        f"| {r.database} | {r.instances} | {r.users:,} | {hot} | {cold} |"
        f" {r.lost_hot + r.lost_cold} / {r.duplicates} | {r.window_polls / wall:.0f} |"
        f" {r.ms_per_poll:.2f} ({r.ms_per_poll_with_servers:.2f}) | {_per_instance(r)} |"
        f" {pg} | {redis} | {r.max_req_60s} | {r.settle_s:.0f}, {r.settle_rate:.0f} |"
    )


def run_details(r: ScaleResult) -> str:
    rss = ", ".join(f"{i['rss_mb']:.0f}" for i in r.per_instance)
    return (
        f"    setup {r.setup_s:.0f} s, instances up in {r.start_s:.1f} s, settle {r.settle_s:.1f} s"
        f" ({r.settle_requests} GotSMS requests), measured {r.window_wall:.0f} s;"
        f" GotSMS requests {r.gotsms_requests} ({r.gotsms_429} x 429, {r.over_budget_tokens}"
        f" tokens over 30 a minute); Telegram refusals {r.tg_refused or 0};"
        f" {outbox_line(r.outbox)}; poll states failing {r.failing_states};"
        f" lost hot {r.lost_hot} cold {r.lost_cold}; exit codes {r.exit_codes}\n"
        f"    hot {fmt3(r.hot_lat)} cold {fmt3(r.cold_lat)} (p50 p95 max s);"
        f" instances' peak RSS {rss} MB;"
        f" PostgreSQL backends seen {r.servers.get('pg_backends', 0):.0f};"
        f" machine busy {100 * r.machine_busy:.0f} % of {os.cpu_count()} cores,"
        f" the fakes' process {100 * r.driver_cpu / r.window_wall:.0f} % of a core\n" + details(r)
    )


def verdicts(results: list[ScaleResult]) -> list[str]:
    lines = []
    hot_target = POLL_INTERVAL + 1
    for r in results:
        p95 = pct(r.hot_lat, 95)
        cold_max = max(r.cold_lat, default=float("nan"))
        lines.append(
            f"  {r.database} {r.instances} x {r.users:,}: hot p95 {p95:.2f} s <= {hot_target:.0f}:"
            f" {'MET' if p95 <= hot_target and not r.lost_hot else 'MISSED'};"
            f" cold max {cold_max:.1f} s <= 60: "
            f"{'MET' if cold_max <= 60 and not r.lost_cold else 'MISSED'};"
            f" max {r.max_req_60s} GotSMS req/60 s <= 30:"
            f" {'MET' if r.max_req_60s <= 30 else 'MISSED'}; doubled {r.duplicates}"
        )
    for users in sorted({r.users for r in results}):
        same = {r.instances: r for r in results if r.users == users and r.database != "sqlite"}
        lite = [r for r in results if r.users == users and r.database == "sqlite"]
        if lite and 1 in same:
            ratio = same[1].ms_per_poll / max(lite[0].ms_per_poll, 1e-9)
            with_pg = same[1].ms_per_poll_with_servers / max(lite[0].ms_per_poll, 1e-9)
            lines.append(
                f"  {users:,} users: CPU per poll, PostgreSQL / SQLite (1 instance):"
                f" {ratio:.2f} bot only, {with_pg:.2f} with the PG backends (target <= 1.2)"
            )
        if 1 in same:
            for n, r in sorted(same.items()):
                if n > 1:
                    growth = r.settle_rate / max(same[1].settle_rate, 1e-9)
                    lines.append(
                        f"  {users:,} users: polls/s at saturation (settle), {n} instances"
                        f" / 1: {growth:.2f} (target >= 1.7 from 1 to 2 where the cores allow)"
                    )
    return lines


async def driver(args: argparse.Namespace) -> None:
    # SIGTERM (a `timeout`) cancels the run: the instances are stopped, the database dropped
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    began = time.monotonic()
    print(
        f"bench/scale.py: POLL_INTERVAL={POLL_INTERVAL} s, API latency {LATENCY * 1000:.0f} ms,"
        f" hot share {args.hot:.0%}, {args.codes_per_hot} code(s) per hot user, measured"
        f" window {args.duration:.0f} s, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f},"
        f" python {sys.version.split()[0]}; instances' extra settings: {args.env or 'none'}",
        flush=True,
    )
    results = []
    for n in args.users:
        runs = [(1, True)] if args.sqlite else []
        runs += [(k, False) for k in args.instances]
        for instances, use_sqlite in runs:
            where = "SQLite" if use_sqlite else "PostgreSQL + Redis"
            print(f"-- {n} users, {instances} instance(s) on {where} ...", flush=True)
            r = await run_one(n, instances, use_sqlite, args)
            results.append(r)
            print(HEADER)
            print(row(r))
            print(run_details(r), flush=True)
    print()
    print(HEADER)
    print("|---" * (HEADER.count("|") - 1) + "|")
    for r in results:
        print(row(r))
    print("\n".join(verdicts(results)))
    print(f"total run time {time.monotonic() - began:.0f} s, load {os.getloadavg()}")


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--_setup":
        asyncio.run(seed_main(json.loads(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1000])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--duration", type=float, default=60.0, help="measured window, s")
    parser.add_argument(
        "--sqlite", action="store_true", help="also one instance on SQLite per user count"
    )
    parser.add_argument("--hot", type=float, default=0.05)
    parser.add_argument("--codes-per-hot", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="more settings of the instances, e.g. DB_POOL_SIZE=20 DB_POOL_OVERFLOW=0",
    )
    asyncio.run(driver(parser.parse_args()))


if __name__ == "__main__":
    main()
