"""The campaign runner against the GoSMS double, on both databases: every row requested once,
at the devices' pace, pausing by itself on errors that make going on pointless, slowing down on
transient ones, taking over what a dead instance left, and delivery followed by the SMS job."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.api.errors import ApiRateLimited, ApiRejected, ApiUnavailable
from bot.api.gosms import SmsStatus
from bot.campaigns.card import CARD, DONE, MIN_GAP, STOPPED, StopReason, seconds_per_sms
from bot.campaigns.runner import CampaignRunner, Verdict, judge
from bot.db.campaigns import CampaignRepo, Recipient
from bot.db.models import (
    Campaign,
    CampaignRow,
    CampaignState,
    DeviceMode,
    RowState,
    Service,
    utcnow,
)
from bot.db.outbox import OutboxItem
from bot.db.outbox_repo import PollStateRepo
from bot.db.repo import CredentialRepo, UserRepo
from bot.poller.pushes import campaign_stopped_push
from bot.poller.sender import OutboxSender
from bot.poller.sms import JOB as SMS_JOB
from bot.poller.sms import SmsJob
from tests.conftest import GOSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS

OWNER, SECOND = 8201, 8202
SECOND_TOKEN = "gosms-second-key-11aa22bb33cc"


async def campaign(
    harness: Harness,
    rows: int,
    *,
    user_id: int = OWNER,
    mode: DeviceMode = DeviceMode.ANY,
    devices: Sequence[str] = (),
    pace: float = 0.05,
    to_sim: int | None = None,
    token: str = GOSMS_TOKEN,
    start: bool = True,
    batch: int = 0,
    language: str = "en",
) -> int:
    """A user with the token, and a campaign of `rows` numbers (RUNNING unless `start=False`)."""
    async with harness.deps.session_factory() as session:
        await UserRepo(session).upsert_seen(user_id, user_id, language)
        await CredentialRepo(session, harness.deps.cipher).save(user_id, Service.GOSMS, token)
        await PollStateRepo(session).start(user_id, SMS_JOB)
        recipients = [Recipient(n + 1, phone(user_id, n, batch), f"Hi {n}") for n in range(rows)]
        repo = CampaignRepo(session)
        created = await repo.create_draft(
            user_id,
            source="",
            template="",
            device_mode=mode,
            device_ids=list(devices),
            to_sim=to_sim,
            pace=pace,
            recipients=recipients,
            dropped=[],
        )
        campaign_id = created.id
        if start:
            assert await repo.start(user_id, campaign_id, utcnow())
            await repo.set_card(campaign_id, user_id, 1)
        await session.commit()
        return campaign_id


def phone(user_id: int, n: int, batch: int = 0) -> str:
    return f"79{batch}{user_id}{n:04d}"


def runner(harness: Harness, instance_id: str = "one") -> CampaignRunner:
    deps = harness.deps
    return CampaignRunner(
        deps.session_factory, deps.cipher, deps.clients, instance_id=instance_id, look_every=0.05
    )


Check = Callable[[], Awaitable[bool]]


async def until(check: Check, seconds: float = 20.0) -> None:
    """Waits for `check()` to hold; fails after `seconds`."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        if await check():
            return
        assert loop.time() - began < seconds, "not in time"
        await asyncio.sleep(0.03)


