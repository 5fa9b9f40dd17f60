"""Benchmark of a /bulk campaign (issue 13): a CSV of 5,000 rows spread over 3 saved devices.

    .venv/bin/python bench/bulk.py [--rows 5000] [--pace 0.6] [--devices 3] [--deliver-after 5]

The real `python -m bot` (SQLite, long polling) runs against the doubles served by this process
(Telegram, GoSMS, GotSMS on loopback). A user connects GoSMS, saves the devices, sends /bulk and
the list as a .csv document (number and name columns), a template text, spreads it over every
device, starts it and waits for the report; the phones deliver each SMS a few seconds after
GoSMS took it. Measured:

  * validation in this process: bot/services/bulk.py's parse_file and check on the same bytes;
  * validation through the bot: from the upload to "N rows read" (download + parse), from the
    text to the device question (the template against the columns), from the SIM press to the
    summary (the file read again, every row checked, the draft stored), upload to summary;
  * the send rate GoSMS saw against the pace: D devices at one SMS every P s each can send D/P
    SMS/s, and the runner keeps 0.2 s between two SMS of one campaign (at most 5 SMS/s);
  * the bot process's CPU seconds (/proc) and peak RSS (VmHWM), the total time.

It prints markdown tables for the README, with the load average (the machine may be shared).
"""

# ruff: noqa: ASYNC230  (a benchmark driver: blocking file I/O is fine)
from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import itertools
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bot.poller  # noqa: E402, F401  (first: bot.campaigns.runner alone is a circular import)
from bench._procs import bot_environment, cpu_seconds, peak_rss_mb  # noqa: E402
from bot.campaigns.runner import MIN_GAP  # noqa: E402
from bot.services.bulk import check, parse_file  # noqa: E402
from tests.fakes.gosms import FakeGoSMS  # noqa: E402
from tests.fakes.gotsms import FakeGotSMS  # noqa: E402
from tests.fakes.telegram import FakeTelegram, StoredMessage  # noqa: E402

BOT_TOKEN = "123456789:AAbulkBenchmarkTokenAAAAAAAAAAAAAAAA"
SECRET_KEY = "bench-bulk-secret-key-0123456789"
GOSMS_TOKEN = "gosms-bench-key-0a1b2c3d4e5f6a7b"
USER = 7001
TEMPLATE = "Hello {name}, your order is ready: pick it up at the shop by Friday."
STEP = 60.0  # s a dialog step may take
IN_PROCESS_RUNS = 5


@dataclass
class Figures:
    rows: int
    pace: float
    devices: int
    deliver_after: float
    parse_s: list[float] = field(default_factory=list)
    check_s: list[float] = field(default_factory=list)
    read_s: float = 0.0  # upload → "N rows read"
    text_s: float = 0.0  # text → the device question
    summary_s: float = 0.0  # the SIM press → the summary
    to_summary_s: float = 0.0  # upload → summary
    recipients: str = ""
    send_times: list[float] = field(default_factory=list)  # GoSMS's arrival of each taken SMS
    per_device: dict[str, list[float]] = field(default_factory=dict)
    refused: int = 0  # /sms/send answered otherwise than 200
    sent_once: bool = False
    report_rows: int = 0
    report_delivered: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # phase → bot CPU seconds at its end
    rss_mb: float = 0.0
    total_s: float = 0.0
    load: list[tuple[float, float, float]] = field(default_factory=list)


