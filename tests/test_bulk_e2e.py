"""/bulk end to end (issue 13): the real `python -m bot` against the doubles, driven through
getUpdates as a user would. A campaign of 200 pasted numbers goes on across two SIGKILLs in its
middle, each while an SMS request is in flight: every valid number is requested once, the row
whose request was cut off is "unknown" and never requested again, the card moves in place and
the CSV report says what GoSMS has. A paused campaign stays paused across a SIGKILL."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.conftest import GOSMS_TOKEN, BotProcess
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.telegram import FakeTelegram, StoredMessage
from tests.test_restart import connect, killed, started

USER, PAUSER = 9301, 9302
WAIT = 20.0
CAMPAIGN = 120.0  # s a whole campaign may take: 200 rows at 5 SMS/s and two restarts
# the devices' pace: the lowest BULK_DEVICE_PACE allows; the runner's own gap between two SMS
# of a campaign (0.2 s) is then what paces it
FAST = {"BULK_DEVICE_PACE": "0.1"}
KILLS = (40, 110)  # SMS GoSMS holds when the bot is killed
STATUS_WORDS = {0: "waiting", 4: "delivered", 5: "delivery error"}  # the report's
IN_FLIGHT = 3.0  # s GoSMS takes to answer while the test kills the bot in the middle of one


def numbers(count: int, block: int) -> list[str]:
    return [f"7999{block}{n:05d}" for n in range(count)]


def pasted_list(valid: list[str]) -> tuple[str, int, int]:
    """The valid numbers one per line, with duplicates (one written otherwise) and bad lines
    among them: (text, duplicates, bad)."""
    lines = list(valid)
    first = valid[0]
    duplicates = [valid[5], valid[30], f"+{first[0]} ({first[1:4]}) {first[4:7]}-{first[7:]}"]
    bad = ["12", "call me back", "7999x", "1" * 31]
    for n, extra in enumerate(duplicates + bad):
        lines.insert(20 + n * 25, extra)
    return "\n".join(lines), len(duplicates), len(bad)


def sends(gosms: FakeGoSMS) -> list[tuple[str, int]]:
    """(number, HTTP status) of every /sms/send request GoSMS saw, 0 while unanswered."""
    return [
        (r.json["phone_number"], r.status) for r in gosms.requests_for(GOSMS_TOKEN, "/sms/send")
    ]


def taken(gosms: FakeGoSMS) -> Counter[str]:
    """How many SMS GoSMS holds for each number."""
    return Counter(s["phone_number"] for s in gosms.sms_of(GOSMS_TOKEN))


def holding(gosms: FakeGoSMS, count: int) -> Callable[[], bool]:
    return lambda: len(taken(gosms)) >= count


def in_flight(gosms: FakeGoSMS) -> list[str]:
    return [number for number, status in sends(gosms) if status == 0]


async def kill_during_a_request(bot: BotProcess, tg: FakeTelegram, gosms: FakeGoSMS) -> str:
    """Slows GoSMS down, kills the bot while one SMS request is unanswered: its number."""
    gosms.set_latency(IN_FLIGHT)
    await tg.wait_for(lambda: bool(in_flight(gosms)), timeout=WAIT)
    [number] = in_flight(gosms)
    await killed(bot)
    gosms.set_latency(0)
    return number


def delivered_meanwhile(gosms: FakeGoSMS) -> None:
    """The phones deliver what they took so far, every ninth SMS with a delivery error."""
    for n, sms in enumerate(reversed(gosms.sms_of(GOSMS_TOKEN))):
        gosms.set_status(sms["id"], 5 if n % 9 == 8 else 4)


def sent_count(card: str) -> int:
    """N of "✅ Sent: N of M" on the card."""
    line = next(x for x in card.splitlines() if x.startswith("✅ Sent:"))
    return int(line.split()[2])


def report_of(tg: FakeTelegram, message: StoredMessage) -> list[dict[str, str]]:
    name, data = tg.document_of(message)
    assert name is not None
    assert name.endswith(".csv")
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


async def summary(tg: FakeTelegram, user_id: int, pasted: str, text: str) -> StoredMessage:
    tg.send_text(user_id, "/bulk")
    await tg.wait_for_bot_message(user_id, "A campaign: one text to many numbers", timeout=WAIT)
    tg.send_text(user_id, pasted)
    await tg.wait_for_bot_message(user_id, "Now send the text of the SMS", timeout=WAIT)
    tg.send_text(user_id, text)
    return await tg.wait_for_bot_message(user_id, "Start the campaign?", timeout=WAIT)


async def test_a_campaign_survives_two_sigkills_and_sends_each_number_once(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN, name="Pixel")
    env = bot_env | FAST
    valid = numbers(200, 1)
    pasted, duplicates, bad = pasted_list(valid)
    bot = await started(env, tmp_path, tg)
    await connect(tg, USER, "gosms")

    shown = await summary(tg, USER, pasted, "Your visit is tomorrow at 10")
    assert "👥 Recipients: 200" in shown.text
    assert f"🚫 Dropped: {duplicates + bad}" in shown.text
    assert f"• the number is already in the list: {duplicates}" in shown.text
    assert f"• not a phone number (3 to 30 digits): {bad}" in shown.text
    assert "Your visit is tomorrow at 10" in shown.text
    assert "📱 Devices: any device (GoSMS chooses)" in shown.text, "no saved device: no question"
    assert not gosms.requests_for(GOSMS_TOKEN, "/sms/send"), "nothing before Start"
    tg.press_button(USER, "🚀 Start", message_id=shown.message_id)
    card_id = shown.message_id
    await tg.wait_for(lambda: "▶️ Running" in tg.message(USER, card_id).text, timeout=WAIT)
    await tg.wait_for(lambda: sent_count(tg.message(USER, card_id).text) > 0, timeout=WAIT)

    cut_off = []
    for after in KILLS:
        await tg.wait_for(holding(gosms, after), timeout=CAMPAIGN)
        cut_off.append(await kill_during_a_request(bot, tg, gosms))
        await asyncio.sleep(IN_FLIGHT)  # GoSMS ends the request nobody waits for any more
        if after == KILLS[0]:
            delivered_meanwhile(gosms)
        bot = await started(env, tmp_path, tg)

    done = await tg.wait_for_bot_message(USER, "is done.", timeout=CAMPAIGN)
    await asyncio.sleep(1.5)  # time for a second run of a row or a second report to show up
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log, bot.log

    requested = Counter(number for number, _ in sends(gosms))
    assert set(requested) == set(valid), "every valid number, none of the dropped lines"
    assert max(requested.values()) == 1, "no number was requested twice"
    assert max(taken(gosms).values()) == 1, "GoSMS holds no number twice"
    report = report_of(tg, done)
    assert [r["number"] for r in report] == valid, "the report lists the rows in order"
    unknown = [r["number"] for r in report if r["status"] == "unknown"]
    assert unknown == cut_off, "only the rows whose request the kills cut off are unknown"
    holds = {s["phone_number"]: s for s in gosms.sms_of(GOSMS_TOKEN)}
    for row in report:
        assert row["text"] == "Your visit is tomorrow at 10"
        if row["number"] in cut_off:
            assert row["sms_id"] == "", "its answer never came"
            continue
        sms = holds[row["number"]]
        assert (row["sms_id"], row["status"]) == (sms["id"], STATUS_WORDS[sms["status"]]), row
    assert set(holds) - set(cut_off) == set(valid) - set(cut_off), "the rest all went out"

    card = tg.message(USER, card_id)
    assert "🏁 Done." in card.text
    assert f"✅ Sent: {200 - len(cut_off)} of 200" in card.text
    assert f"❓ Unknown (may have gone out): {len(cut_off)}" in card.text
    statuses = Counter(s["status"] for n, s in holds.items() if n not in cut_off)
    assert statuses[4] > 0
    assert statuses[5] > 0
    assert f"📬 Delivered: {statuses[4]}" in card.text, "delivery followed on the card"
    assert card.button_texts() == ["📄 Download report", "🔁 Retry failed"]
    versions = [v.text for v in card.history] + [card.text]
    counts = [sent_count(v) for v in versions if "✅ Sent:" in v]
    assert len(set(counts)) >= 5, f"the card moved in place: {counts}"
    assert counts == sorted(counts), "its counts only go up"
    cards = [m for m in tg.bot_messages(USER) if m.text.startswith("📨 Campaign #")]
    assert [m.message_id for m in cards] == [card_id], "one card, edited in place"
    assert sum(1 for m in tg.bot_messages(USER) if "is done." in m.text) == 1, "one report"


async def test_a_paused_campaign_stays_paused_across_a_sigkill(
    bot_env: dict[str, str], tmp_path: Path, tg: FakeTelegram, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN, name="Pixel")
    env = bot_env | FAST
    valid = numbers(40, 2)
    bot = await started(env, tmp_path, tg)
    await connect(tg, PAUSER, "gosms")
    shown = await summary(tg, PAUSER, "\n".join(valid), "Team meeting moved to 3 pm")
    card_id = shown.message_id
    tg.press_button(PAUSER, "🚀 Start", message_id=card_id)
    await tg.wait_for(lambda: len(taken(gosms)) >= 5, timeout=WAIT)
    tg.press_button(PAUSER, "⏸ Pause", message_id=card_id)
    await tg.wait_for(lambda: "⏸ Paused." in tg.message(PAUSER, card_id).text, timeout=WAIT)
    await asyncio.sleep(1.0)  # a request under way when Pause was pressed is answered
    before = len(sends(gosms))
    assert 5 <= before < 40

    await killed(bot)
    bot = await started(env, tmp_path, tg)
    await asyncio.sleep(6.0)  # three looks of the runner for campaigns to send
    assert len(sends(gosms)) == before, "nothing is sent while it is paused"
    card = tg.message(PAUSER, card_id)
    assert "⏸ Paused." in card.text
    assert card.button_texts() == ["▶️ Resume", "⏹ Cancel"]

    tg.press_button(PAUSER, "▶️ Resume", message_id=card_id)
    done = await tg.wait_for_bot_message(PAUSER, "is done.", timeout=CAMPAIGN)
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log, bot.log
    assert Counter(number for number, _ in sends(gosms)) == Counter(valid), "each once"
    report = report_of(tg, done)
    assert [(r["number"], r["status"]) for r in report] == [(n, "waiting") for n in valid]
    assert "🏁 Done." in tg.message(PAUSER, card_id).text
    assert "✅ Sent: 40 of 40" in tg.message(PAUSER, card_id).text