async def run_until(runners: Sequence[CampaignRunner], done: Check, seconds: float = 20.0) -> None:
    """Runs the runners until `done()` holds, then stops them."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in runners]
    try:
        await until(done, seconds)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def state_of(harness: Harness, campaign_id: int) -> Campaign:
    async with harness.deps.session_factory() as session:
        found = await session.get(Campaign, campaign_id)
        assert found is not None
        return found


async def rows_of(harness: Harness, campaign_id: int) -> list[CampaignRow]:
    async with harness.deps.session_factory() as session:
        return await CampaignRepo(session).rows(campaign_id)


async def pushes(harness: Harness, kind: str) -> list[OutboxItem]:
    async with harness.deps.session_factory() as session:
        query = select(OutboxItem).where(OutboxItem.kind == kind).order_by(OutboxItem.id)
        return list((await session.scalars(query)).all())


def in_state(harness: Harness, campaign_id: int, *states: CampaignState) -> Check:
    async def check() -> bool:
        return (await state_of(harness, campaign_id)).state in states

    return check


def has_sms(gosms: FakeGoSMS, count: int) -> Check:
    async def check() -> bool:
        return len(gosms.sms_of(GOSMS_TOKEN)) >= count

    return check


def sent_to(gosms: FakeGoSMS, token: str = GOSMS_TOKEN) -> Counter[str]:
    """How often GoSMS took an SMS to each number."""
    taken = [r for r in gosms.requests_for(token, "/sms/send") if r.status == 200]
    return Counter(r.json["phone_number"] for r in taken)


async def test_every_row_is_requested_once_and_the_campaign_ends_with_its_report(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 12)
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    rows = await rows_of(harness, campaign_id)
    assert {r.state for r in rows} == {RowState.SENT}
    assert sent_to(gosms) == Counter({r.phone: 1 for r in rows}), "each number exactly once"
    assert [r.json["message"] for r in gosms.requests_for(GOSMS_TOKEN, "/sms/send")] == [
        f"Hi {n}" for n in range(12)
    ], "in the order of the list"
    assert {r.sms_id for r in rows} == {s["id"] for s in gosms.sms_of(GOSMS_TOKEN)}
    [done] = await pushes(harness, DONE)
    assert json.loads(done.payload)["sent"] == 12
    cards = await pushes(harness, CARD)
    assert json.loads(cards[-1].payload)["state"] == CampaignState.DONE, "the final card"
    finished = await state_of(harness, campaign_id)
    assert finished.leased_by is None
    assert finished.finished_at is not None


async def test_devices_take_turns_at_their_pace_with_the_chosen_sim(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    ids = [gosms.add_device(GOSMS_TOKEN) for _ in range(3)]
    campaign_id = await campaign(
        harness, 9, mode=DeviceMode.SPREAD, devices=ids, pace=0.6, to_sim=1
    )
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    sends = gosms.requests_for(GOSMS_TOKEN, "/sms/send")
    assert [r.json["device_id"] for r in sends] == ids * 3, "in turn"
    assert {r.json["to_sim"] for r in sends} == {1}
    for device in ids:
        times = [r.at for r in sends if r.json["device_id"] == device]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.55, f"one SMS per 0.6 s per device, saw gaps {gaps}"
    assert sends[-1].at - sends[0].at < 0.6 * 3 + 1.5, "the devices send side by side"


async def test_any_device_sends_without_device_or_sim(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 2, to_sim=1)
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    for sent in gosms.requests_for(GOSMS_TOKEN, "/sms/send"):
        assert "device_id" not in sent.json
        assert "to_sim" not in sent.json


async def stopped_by(
    harness: Harness, gosms: FakeGoSMS, breaks: Callable[[str], object], reason: StopReason
) -> list[CampaignRow]:
    """A campaign that sends 2 rows, then GoSMS starts refusing: it pauses by itself."""
    device = gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 6, mode=DeviceMode.ONE, devices=[device], pace=0.3)
    go = runner(harness)

    async def two_sent() -> bool:
        return len(gosms.requests_for(GOSMS_TOKEN, "/sms/send")) >= 2

    stop = asyncio.Event()
    task = asyncio.create_task(go.run(stop))
    await until(two_sent, 10)
    breaks(device)
    check = in_state(harness, campaign_id, CampaignState.PAUSED)
    await until(check, 10)
    await asyncio.sleep(0.5)  # nothing more goes out while paused
    stop.set()
    await task
    paused = await state_of(harness, campaign_id)
    assert paused.reason == reason
    assert paused.leased_by is None
    [told] = await pushes(harness, STOPPED)
    assert json.loads(told.payload)["reason"] == reason
    rows = await rows_of(harness, campaign_id)
    sent = sum(1 for r in rows if r.state == RowState.SENT)
    assert sent == sum(sent_to(gosms).values()) >= 2
    assert {r.state for r in rows} == {RowState.SENT, RowState.QUEUED}, "the refused row waits"
    return rows


async def test_a_switched_off_token_pauses_it(harness: Harness, gosms: FakeGoSMS) -> None:
    await stopped_by(
        harness, gosms, lambda _d: gosms.set_key_active(GOSMS_TOKEN, False), StopReason.REVOKED
    )


async def test_a_deleted_token_pauses_it(harness: Harness, gosms: FakeGoSMS) -> None:
    await stopped_by(harness, gosms, lambda _d: gosms.delete_key(GOSMS_TOKEN), StopReason.REVOKED)


async def test_the_tariff_limit_pauses_it(harness: Harness, gosms: FakeGoSMS) -> None:
    await stopped_by(
        harness,
        gosms,
        lambda _d: gosms.set_monthly_limit(GOSMS_TOKEN, len(gosms.sms_of(GOSMS_TOKEN))),
        StopReason.TARIFF,
    )


async def test_a_switched_off_device_pauses_it(harness: Harness, gosms: FakeGoSMS) -> None:
    await stopped_by(
        harness, gosms, lambda d: gosms.set_device(d, active=False), StopReason.NO_DEVICE
    )


async def test_a_blocked_account_pauses_it(harness: Harness, gosms: FakeGoSMS) -> None:
    await stopped_by(harness, gosms, lambda _d: gosms.block(GOSMS_TOKEN), StopReason.BLOCKED)


async def test_resumed_it_goes_on_from_where_it_was(harness: Harness, gosms: FakeGoSMS) -> None:
    rows = await stopped_by(
        harness, gosms, lambda _d: gosms.set_key_active(GOSMS_TOKEN, False), StopReason.REVOKED
    )
    campaign_id = rows[0].campaign_id
    gosms.set_key_active(GOSMS_TOKEN, True)
    async with harness.deps.session_factory() as session:
        repo = CampaignRepo(session)
        assert await repo.move(OWNER, campaign_id, [CampaignState.PAUSED], CampaignState.RUNNING)
        await session.commit()
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    assert set(sent_to(gosms).values()) == {1}
    assert sum(sent_to(gosms).values()) == 6


async def test_a_user_pause_stops_sending_until_resumed(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 30, pace=0.1)
    go, stop = runner(harness), asyncio.Event()
    task = asyncio.create_task(go.run(stop))
    await until(has_sms(gosms, 3), 10)
    async with harness.deps.session_factory() as session:
        running = [CampaignState.RUNNING]
        assert await CampaignRepo(session).move(OWNER, campaign_id, running, CampaignState.PAUSED)
        await session.commit()
    await asyncio.sleep(0.4)  # a request under way may still land
    count = len(gosms.sms_of(GOSMS_TOKEN))
    await asyncio.sleep(0.8)
    assert len(gosms.sms_of(GOSMS_TOKEN)) == count < 30, "nothing goes out while paused"
    async with harness.deps.session_factory() as session:
        paused = [CampaignState.PAUSED]
        assert await CampaignRepo(session).move(OWNER, campaign_id, paused, CampaignState.RUNNING)
        await session.commit()
    check = in_state(harness, campaign_id, CampaignState.DONE)
    await until(check, 20)
    stop.set()
    await task
    assert sum(sent_to(gosms).values()) == 30
    assert set(sent_to(gosms).values()) == {1}


async def test_a_cancelled_campaign_sends_no_more(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 30, pace=0.1)
    go, stop = runner(harness), asyncio.Event()
    task = asyncio.create_task(go.run(stop))
    await until(has_sms(gosms, 2), 10)
    async with harness.deps.session_factory() as session:
        live = [CampaignState.RUNNING, CampaignState.PAUSED]
        assert await CampaignRepo(session).move(OWNER, campaign_id, live, CampaignState.CANCELLED)
        await session.commit()
    await asyncio.sleep(0.4)
    count = len(gosms.sms_of(GOSMS_TOKEN))
    await asyncio.sleep(0.6)
    stop.set()
    await task
    assert len(gosms.sms_of(GOSMS_TOKEN)) == count < 30
    assert (await state_of(harness, campaign_id)).state == CampaignState.CANCELLED


async def test_transient_errors_slow_it_down_and_an_uncertain_one_is_unknown(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 5)
    gosms.fail_next("/sms/send", 429, times=2)  # not taken: sent again later
    gosms.fail_next("/sms/send", 500)  # may have been taken: unknown, never again
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    rows = await rows_of(harness, campaign_id)
    states = Counter(r.state for r in rows)
    assert states == Counter({RowState.SENT: 4, RowState.UNKNOWN: 1})
    [unknown] = [r for r in rows if r.state == RowState.UNKNOWN]
    asked = Counter(r.json["phone_number"] for r in gosms.requests_for(GOSMS_TOKEN, "/sms/send"))
    assert asked[unknown.phone] == 1, "an unknown row is not asked for again by itself"
    assert set(sent_to(gosms).values()) == {1}


async def test_a_bad_row_fails_alone(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 3)
    gosms.fail_next("/sms/send", 400, code=2003, message="Phone number is too short")
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    rows = await rows_of(harness, campaign_id)
    assert [r.state for r in rows] == [RowState.FAILED, RowState.SENT, RowState.SENT]
    assert rows[0].error == "Phone number is too short"
    assert rows[0].sms_id is None


async def test_a_device_that_is_gone_is_left_out_of_the_turns(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    ids = [gosms.add_device(GOSMS_TOKEN) for _ in range(2)]
    campaign_id = await campaign(harness, 4, mode=DeviceMode.SPREAD, devices=[*ids, "f" * 24])
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    rows = await rows_of(harness, campaign_id)
    assert {r.state for r in rows} == {RowState.SENT}
    assert {r.device_id for r in rows} == set(ids)


async def test_a_dead_instances_row_in_flight_becomes_unknown_and_the_rest_goes_on(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 4)
    async with harness.deps.session_factory() as session:
        first = (await CampaignRepo(session).rows(campaign_id))[0]
        await session.execute(
            update(CampaignRow).where(CampaignRow.id == first.id).values(state=RowState.SENDING)
        )
        await session.execute(  # its lease ran out: the instance stopped beating
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(leased_by="dead", leased_until=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    rows = await rows_of(harness, campaign_id)
    assert [r.state for r in rows] == [RowState.UNKNOWN, *[RowState.SENT] * 3]
    assert rows[0].phone not in sent_to(gosms)


async def test_a_live_lease_of_another_instance_is_left_alone(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 2)
    async with harness.deps.session_factory() as session:
        await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(leased_by="other", leased_until=utcnow() + timedelta(seconds=30))
        )
        await session.commit()
    assert await runner(harness).look() == []
    assert not gosms.requests_for(GOSMS_TOKEN, "/sms/send")


async def test_two_instances_send_each_row_once_one_campaign_of_a_user_at_a_time(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    gosms.add_account(SECOND_TOKEN)
    for token in (GOSMS_TOKEN, SECOND_TOKEN):
        gosms.add_device(token)
    first = await campaign(harness, 8)
    second = await campaign(harness, 8, batch=1)
    other = await campaign(harness, 8, user_id=SECOND, token=SECOND_TOKEN)
    runners = [runner(harness, "a"), runner(harness, "b")]

    async def all_done() -> bool:
        states = [(await state_of(harness, c)).state for c in (first, second, other)]
        return set(states) == {CampaignState.DONE}

    await run_until(runners, all_done, seconds=40)
    for token in (GOSMS_TOKEN, SECOND_TOKEN):
        assert set(sent_to(gosms, token).values()) == {1}
    assert sum(sent_to(gosms).values()) == 16
    sends = gosms.requests_for(GOSMS_TOKEN, "/sms/send")
    firsts = {phone(OWNER, n) for n in range(8)}
    order = [r.json["phone_number"] in firsts for r in sends]
    assert order == [True] * 16 or order[:8] == [True] * 8, "one campaign, then the next"


async def test_delivery_is_followed_by_the_sms_job(harness: Harness, gosms: FakeGoSMS) -> None:
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 4)
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    delivered = [s["id"] for s in gosms.sms_of(GOSMS_TOKEN)][:3]
    for sms_id in delivered:
        gosms.set_status(sms_id, int(SmsStatus.DELIVERED))
    deps = harness.deps
    job = SmsJob(deps.session_factory, deps.cipher, deps.clients)
    await job.poll(OWNER)
    rows = await rows_of(harness, campaign_id)
    assert Counter(r.sms_status for r in rows) == Counter(
        {int(SmsStatus.DELIVERED): 3, int(SmsStatus.WAITING): 1}
    )
    async with deps.session_factory() as session:
        counts = await CampaignRepo(session).counts(campaign_id)
    assert counts.delivered == 3
    card = json.loads((await pushes(harness, CARD))[-1].payload)
    assert card["delivered"] == 3, "the card follows the deliveries"


def test_what_each_error_means() -> None:
    assert judge(ApiRateLimited("gosms", 7)).verdict == Verdict.AGAIN
    assert judge(ApiRateLimited("gosms", 7)).wait == 7
    assert judge(ApiUnavailable("gosms", "timeout", uncertain=True)).verdict == Verdict.UNKNOWN
    assert judge(ApiUnavailable("gosms", "refused")).verdict == Verdict.AGAIN
    assert judge(ApiRejected("gosms", "tariff", status=403, code=1006)).reason == "tariff"
    assert judge(ApiRejected("gosms", "no device", code=1015)).reason == "no_device"
    assert judge(ApiRejected("gosms", "gone", code=1016)).verdict == Verdict.DEVICE_GONE
    assert judge(ApiRejected("gosms", "bad phone", code=2001)).verdict == Verdict.FAILED


def test_the_time_a_campaign_takes_counts_the_runners_cap() -> None:
    many = Campaign(device_mode=DeviceMode.SPREAD, device_ids=json.dumps(["d"] * 16), pace=3.0)
    assert seconds_per_sms(many) == MIN_GAP, "16 devices at 3 s would be 0.19 s: the cap holds"
    few = Campaign(device_mode=DeviceMode.SPREAD, device_ids=json.dumps(["a", "b"]), pace=3.0)
    assert seconds_per_sms(few) == 1.5
    assert seconds_per_sms(Campaign(device_mode=DeviceMode.ANY, device_ids="[]", pace=3.0)) == 3.0


async def delivered(harness: Harness) -> None:
    """Every queued push sent to the Telegram double."""
    out = OutboxSender(harness.bot, harness.deps.session_factory, harness.deps.i18n)
    for _ in range(20):
        await out.drain_once()


async def with_card(harness: Harness, user_id: int) -> None:
    """The user's campaigns' cards are a real message of the chat."""
    card = await harness.bot.send_message(user_id, "card")
    async with harness.deps.session_factory() as session:
        await session.execute(
            update(Campaign).where(Campaign.user_id == user_id).values(message_id=card.message_id)
        )
        await session.commit()


async def test_a_pause_by_itself_tells_why_and_resume_goes_on(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    harness.tg.user(OWNER, language_code="en")
    await harness.send(OWNER, "/start")
    rows = await stopped_by(
        harness, gosms, lambda _d: gosms.set_key_active(GOSMS_TOKEN, False), StopReason.REVOKED
    )
    await with_card(harness, OWNER)
    await delivered(harness)
    told = harness.last(OWNER)
    assert told.text.startswith(f"⏸ Campaign #{rows[0].campaign_id} is paused.")
    assert "Connect a working one with /token, then press Resume." in told.text
    assert told.button_texts() == ["▶️ Resume"]
    gosms.set_key_active(GOSMS_TOKEN, True)
    answer = await harness.press(OWNER, "▶️ Resume")
    assert answer.answered
    assert (await state_of(harness, rows[0].campaign_id)).state == CampaignState.RUNNING


async def test_the_end_sends_the_report_as_a_document(harness: Harness, gosms: FakeGoSMS) -> None:
    harness.tg.user(OWNER, language_code="ru")
    await harness.send(OWNER, "/start")
    gosms.add_device(GOSMS_TOKEN)
    campaign_id = await campaign(harness, 3, language="ru")
    await with_card(harness, OWNER)
    await run_until([runner(harness)], in_state(harness, campaign_id, CampaignState.DONE))
    await delivered(harness)
    [report] = [m for m in harness.tg.bot_messages(OWNER) if m.content and "document" in m.content]
    assert report.text.startswith(f"🏁 Рассылка №{campaign_id} завершена.")
    name, data = harness.tg.document_of(report)
    assert name == f"campaign-{campaign_id}.csv"
    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0] == "number,text,sms_id,status,error"
    assert [line.split(",")[0] for line in lines[1:]] == [phone(OWNER, n) for n in range(3)]


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        (StopReason.REVOKED, "Connect a working one with /token"),
        (StopReason.TARIFF, "Raise it in the GoSMS panel"),
        (StopReason.NO_DEVICE, "Turn one on in the GoSMS app"),
        (StopReason.BLOCKED, "Contact GoSMS support"),
        (StopReason.PERMISSION, "Allow sending in the GoSMS panel"),
    ],
)
async def test_each_pause_by_itself_says_what_to_do(
    harness: Harness, reason: StopReason, advice: str
) -> None:
    i18n = harness.deps.i18n
    with i18n.context(), i18n.use_locale("en"):
        push = campaign_stopped_push({"campaign_id": 7, "source": "<list>.csv", "reason": reason})
    assert push.text.startswith("⏸ <b>Campaign #7</b> · &lt;list&gt;.csv is paused.")
    assert advice in push.text