def list_file(rows: int) -> bytes:
    """number,name: one row per recipient, all valid and distinct."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["number", "name"])
    for n in range(rows):
        writer.writerow([f"7999{n:07d}", f"Client {n}"])
    return out.getvalue().encode()


def in_process(data: bytes, figures: Figures) -> None:
    """parse_file and check as the bot calls them (off its loop), best of a few runs."""
    for _ in range(IN_PROCESS_RUNS):
        began = time.perf_counter()
        source = parse_file(data, "clients.csv", max_rows=figures.rows, max_bytes=len(data) + 1)
        parsed = time.perf_counter()
        checked = check(source, TEMPLATE)
        figures.parse_s.append(parsed - began)
        figures.check_s.append(time.perf_counter() - parsed)
        assert len(checked.recipients) == figures.rows, "every row is valid"


# ---- the bot process


class Bot:
    def __init__(self, env: dict[str, str], cwd: Path, log: IO[bytes]) -> None:
        self.env = env
        self.cwd = cwd
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, tg: FakeTelegram) -> None:
        polls = len(tg.calls_of("getUpdates"))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=self.cwd,
            env=self.env,
            stdout=self.log,
            stderr=self.log,
        )
        await tg.wait_for(lambda: len(tg.calls_of("getUpdates")) > polls, timeout=STEP)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid) or 0.0

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 30)


async def says(tg: FakeTelegram, text: str, timeout: float = STEP) -> StoredMessage:  # noqa: ASYNC109
    return await tg.wait_for_bot_message(USER, text, timeout=timeout)


async def timed(tg: FakeTelegram, act: Callable[[], object], text: str) -> tuple[float, Any]:
    """Seconds from `act` (a user's update queued) to the bot's message containing `text`."""
    began = time.monotonic()
    act()
    message = await says(tg, text)
    return time.monotonic() - began, message


async def prepare(tg: FakeTelegram, devices: Sequence[str]) -> None:
    """The user connects GoSMS and saves the devices."""
    tg.user(USER, language_code="en")
    tg.send_text(USER, f"/token gosms {GOSMS_TOKEN}")
    await says(tg, "is connected")
    for device in devices:
        tg.send_text(USER, f"/devices add {device}")
        await says(tg, "Saved")


async def to_summary(tg: FakeTelegram, data: bytes, figures: Figures, bot: Bot) -> StoredMessage:
    tg.send_text(USER, "/bulk")
    await says(tg, "A campaign: one text to many numbers")
    began = time.monotonic()
    figures.read_s, _ = await timed(
        tg, lambda: tg.send_document(USER, data, "clients.csv", "text/csv"), "rows read"
    )
    figures.text_s, _ = await timed(tg, lambda: tg.send_text(USER, TEMPLATE), "Which devices")
    await timed(tg, lambda: tg.press_button(USER, "Spread over all"), "Which SIM slot")
    figures.summary_s, shown = await timed(
        tg, lambda: tg.press_button(USER, "Default SIM"), "Start the campaign?"
    )
    figures.to_summary_s = time.monotonic() - began
    figures.cpu["validation"] = bot.cpu()
    figures.recipients = next(x for x in shown.text.splitlines() if "Recipients" in x)
    assert isinstance(shown, StoredMessage)
    return shown


async def phones(gosms: FakeGoSMS, after: float) -> None:
    """The phones deliver each SMS `after` s (whole seconds of GoSMS's clock) after it was
    taken."""
    while True:
        await asyncio.sleep(1.0)
        now = gosms.now()
        for sms in gosms.sms_of(GOSMS_TOKEN):
            if sms["status"] == 0 and now - sms["time_create"] >= after:
                gosms.set_status(sms["id"], 4)


async def campaign(tg: FakeTelegram, gosms: FakeGoSMS, figures: Figures, bot: Bot) -> None:
    """Start, then wait for the report while watching the peak RSS."""
    tg.press_button(USER, "🚀 Start")
    expected = figures.rows / min(figures.devices / figures.pace, 1 / MIN_GAP)
    done = asyncio.create_task(says(tg, "is done.", timeout=expected * 2 + 120))
    delivering = None
    if figures.deliver_after > 0:
        delivering = asyncio.create_task(phones(gosms, figures.deliver_after))
    while not done.done():
        figures.rss_mb = max(figures.rss_mb, peak_rss_mb(bot.pid))
        await asyncio.wait({done}, timeout=5)
    if delivering is not None:
        delivering.cancel()
    message = done.result()
    figures.cpu["campaign"] = bot.cpu()
    figures.rss_mb = max(figures.rss_mb, peak_rss_mb(bot.pid))
    _, report = tg.document_of(message)
    rows = list(csv.DictReader(io.StringIO(report.decode("utf-8-sig"), newline="")))
    figures.report_rows = len(rows)
    figures.report_delivered = sum(1 for r in rows if r["status"] == "delivered")
    sends = gosms.requests_for(GOSMS_TOKEN, "/sms/send")
    taken = [r for r in sends if r.status == 200]
    figures.refused = len(sends) - len(taken)
    figures.send_times = [r.at for r in taken]
    for request in taken:
        figures.per_device.setdefault(request.json["device_id"], []).append(request.at)
    numbers = [r.json["phone_number"] for r in taken]
    figures.sent_once = len(numbers) == len(set(numbers)) == figures.rows


async def run(args: argparse.Namespace) -> Figures:
    figures = Figures(
        rows=args.rows, pace=args.pace, devices=args.devices, deliver_after=args.deliver_after
    )
    data = list_file(args.rows)
    figures.load.append(os.getloadavg())
    in_process(data, figures)
    tg, gosms, gotsms = FakeTelegram(bot_token=BOT_TOKEN), FakeGoSMS(), FakeGotSMS()
    for fake in (tg, gosms, gotsms):
        await fake.start()
    gosms.add_account(GOSMS_TOKEN)
    devices = [gosms.add_device(GOSMS_TOKEN, name=f"Phone {n + 1}") for n in range(args.devices)]
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as work:
        cfg = {
            "telegram_url": tg.url + "/",
            "gosms_url": gosms.url + "/",
            "gotsms_url": gotsms.url,
            "database_url": f"sqlite+aiosqlite:///{work}/bot.db",
        }
        env = bot_environment(
            cfg,
            BOT_TOKEN,
            SECRET_KEY,
            bulk_device_pace=str(args.pace),
            bulk_max_rows=str(args.rows),
        )
        with open(Path(work) / "bot.log", "wb") as log:
            bot = Bot(env, Path(work), log)
            began = time.monotonic()
            await bot.start(tg)
            try:
                figures.cpu["start"] = bot.cpu()
                await prepare(tg, devices)
                await to_summary(tg, data, figures, bot)
                await campaign(tg, gosms, figures, bot)
                figures.total_s = time.monotonic() - began
            finally:
                code = await bot.stop()
                for fake in (tg, gosms, gotsms):
                    await fake.close()
        text = (Path(work) / "bot.log").read_text(errors="replace")
        if code != 0 or "Traceback" in text:
            print(text[-4000:], file=sys.stderr)
            raise RuntimeError(f"the bot ended with {code} or a traceback")
    figures.load.append(os.getloadavg())
    return figures


# ---- the tables


def ms(values: Sequence[float]) -> str:
    return f"{min(values) * 1000:.0f} ms (median {statistics.median(values) * 1000:.0f})"


def rate(times: Sequence[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def gaps(per_device: dict[str, list[float]]) -> list[float]:
    return [b - a for times in per_device.values() for a, b in itertools.pairwise(times)]


def tables(f: Figures) -> str:
    by_pace = f.devices / f.pace
    cap = 1 / MIN_GAP
    device_gaps = gaps(f.per_device)
    cpu_start = f.cpu["start"]
    cpu_validation = f.cpu["validation"] - cpu_start
    cpu_campaign = f.cpu["campaign"] - f.cpu["validation"]
    delivered = f.report_delivered
    once = "each number once" if f.sent_once else "NOT each number once"
    gap = f"{min(device_gaps):.3f} / {statistics.median(device_gaps):.3f} s"
    sent = len(f.send_times)
    campaign_cpu = f"{cpu_campaign:.1f} s ({cpu_campaign / max(1, sent) * 1000:.1f} ms per SMS)"
    load = " → ".join(f"{a:.2f}, {b:.2f}, {c:.2f}" for a, b, c in f.load)
    lines = [
        f"### /bulk: {f.rows:,} rows over {f.devices} devices, pace {f.pace:g} s per device, "
        + (f"delivered {f.deliver_after:g} s after" if f.deliver_after > 0 else "never delivered"),
        "",
        "| validating the file | time |",
        "|---|---|",
        f"| parse_file, in process ({f.rows:,} rows, {IN_PROCESS_RUNS} runs) | {ms(f.parse_s)} |",
        f"| check with a template, in process | {ms(f.check_s)} |",
        f'| bot: upload → "rows read" (download + parse) | {f.read_s:.2f} s |',
        f"| bot: template → device question | {f.text_s:.2f} s |",
        f"| bot: SIM press → summary (read again, check, store the draft) | {f.summary_s:.2f} s |",
        f"| bot: upload → summary (with the user's presses) | {f.to_summary_s:.2f} s |",
        f"| the summary says | {f.recipients} |",
        "",
        "| sending | figure |",
        "|---|---|",
        f"| SMS taken by GoSMS | {len(f.send_times):,} ({once}) |",
        f"| refused requests (429 and others) | {f.refused} |",
        f"| expected by the pace: {f.devices} / {f.pace:g} s | {by_pace:.2f} SMS/s |",
        f"| the runner's cap: one SMS per {MIN_GAP:g} s per campaign | {cap:.2f} SMS/s |",
        f"| measured (first to last SMS) | {rate(f.send_times):.2f} SMS/s |",
        f"| gap between two SMS of one device: min / median | {gap} |",
        f"| report rows (delivered when it was made) | {f.report_rows:,} ({delivered:,}) |",
        "",
        "| the bot process | figure |",
        "|---|---|",
        f"| CPU: start-up | {cpu_start:.1f} s |",
        f"| CPU: connect, devices, file to summary | {cpu_validation:.1f} s |",
        f"| CPU: the campaign ({sent:,} SMS, cards, delivery, report) | {campaign_cpu} |",
        f"| peak RSS | {f.rss_mb:.0f} MB |",
        f"| total time, start to report | {f.total_s:.0f} s |",
        "",
        f"Load average (1, 5, 15 min) before → after: {load}; {os.cpu_count()} cores.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=5000, help="rows of the CSV (default 5000)")
    parser.add_argument(
        "--pace", type=float, default=0.6, help="BULK_DEVICE_PACE, s per device (default 0.6)"
    )
    parser.add_argument("--devices", type=int, default=3, help="saved devices (default 3)")
    parser.add_argument(
        "--deliver-after",
        type=float,
        default=5.0,
        help="s after which a phone delivers an SMS GoSMS took (default 5; 0: never, every SMS "
        "stays waiting and the SMS job follows them all)",
    )
    args = parser.parse_args()
    print(tables(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
