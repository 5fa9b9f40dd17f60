"""/bulk through the real dispatcher: the recipients, the text, the devices, the summary, one
Start, the card's buttons, the list of campaigns, Retry failed. The runner that sends is not
part of these tests: a campaign in some state is set up directly in the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from bot.db.campaigns import CampaignRepo, Recipient
from bot.db.models import Campaign, CampaignRow, CampaignState, DeviceMode, RowState
from bot.db.repo import UserRepo
from bot.keyboards.callbacks import BulkAction, BulkCb, MenuCb
from tests.backends import Backend
from tests.conftest import GOSMS_TOKEN, Harness
from tests.fakes.gosms import FakeGoSMS
from tests.fakes.telegram import CallbackQueryRecord
from tests.test_gosms_send import connect, forge, save_device

EN, RU, OTHER = 4101, 4102, 4103
UUID = "0F8FAD5B-D9CB-469F-A165-70867728950E"
NUMBERS = "79991234567\n79991234568\n+7 999 123-45-69"
# the presses that must take effect once run on PostgreSQL as well (dialogs in Redis there)
BOTH_DATABASES = pytest.mark.parametrize(
    "backend", [Backend.SQLITE, Backend.POSTGRES], indirect=True
)


@pytest.fixture(autouse=True)
def every_press_answered(harness: Harness) -> Iterator[None]:
    yield
    unanswered = [q.data for q in harness.tg.callback_queries.values() if not q.answered]
    assert not unanswered, f"presses never answered: {unanswered}"


# ---- helpers


async def campaigns(harness: Harness) -> list[Campaign]:
    async with harness.deps.session_factory() as session:
        return list((await session.scalars(select(Campaign).order_by(Campaign.id))).all())


async def rows_of(harness: Harness, campaign_id: int) -> list[CampaignRow]:
    async with harness.deps.session_factory() as session:
        return await CampaignRepo(session).rows(campaign_id)


async def only_campaign(harness: Harness) -> Campaign:
    [campaign] = await campaigns(harness)
    return campaign


def answered(answer: CallbackQueryRecord) -> CallbackQueryRecord:
    assert answer.answered, f"the press on {answer.data!r} was not answered"
    assert "Traceback" not in (answer.text or "")
    return answer


async def press(harness: Harness, user_id: int, label: str) -> CallbackQueryRecord:
    return answered(await harness.press(user_id, label))


def last_text(harness: Harness, user_id: int) -> str:
    text = harness.last(user_id).text
    assert "Traceback" not in text, text
    assert "Error" not in text, text
    return text


async def summary_of(harness: Harness, user_id: int, recipients: str, text: str | None) -> str:
    await harness.send(user_id, "/bulk")
    await harness.send(user_id, recipients)
    if text is not None:
        await harness.send(user_id, text)
    return last_text(harness, user_id)


async def made(
    harness: Harness,
    user_id: int,
    state: CampaignState,
    rows: list[tuple[RowState, str | None]],
    *,
    message_id: int | None = None,
    source: str = "",
) -> int:
    """A campaign of `user_id` in `state`, with a row per (state, sms_id)."""
    async with harness.deps.session_factory() as session:
        await UserRepo(session).upsert_seen(user_id, user_id, "en")
        recipients = [Recipient(n + 1, f"7999000{n:04d}", f"Hi {n}") for n in range(len(rows))]
        repo = CampaignRepo(session)
        campaign = await repo.create_draft(
            user_id,
            source=source,
            template="",
            device_mode=DeviceMode.ANY,
            device_ids=[],
            to_sim=None,
            pace=3.0,
            recipients=recipients,
            dropped=[],
        )
        campaign_id = campaign.id
        await session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(state=state)
        )
        for row, (row_state, sms_id) in zip(await repo.rows(campaign_id), rows, strict=True):
            await session.execute(
                update(CampaignRow)
                .where(CampaignRow.id == row.id)
                .values(
                    state=row_state,
                    sms_id=sms_id,
                    sms_status=2 if sms_id else None,
                    error=None if sms_id or row_state != RowState.FAILED else "refused",
                )
            )
        if message_id is not None:
            await repo.set_card(campaign_id, user_id, message_id)
        await session.commit()
        return campaign_id


async def open_card(harness: Harness, user_id: int, campaign_id: int) -> CallbackQueryRecord:
    """The card of a campaign, as a new message (as from the list)."""
    await harness.send(user_id, "/bulk")
    return answered(
        await forge(harness, user_id, BulkCb(action=BulkAction.OPEN, id=campaign_id).pack())
    )


# ---- step 1: the recipients


async def test_bulk_and_the_menu_button_ask_for_recipients(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    asked = last_text(harness, EN)
    assert asked.startswith("📨 A campaign: one text to many numbers.")
    assert "Up to 5,000 rows, files up to 1 MB." in asked
    assert harness.last(EN).button_texts() == [], "no campaigns yet: no list button"
    await harness.send(EN, "/start")
    assert "📣 Campaign" in harness.last(EN).button_texts()
    answer = await press(harness, EN, "📣 Campaign")
    assert not answer.show_alert
    assert last_text(harness, EN).startswith("📨 A campaign")
    await harness.send(EN, NUMBERS)
    assert "3 rows read" in last_text(harness, EN), "the button's dialog is the same"
    assert not gosms.requests


async def test_without_a_gosms_token_the_user_is_told_to_connect(harness: Harness) -> None:
    harness.tg.user(OTHER, language_code="en")
    await harness.send(OTHER, "/bulk")
    assert "Connect your GoSMS token first" in last_text(harness, OTHER)
    answer = answered(await forge(harness, OTHER, MenuCb(action="bulk").pack()))
    assert answer.show_alert
    assert "Connect your GoSMS token first" in (answer.text or "")
    await harness.send(OTHER, NUMBERS)
    assert "3 rows read" not in harness.last(OTHER).text, "no dialog was started"
    assert await campaigns(harness) == []


# ---- step 2: the text


async def test_a_pasted_list_asks_for_the_text_then_sums_up(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    await harness.send(EN, NUMBERS)
    asked = last_text(harness, EN)
    assert asked.startswith("✅ 3 rows read.")
    assert "Now send the text of the SMS" in asked
    await harness.send(EN, "Meeting at 10 <sharp> & on time")
    summary = harness.last(EN)
    text = summary.text
    assert text.startswith("📨 Campaign #")
    assert "👥 Recipients: 3" in text
    assert "Dropped" not in text
    assert "Meeting at 10 <sharp> & on time" in text, "the sample, escaped and shown as written"
    assert "📱 Devices: any device (GoSMS chooses)" in text
    assert "🐢 Pace: one SMS every 3 s per device" in text
    assert "⏱ It will take about 9 s." in text
    assert summary.button_texts() == ["🚀 Start", "Cancel"]
    campaign = await only_campaign(harness)
    assert campaign.state == CampaignState.DRAFT
    assert campaign.template == "Meeting at 10 <sharp> & on time"
    assert [(r.line, r.phone, r.state) for r in await rows_of(harness, campaign.id)] == [
        (1, "79991234567", RowState.QUEUED),
        (2, "79991234568", RowState.QUEUED),
        (3, "79991234569", RowState.QUEUED),
    ]
    assert not gosms.requests, "nothing is sent before Start"


async def test_lines_with_their_own_text_skip_the_text_question(harness: Harness) -> None:
    await connect(harness, EN)
    text = await summary_of(
        harness, EN, "79991234567, Your code is 1\n79991234568, Your code is 2", None
    )
    assert "👥 Recipients: 2" in text
    assert "Your code is 1" in text, "the first row's own text is the sample"
    campaign = await only_campaign(harness)
    assert campaign.template == ""
    assert [r.text for r in await rows_of(harness, campaign.id)] == [
        "Your code is 1",
        "Your code is 2",
    ]


async def test_a_template_needs_columns_a_pasted_list_has_not(harness: Harness) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    await harness.send(EN, NUMBERS)
    await harness.send(EN, "Hello {name}")
    refused = last_text(harness, EN)
    assert refused.startswith("❌ The list has no column for {name}.")
    assert "This list has no columns" in refused
    assert "Send the text again" in refused
    assert await campaigns(harness) == []
    await harness.send(EN, "Hello all")
    assert "👥 Recipients: 3" in last_text(harness, EN), "the dialog waited for a new text"


@pytest.mark.parametrize(
    ("text", "refusal"),
    [("Use `code`", "backtick"), ("x" * 301, "the limit is 300 characters, and it has 301")],
)
async def test_a_text_gosms_refuses_is_refused_and_the_text_asked_again(
    harness: Harness, text: str, refusal: str
) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    await harness.send(EN, NUMBERS)
    await harness.send(EN, text)
    answer = last_text(harness, EN)
    assert answer.startswith("❌")
    assert refusal in answer
    assert "Send the text again, or /cancel." in answer
    assert await campaigns(harness) == []
    await harness.send(EN, "x" * 300)
    assert "👥 Recipients: 3" in last_text(harness, EN)


async def test_the_text_refusal_in_russian(harness: Harness) -> None:
    await connect(harness, RU, "ru")
    await harness.send(RU, "/bulk")
    await harness.send(RU, NUMBERS)
    await harness.send(RU, "Код `1`")
    answer = last_text(harness, RU)
    assert answer.startswith("❌ GoSMS не принимает обратную кавычку (`)")
    assert answer.endswith("Пришлите текст ещё раз или /cancel.")
    await harness.send(RU, "Привет")
    assert "Привет" in last_text(harness, RU)
    assert harness.last(RU).button_texts() == ["🚀 Запустить", "Отмена"]


# ---- the summary


async def test_the_summary_names_what_was_dropped_and_why(harness: Harness) -> None:
    await connect(harness, EN)
    pasted = "\n".join(
        ["79991234567", "call me", "79991234567", "", "12", "+7 (999) 123-45-67", "79990000001"]
    )
    text = await summary_of(harness, EN, pasted, "Hi there")
    assert "👥 Recipients: 2" in text
    assert "🚫 Dropped: 4" in text
    assert "• the number is already in the list: 2" in text
    assert "• not a phone number (3 to 30 digits): 2" in text
    assert "line 2: call, me — not a phone number (3 to 30 digits)" in text
    assert "line 3: 79991234567 — the number is already in the list" in text
    assert "line 5: 12 — not a phone number" in text, "line numbers count the blank line"
    assert "line 6: +7 (999) 123-45-67 — the number is already in the list" in text
    assert "Hi there" in text
    assert harness.last(EN).button_texts() == ["🚀 Start", "Cancel", "📄 Download dropped rows"]
    campaign = await only_campaign(harness)
    assert campaign.total == 2
    assert [r.line for r in await rows_of(harness, campaign.id)] == [1, 7]


async def test_more_dropped_rows_than_shown_point_at_the_file(harness: Harness) -> None:
    await connect(harness, EN)
    pasted = "\n".join(["79991234567"] + [f"bad{n}" for n in range(8)])
    text = await summary_of(harness, EN, pasted, "Hi")
    assert "🚫 Dropped: 8" in text
    assert "line 6: bad4" in text
    assert "bad5" not in text, "the first five only"
    assert "…and 3 more rows in the file." in text


async def test_nothing_valid_is_nothing_to_start(harness: Harness) -> None:
    await connect(harness, EN)
    text = await summary_of(harness, EN, "abc\nxyz", "Hi")
    assert "👥 Recipients: 0" in text
    assert "Nothing to send: no row is valid." in text
    assert harness.last(EN).button_texts() == ["📄 Download dropped rows"], "no Start"
    await harness.send(EN, "Hi again")
    assert "Recipients" not in harness.last(EN).text, "the dialog is over"


async def test_a_long_campaign_says_how_long_it_takes(harness: Harness) -> None:
    await connect(harness, EN)
    pasted = "\n".join(f"7999{n:07d}" for n in range(1500))
    text = await summary_of(harness, EN, pasted, "Hi")
    assert "👥 Recipients: 1500" in text
    assert "⏱ It will take about 1 h 15 min." in text


# ---- the devices


async def test_one_saved_device_asks_device_then_sim(harness: Harness, gosms: FakeGoSMS) -> None:
    device_id = gosms.add_device(GOSMS_TOKEN, device_id=UUID, name="Pixel <7>")
    await connect(harness, EN)
    await save_device(harness, EN, device_id, "Pixel <7>")
    await harness.send(EN, "/bulk")
    await harness.send(EN, NUMBERS)
    await harness.send(EN, "Hi")
    assert last_text(harness, EN) == "📱 Which devices should send the campaign?"
    assert harness.last(EN).button_texts() == ["🎲 Any device", "📱 Pixel <7>"]
    await press(harness, EN, "Pixel")
    assert last_text(harness, EN) == "📶 Which SIM card of Pixel <7> should send it?"
    assert harness.last(EN).button_texts() == ["Default SIM", "SIM 1", "SIM 2"]
    await press(harness, EN, "SIM 2")
    summary = harness.last(EN)
    assert "📱 Devices: Pixel <7>, SIM 2" in summary.text
    assert summary.html is not None
    assert "Pixel &lt;7&gt;" in summary.html
    campaign = await only_campaign(harness)
    assert (campaign.device_mode, campaign.device_ids, campaign.to_sim) == (
        DeviceMode.ONE,
        f'["{UUID.lower()}"]',
        1,
    )


async def test_spread_over_every_saved_device(harness: Harness) -> None:
    await connect(harness, EN)
    await save_device(harness, EN, "a" * 24, "Alpha")
    await save_device(harness, EN, "b" * 24, "Beta")
    await harness.send(EN, "/bulk")
    await harness.send(EN, NUMBERS)
    await harness.send(EN, "Hi")
    assert harness.last(EN).button_texts() == [
        "🎲 Any device",
        "📱 Alpha",
        "📱 Beta",
        "🔀 Spread over all 2 devices",
    ]
    await press(harness, EN, "Spread")
    assert last_text(harness, EN) == "📶 Which SIM card should each device send from?"
    await press(harness, EN, "Default SIM")
    text = last_text(harness, EN)
    assert "📱 Devices: spread over 2 devices: Alpha, Beta, default SIM" in text
    assert "⏱ It will take about 4 s." in text, "two devices: twice the pace"
    campaign = await only_campaign(harness)
    assert campaign.device_mode == DeviceMode.SPREAD
    assert campaign.device_ids == f'["{"a" * 24}", "{"b" * 24}"]'
    assert campaign.to_sim is None


async def test_any_device_asks_no_sim(harness: Harness) -> None:
    await connect(harness, EN)
    await save_device(harness, EN, "a" * 24, "Alpha")
    await harness.send(EN, "/bulk")
    await harness.send(EN, "79991234567, own text")
    await press(harness, EN, "Any device")
    text = last_text(harness, EN)
    assert "📱 Devices: any device (GoSMS chooses)" in text
    assert "own text" in text
    assert (await only_campaign(harness)).device_mode == DeviceMode.ANY


async def test_a_device_removed_meanwhile_is_refused(harness: Harness) -> None:
    await connect(harness, EN)
    row = await save_device(harness, EN, "a" * 24, "Alpha")
    await save_device(harness, EN, "b" * 24, "Beta")
    await harness.send(EN, "/bulk")
    await harness.send(EN, NUMBERS)
    await harness.send(EN, "Hi")
    async with harness.deps.session_factory() as session:
        from bot.db.repo import SavedDeviceRepo

        assert await SavedDeviceRepo(session).delete(EN, row)
        await session.commit()
    answer = await press(harness, EN, "Alpha")
    assert answer.show_alert
    assert "not in your list any more" in (answer.text or "")
    assert await campaigns(harness) == []
    await press(harness, EN, "Beta")
    await press(harness, EN, "SIM 1")
    assert "📱 Devices: Beta, SIM 1" in last_text(harness, EN)


# ---- Start


@BOTH_DATABASES
async def test_start_runs_the_campaign_and_turns_the_summary_into_its_card(
    harness: Harness, gosms: FakeGoSMS
) -> None:
    await connect(harness, EN)
    await summary_of(harness, EN, NUMBERS, "Hi")
    summary = harness.last(EN)
    answer = await press(harness, EN, "Start")
    assert not answer.show_alert
    card = harness.tg.message(EN, summary.message_id)
    assert card.text.startswith("📨 Campaign #")
    assert "░░░░░░░░░░ 0 %" in card.text
    assert "✅ Sent: 0 of 3" in card.text
    assert "⏳ Waiting: 3" in card.text
    assert "▶️ Running: one SMS every 3 s · about 9 s left" in card.text
    assert card.button_texts() == ["⏸ Pause", "⏹ Cancel"]
    campaign = await only_campaign(harness)
    assert campaign.state == CampaignState.RUNNING
    assert campaign.started_at is not None
    assert (campaign.chat_id, campaign.message_id) == (EN, summary.message_id)
    await harness.send(EN, "Hi")
    assert "Recipients" not in harness.last(EN).text, "the dialog is over"
    assert not gosms.requests, "the dialog sends nothing itself: the runner does"


@BOTH_DATABASES
async def test_start_pressed_twice_at_once_starts_once(harness: Harness) -> None:
    await connect(harness, EN)
    await summary_of(harness, EN, NUMBERS, "Hi")
    one = harness.press_update(EN, "Start")
    two = harness.press_update(EN, "Start")
    await asyncio.gather(harness.feed(one), harness.feed(two))
    answers = [harness.tg.callback_answers[u["callback_query"]["id"]] for u in (one, two)]
    assert all(a.answered for a in answers)
    assert sorted(a.show_alert for a in answers) == [False, True]
    [refused] = [a for a in answers if a.show_alert]
    assert "already used" in (refused.text or "")
    campaign = await only_campaign(harness)
    assert campaign.state == CampaignState.RUNNING
    cards = [m for m in harness.tg.bot_messages(EN) if "Running" in m.text]
    assert len(cards) == 1, "one card"
    # the same Start button once more, later
    start = next(
        str(b["callback_data"])
        for v in harness.tg.message(EN, campaign.message_id or 0).history
        for row in (v.reply_markup or {}).get("inline_keyboard", [])
        for b in row
        if "Start" in b["text"]
    )
    late = answered(await forge(harness, EN, start))
    assert late.show_alert
    assert "already used" in (late.text or "")


async def test_cancel_on_the_question_leaves_a_draft_that_never_runs(harness: Harness) -> None:
    await connect(harness, EN)
    await summary_of(harness, EN, NUMBERS, "Hi")
    start = harness.find_button(EN, "Start")[1]
    answer = await press(harness, EN, "Cancel")
    assert answer.text == "Cancelled"
    assert last_text(harness, EN) == "Not started: nothing was sent."
    assert harness.last(EN).button_texts() == []
    late = answered(await forge(harness, EN, start))
    assert late.show_alert
    assert (await only_campaign(harness)).state == CampaignState.DRAFT
    await harness.send(EN, "Hi")
    assert "Recipients" not in harness.last(EN).text, "the dialog is over"


async def test_cancel_command_closes_the_summary(harness: Harness) -> None:
    await connect(harness, EN)
    await summary_of(harness, EN, NUMBERS, "Hi")
    await harness.send(EN, "/cancel")
    assert last_text(harness, EN).startswith("Cancelled")
    answer = await press(harness, EN, "Start")
    assert answer.show_alert
    assert (await only_campaign(harness)).state == CampaignState.DRAFT


async def test_a_newer_bulk_replaces_the_older_draft(harness: Harness) -> None:
    await connect(harness, EN)
    await summary_of(harness, EN, NUMBERS, "First")
    first = harness.last(EN)
    await summary_of(harness, EN, "79990000001", "Second")
    [campaign] = await campaigns(harness)
    assert campaign.template == "Second"
    assert campaign.total == 1
    old = answered(await forge(harness, EN, harness.find_button(EN, "Start")[1]))
    assert not old.show_alert, "the newest Start works"
    harness_first = [b.callback_data for row in first.buttons for b in row if "Start" in b.text]
    late = answered(await forge(harness, EN, harness_first[0] or ""))
    assert late.show_alert, "the older summary's Start does nothing"
    assert [(c.template, c.state) for c in await campaigns(harness)] == [
        ("Second", CampaignState.RUNNING)
    ]


# ---- the card's buttons


async def started(harness: Harness, user_id: int = EN) -> Campaign:
    """A campaign of three, started from the dialog: its card is the newest message."""
    await connect(harness, user_id)
    await summary_of(harness, user_id, NUMBERS, "Hi")
    await press(harness, user_id, "Start")
    return await only_campaign(harness)


async def set_row_states(harness: Harness, campaign_id: int, *states: RowState) -> None:
    async with harness.deps.session_factory() as session:
        rows = await CampaignRepo(session).rows(campaign_id)
        for row, row_state in zip(rows, states, strict=False):
            sms_id = f"sms-{row.id}" if row_state == RowState.SENT else None
            await session.execute(
                update(CampaignRow)
                .where(CampaignRow.id == row.id)
                .values(state=row_state, sms_id=sms_id, sms_status=2 if sms_id else None)
            )
        await session.commit()


async def state_of(harness: Harness, campaign_id: int) -> str:
    async with harness.deps.session_factory() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign.state


@BOTH_DATABASES
async def test_pause_and_resume_edit_the_card_in_place(harness: Harness) -> None:
    campaign = await started(harness)
    card_id = campaign.message_id
    assert card_id is not None
    pause = harness.find_button(EN, "Pause")[1]
    answer = await press(harness, EN, "Pause")
    assert not answer.show_alert
    card = harness.tg.message(EN, card_id)
    assert "⏸ Paused. Press Resume when you are ready." in card.text
    assert card.button_texts() == ["▶️ Resume", "⏹ Cancel"]
    assert await state_of(harness, campaign.id) == CampaignState.PAUSED
    stale = answered(await forge(harness, EN, pause))
    assert stale.show_alert, "a Pause pressed again on a paused campaign"
    assert "has changed meanwhile" in (stale.text or "")
    assert await state_of(harness, campaign.id) == CampaignState.PAUSED
    answer = await press(harness, EN, "Resume")
    assert not answer.show_alert
    card = harness.tg.message(EN, card_id)
    assert "▶️ Running: one SMS every 3 s" in card.text
    assert card.button_texts() == ["⏸ Pause", "⏹ Cancel"]
    assert await state_of(harness, campaign.id) == CampaignState.RUNNING
    assert len([m for m in harness.tg.bot_messages(EN) if "Campaign #" in m.text]) == 1


@BOTH_DATABASES
async def test_cancel_asks_first_and_what_was_sent_stays(harness: Harness) -> None:
    campaign = await started(harness)
    await set_row_states(harness, campaign.id, RowState.SENT)
    answer = await press(harness, EN, "⏹ Cancel")
    assert not answer.show_alert
    question = harness.last(EN)
    assert question.message_id != campaign.message_id, "the question is a message of its own"
    assert question.text == (
        f"Cancel campaign #{campaign.id}? 2 SMS are still waiting and will not be sent.\n"
        "What was sent stays sent."
    )
    assert question.button_texts() == ["⏹ Stop sending", "▶️ Keep sending"]
    assert await state_of(harness, campaign.id) == CampaignState.RUNNING, "not before Yes"
    await press(harness, EN, "Stop sending")
    assert harness.tg.message(EN, question.message_id).text == (
        f"⏹ Campaign #{campaign.id} cancelled: what was sent stays sent."
    )
    card = harness.tg.message(EN, campaign.message_id or 0)
    assert "⏹ Cancelled: what was sent stays sent." in card.text
    assert "✅ Sent: 1 of 3" in card.text
    assert card.button_texts() == ["📄 Download report"]
    assert await state_of(harness, campaign.id) == CampaignState.CANCELLED
    rows = await rows_of(harness, campaign.id)
    assert [r.state for r in rows] == [RowState.SENT, RowState.QUEUED, RowState.QUEUED]
    stale = answered(
        await forge(harness, EN, BulkCb(action=BulkAction.PAUSE, id=campaign.id).pack())
    )
    assert stale.show_alert
    assert "has changed meanwhile" in (stale.text or "")


async def test_no_on_the_cancel_question_keeps_it_going(harness: Harness) -> None:
    campaign = await started(harness)
    await press(harness, EN, "⏹ Cancel")
    question = harness.last(EN)
    stop = harness.find_button(EN, "Stop sending")[1]
    answer = await press(harness, EN, "Keep sending")
    assert answer.text == "Cancelled"
    assert harness.tg.message(EN, question.message_id).text == (f"Campaign #{campaign.id} goes on.")
    assert await state_of(harness, campaign.id) == CampaignState.RUNNING
    assert question.button_texts() == []
    late = answered(await forge(harness, EN, stop))
    assert late.show_alert, "the question is settled"
    assert await state_of(harness, campaign.id) == CampaignState.RUNNING


async def test_cancel_after_it_finished_shows_the_card_as_it_is(harness: Harness) -> None:
    campaign = await started(harness)
    cancel = harness.find_button(EN, "⏹ Cancel")[1]
    await press(harness, EN, "⏹ Cancel")
    question = harness.last(EN)
    async with harness.deps.session_factory() as session:
        await session.execute(
            update(Campaign).where(Campaign.id == campaign.id).values(state=CampaignState.DONE)
        )
        await session.commit()
    await press(harness, EN, "Stop sending")
    assert "has changed meanwhile" in harness.tg.message(EN, question.message_id).text
    assert await state_of(harness, campaign.id) == CampaignState.DONE
    stale = answered(await forge(harness, EN, cancel))
    assert stale.show_alert
    assert "has changed meanwhile" in (stale.text or "")
    assert "🏁 Done." in harness.tg.message(EN, campaign.message_id or 0).text


@pytest.mark.parametrize(
    "action",
    [
        BulkAction.PAUSE,
        BulkAction.RESUME,
        BulkAction.CANCEL,
        BulkAction.REPORT,
        BulkAction.RETRY,
        BulkAction.RETRY_ALL,
        BulkAction.DROPPED,
        BulkAction.OPEN,
    ],
)
async def test_another_users_campaign_is_refused_politely(
    harness: Harness, action: BulkAction
) -> None:
    theirs = await made(
        harness, OTHER, CampaignState.DONE, [(RowState.FAILED, None), (RowState.UNKNOWN, None)]
    )
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    answer = answered(await forge(harness, EN, BulkCb(action=action, id=theirs).pack()))
    assert answer.show_alert
    assert answer.text == "This campaign no longer exists. /bulk shows your campaigns."
    assert await state_of(harness, theirs) == CampaignState.DONE
    assert [r.state for r in await rows_of(harness, theirs)] == [RowState.FAILED, RowState.UNKNOWN]
    assert harness.last(EN).text.startswith("📨 A campaign"), "nothing was shown"


async def test_forged_bulk_data_is_refused(harness: Harness) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    for data in ("bk:pause:notanumber:0", "bk:nonsense:1:0", "bk:sim:7:0"):
        answer = answered(await forge(harness, EN, data))
        assert answer.show_alert, data
        assert "Traceback" not in (answer.text or "")


# ---- Retry failed


async def finished(harness: Harness, *rows: tuple[RowState, str | None]) -> tuple[int, int]:
    """A DONE campaign of EN with these rows, its card opened: (campaign id, card id)."""
    await connect(harness, EN)
    campaign_id = await made(harness, EN, CampaignState.DONE, list(rows))
    await open_card(harness, EN, campaign_id)
    return campaign_id, harness.last(EN).message_id


@BOTH_DATABASES
async def test_retry_failed_with_the_unknown_rows_too(harness: Harness) -> None:
    campaign_id, card_id = await finished(
        harness,
        (RowState.SENT, "s1"),
        (RowState.FAILED, None),  # refused: never went out
        (RowState.FAILED, "s3"),  # went out and failed on the way: not sent again
        (RowState.UNKNOWN, None),
    )
    card = harness.tg.message(EN, card_id)
    assert "🏁 Done." in card.text
    assert "❓ Unknown (may have gone out): 1" in card.text
    assert card.button_texts() == ["📄 Download report", "🔁 Retry failed"]
    answer = await press(harness, EN, "Retry failed")
    assert not answer.show_alert
    question = harness.last(EN)
    assert question.message_id != card_id
    assert question.text.startswith(f"Send campaign #{campaign_id} again to the 1 row")
    assert "1 more is unknown: its SMS may have gone out." in question.text
    assert question.button_texts() == ["🔁 Send again", "Cancel", "❓ Include the 1 unknown row"]
    plain_yes = harness.find_button(EN, "Send again")[1]
    await press(harness, EN, "Include the 1 unknown row")
    question = harness.tg.message(EN, question.message_id)
    assert question.text.startswith(f"Send campaign #{campaign_id} again to the 2 rows")
    assert "This includes 1 unknown row" in question.text
    assert question.button_texts() == ["🔁 Send again", "Cancel"]
    old = answered(await forge(harness, EN, plain_yes))
    assert old.show_alert, "the question without the unknown rows was replaced"
    assert await state_of(harness, campaign_id) == CampaignState.DONE
    await press(harness, EN, "Send again")
    assert await state_of(harness, campaign_id) == CampaignState.RUNNING
    rows = await rows_of(harness, campaign_id)
    assert [(r.state, r.sms_id) for r in rows] == [
        (RowState.SENT, "s1"),
        (RowState.QUEUED, None),
        (RowState.FAILED, "s3"),
        (RowState.QUEUED, None),
    ]
    card = harness.tg.message(EN, question.message_id)
    assert "▶️ Running" in card.text, "the question became the card"
    assert "⏳ Waiting: 2" in card.text
    assert card.button_texts() == ["⏸ Pause", "⏹ Cancel"]
    async with harness.deps.session_factory() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        assert campaign.message_id == question.message_id, "the runner edits the new card"


async def test_retry_failed_without_the_unknown_rows(harness: Harness) -> None:
    campaign_id, _card = await finished(harness, (RowState.FAILED, None), (RowState.UNKNOWN, None))
    await press(harness, EN, "Retry failed")
    await press(harness, EN, "Send again")
    rows = await rows_of(harness, campaign_id)
    assert [r.state for r in rows] == [RowState.QUEUED, RowState.UNKNOWN]
    assert await state_of(harness, campaign_id) == CampaignState.RUNNING


async def test_only_unknown_rows_ask_about_them_at_once(harness: Harness) -> None:
    campaign_id, _card = await finished(harness, (RowState.SENT, "s1"), (RowState.UNKNOWN, None))
    await press(harness, EN, "Retry failed")
    question = harness.last(EN)
    assert "This includes 1 unknown row" in question.text
    assert question.button_texts() == ["🔁 Send again", "Cancel"]
    answer = await press(harness, EN, "Cancel")
    assert answer.text == "Cancelled"
    assert harness.tg.message(EN, question.message_id).text == "Nothing was sent again."
    assert await state_of(harness, campaign_id) == CampaignState.DONE
    assert [r.state for r in await rows_of(harness, campaign_id)] == [
        RowState.SENT,
        RowState.UNKNOWN,
    ]


async def test_nothing_to_retry_is_an_alert(harness: Harness) -> None:
    campaign_id, _card = await finished(harness, (RowState.SENT, "s1"), (RowState.FAILED, "s2"))
    before = len(harness.tg.bot_messages(EN))
    answer = await press(harness, EN, "Retry failed")
    assert answer.show_alert
    assert answer.text == "Nothing to send again: every failed SMS went out but was not delivered."
    assert len(harness.tg.bot_messages(EN)) == before
    assert await state_of(harness, campaign_id) == CampaignState.DONE


@BOTH_DATABASES
async def test_retry_pressed_twice_at_once_queues_once(harness: Harness) -> None:
    campaign_id, _card = await finished(harness, (RowState.FAILED, None))
    await press(harness, EN, "Retry failed")
    one = harness.press_update(EN, "Send again")
    two = harness.press_update(EN, "Send again")
    await asyncio.gather(harness.feed(one), harness.feed(two))
    answers = [harness.tg.callback_answers[u["callback_query"]["id"]] for u in (one, two)]
    assert sorted(a.show_alert for a in answers) == [False, True]
    assert await state_of(harness, campaign_id) == CampaignState.RUNNING
    retry = answered(
        await forge(harness, EN, BulkCb(action=BulkAction.RETRY, id=campaign_id).pack())
    )
    assert retry.show_alert, "a running campaign has nothing to retry yet"
    assert "has changed meanwhile" in (retry.text or "")


async def test_retry_on_a_cancelled_campaign_does_not_send_what_the_cancel_stopped(
    harness: Harness,
) -> None:
    await connect(harness, EN)
    campaign_id = await made(
        harness,
        EN,
        CampaignState.CANCELLED,
        [(RowState.SENT, "s1"), (RowState.FAILED, None), (RowState.QUEUED, None)],
    )
    await open_card(harness, EN, campaign_id)
    card = harness.last(EN)
    assert "⏹ Cancelled" in card.text
    assert card.button_texts() == ["📄 Download report"], "Retry would send its waiting rows too"
    answer = answered(
        await forge(harness, EN, BulkCb(action=BulkAction.RETRY, id=campaign_id).pack())
    )
    assert answer.show_alert
    assert answer.text == (
        f"Campaign #{campaign_id} was cancelled with 1 SMS never sent: Retry failed would "
        "send it too. Start a new campaign with /bulk instead."
    )
    assert await state_of(harness, campaign_id) == CampaignState.CANCELLED
    assert [r.state for r in await rows_of(harness, campaign_id)][2] == RowState.QUEUED


# ---- the list of campaigns


async def test_the_list_of_campaigns_is_paged_and_opens_a_card(harness: Harness) -> None:
    await connect(harness, EN)
    ids = [
        await made(
            harness, EN, state, [(RowState.SENT, "s"), (RowState.QUEUED, None)], source=f"f{n}.csv"
        )
        for n, state in enumerate(
            [CampaignState.DONE] * 5 + [CampaignState.PAUSED, CampaignState.RUNNING]
        )
    ]
    await summary_of(harness, EN, NUMBERS, "a draft")  # drafts are not listed
    await harness.send(EN, "/bulk")
    asked = harness.last(EN)
    assert asked.button_texts() == ["📋 My campaigns"]
    await press(harness, EN, "My campaigns")
    listing = harness.last(EN)
    assert listing.message_id != asked.message_id, "the /bulk question stays"
    assert listing.text == "📋 Your campaigns (7). Press one to open its card."
    assert listing.button_texts() == [
        f"#{ids[6]} f6.csv · ▶️ running · 1/2",
        f"#{ids[5]} f5.csv · ⏸ paused · 1/2",
        f"#{ids[4]} f4.csv · 🏁 done · 1/2",
        f"#{ids[3]} f3.csv · 🏁 done · 1/2",
        f"#{ids[2]} f2.csv · 🏁 done · 1/2",
        "1/2",
        "›",
    ]
    await press(harness, EN, "›")
    page = harness.tg.message(EN, listing.message_id)
    assert page.button_texts() == [
        f"#{ids[1]} f1.csv · 🏁 done · 1/2",
        f"#{ids[0]} f0.csv · 🏁 done · 1/2",
        "‹",
        "2/2",
    ]
    assert harness.last(EN).message_id == listing.message_id, "edited in place"
    await press(harness, EN, "2/2")  # the same page: not modified is no error
    await press(harness, EN, f"#{ids[0]} ")
    card = harness.last(EN)
    assert card.message_id != listing.message_id
    assert card.text.startswith(f"📨 Campaign #{ids[0]} · f0.csv")
    assert "✅ Sent: 1 of 2" in card.text
    async with harness.deps.session_factory() as session:
        campaign = await session.get(Campaign, ids[0])
        assert campaign is not None
        assert (campaign.chat_id, campaign.message_id) == (EN, card.message_id)
    assert [c.state for c in await campaigns(harness)][-1] == CampaignState.DRAFT


# ---- documents: the dropped rows, the report, a list as a file


def last_document(harness: Harness, user_id: int) -> tuple[str | None, str]:
    name, data = harness.tg.document_of(harness.last(user_id))
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM: spreadsheets read it"
    return name, data.decode("utf-8-sig")


async def send_file(
    harness: Harness, user_id: int, data: bytes, name: str, mime: str | None = None
) -> str:
    await harness.feed(harness.tg.document_update(user_id, data, name, mime))
    return last_text(harness, user_id)


async def test_all_dropped_rows_as_a_file(harness: Harness) -> None:
    await connect(harness, EN)
    pasted = "\n".join(["79991234567"] + [f"bad{n}" for n in range(7)] + ["79991234567"])
    await summary_of(harness, EN, pasted, "Hi")
    summary = harness.last(EN)
    answer = await press(harness, EN, "Download dropped rows")
    assert not answer.show_alert
    name, text = last_document(harness, EN)
    assert name == f"dropped-rows-{(await only_campaign(harness)).id}.csv"
    lines = text.splitlines()
    assert lines[0] == "line,value,reason"
    assert lines[1] == "2,bad0,not a phone number (3 to 30 digits)"
    assert lines[-1] == "9,79991234567,the number is already in the list"
    assert len(lines) == 9
    assert harness.tg.message(EN, summary.message_id).button_texts() == [
        "🚀 Start",
        "Cancel",
        "📄 Download dropped rows",
    ], "the summary keeps its Start"
    await press(harness, EN, "Start")
    assert (await only_campaign(harness)).state == CampaignState.RUNNING


async def test_the_report_has_every_row(harness: Harness) -> None:
    campaign_id, _card = await finished(
        harness, (RowState.SENT, "s1"), (RowState.FAILED, None), (RowState.UNKNOWN, None)
    )
    answer = await press(harness, EN, "Download report")
    assert not answer.show_alert
    name, text = last_document(harness, EN)
    assert name == f"campaign-{campaign_id}.csv"
    assert text.splitlines() == [
        "number,text,sms_id,status,error",
        "79990000000,Hi 0,s1,sent,",
        "79990000001,Hi 1,,failed,refused",
        "79990000002,Hi 2,,unknown,",
    ]
    assert await state_of(harness, campaign_id) == CampaignState.DONE


async def test_a_csv_file_with_a_name_column_and_a_template(harness: Harness) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    data = b"number,name\n79991234567,Anna\n79991234568,<Bob>\nnot-a-number,Carl\n"
    asked = await send_file(harness, EN, data, "clients.csv")
    assert asked.startswith("✅ 3 rows read.")
    assert "A template may use the columns of the file: {name}." in asked
    await harness.send(EN, "Hello {surname}")
    assert "The list has no column for {surname}." in last_text(harness, EN)
    assert "Columns you can use: {name}." in last_text(harness, EN)
    await harness.send(EN, "Hello {name}!")
    summary = harness.last(EN)
    assert summary.text.startswith("📨 Campaign #")
    assert "· clients.csv" in summary.text.splitlines()[0]
    assert "👥 Recipients: 2" in summary.text
    assert "line 4: not-a-number" in summary.text
    assert "Hello Anna!" in summary.text
    campaign = await only_campaign(harness)
    assert (campaign.source, campaign.template) == ("clients.csv", "Hello {name}!")
    assert [r.text for r in await rows_of(harness, campaign.id)] == ["Hello Anna!", "Hello <Bob>!"]
    await press(harness, EN, "Start")
    assert (await only_campaign(harness)).state == CampaignState.RUNNING


async def test_a_cp1251_file_and_a_txt_file(harness: Harness) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    data = "телефон;текст\r\n79991234567;Привет, Анна\r\n".encode("cp1251")
    await send_file(harness, EN, data, "list.csv", "text/csv")
    text = last_text(harness, EN)
    assert "👥 Recipients: 1" in text, "every row has its text: no text question"
    assert "Привет, Анна" in text
    await harness.send(EN, "/bulk")
    mixed = "79991234567 Здравствуйте\n".encode() + "79991234568 Привет\n".encode("cp1251")
    summary = await send_file(harness, EN, mixed, "numbers.txt")
    assert "👥 Recipients: 2" in summary
    campaign = await only_campaign(harness)
    assert [r.text for r in await rows_of(harness, campaign.id)] == ["Здравствуйте", "Привет"]


@pytest.mark.parametrize(
    ("data", "name", "mime", "refusal"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, "list.csv", "text/csv", "not a text list"),
        (b"%PDF-1.4 numbers", "list.pdf", None, "I can read only .csv and .txt files."),
        (b"phone\n" + b"79991234567\n" * 2 * 1024 * 160, "big.csv", None, "larger than 1 MB."),
        (
            ("number\n" + "".join(f"7999{n:07d}\n" for n in range(10_000))).encode(),
            "many.csv",
            None,
            "The list has 10,000 rows; a campaign takes at most 5,000.",
        ),
        (b"\n\n", "empty.txt", None, "The list has no numbers."),
        (b"name,city\nAnna,Paris\n", "cols.csv", None, "none of them is the number"),
    ],
)
async def test_bad_files_are_refused_and_the_list_asked_again(
    harness: Harness, data: bytes, name: str, mime: str | None, refusal: str
) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    answer = await send_file(harness, EN, data, name, mime)
    assert answer.startswith("❌")
    assert refusal in answer
    assert "or /cancel" in answer
    assert await campaigns(harness) == []
    await harness.send(EN, NUMBERS)
    assert "3 rows read" in last_text(harness, EN), "the dialog still waits for the list"


async def test_the_file_limit_is_a_setting(harness: Harness) -> None:
    harness.deps.settings.bulk_max_file_bytes = 2048
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    assert "files up to 2 KB" in last_text(harness, EN)
    data = b"phone\n" + b"79991234567\n" * 200
    answer = await send_file(harness, EN, data, "list.csv")
    assert answer == "❌ The file is larger than 2 KB. Send a smaller one, or /cancel."
    answer = await send_file(harness, EN, b"phone\n" + b"79991234567\n" * 10, "list.csv")
    assert answer.startswith("✅ 10 rows read.")


# ---- what is not text, and /cancel, at each step


NOT_TEXT = ("photo", "sticker", "location")


async def test_what_is_not_text_gets_a_short_answer_and_the_step_stays(harness: Harness) -> None:
    await connect(harness, EN)
    await save_device(harness, EN, "a" * 24, "Alpha")
    await harness.send(EN, "/bulk")
    for kind in NOT_TEXT:
        await harness.feed(harness.tg.content_update(EN, kind))
        assert last_text(harness, EN) == (
            "Send the list as text or as a .csv / .txt file, or /cancel."
        ), kind
    await harness.send(EN, NUMBERS)
    for kind in NOT_TEXT:
        await harness.feed(harness.tg.content_update(EN, kind))
        assert last_text(harness, EN) == (
            "An SMS carries only text: type it as a message, or /cancel."
        ), kind
    await harness.feed(harness.tg.document_update(EN, b"79991234567\n", "more.txt"))
    assert "only text" in last_text(harness, EN)
    await harness.send(EN, "Hi")
    assert last_text(harness, EN) == "📱 Which devices should send the campaign?"
    for kind in (*NOT_TEXT, "text"):
        if kind == "text":
            await harness.send(EN, "Alpha")
        else:
            await harness.feed(harness.tg.content_update(EN, kind))
        assert last_text(harness, EN) == "Please choose with the buttons above, or /cancel."
    await press(harness, EN, "Alpha")
    question = harness.find_button(EN, "SIM 1")[0]
    for kind in NOT_TEXT:
        await harness.feed(harness.tg.content_update(EN, kind))
        assert last_text(harness, EN) == "Please choose with the buttons above, or /cancel."
    await press(harness, EN, "SIM 1")
    assert "📱 Devices: Alpha, SIM 1" in harness.tg.message(EN, question).text
    for kind in NOT_TEXT:
        await harness.feed(harness.tg.content_update(EN, kind))
        assert last_text(harness, EN) == "Please choose with the buttons above, or /cancel."
    await press(harness, EN, "Start")
    assert (await only_campaign(harness)).state == CampaignState.RUNNING


@pytest.mark.parametrize("step", ["source", "text", "device", "sim"])
async def test_cancel_leaves_the_dialog_at_each_step(harness: Harness, step: str) -> None:
    await connect(harness, EN)
    await save_device(harness, EN, "a" * 24, "Alpha")
    await harness.send(EN, "/bulk")
    if step != "source":
        await harness.send(EN, NUMBERS)
    if step in ("device", "sim"):
        await harness.send(EN, "Hi")
    if step == "sim":
        await press(harness, EN, "Alpha")
    await harness.send(EN, "/cancel")
    assert last_text(harness, EN).startswith("Cancelled")
    await harness.send(EN, NUMBERS if step == "source" else "Hi")
    assert "rows read" not in harness.last(EN).text
    assert "Campaign #" not in harness.last(EN).text
    if step in ("device", "sim"):
        late = answered(await harness.press(EN, "SIM 1" if step == "sim" else "Alpha"))
        assert late.show_alert
        assert "out of date" in (late.text or "")
    assert await campaigns(harness) == []


@pytest.mark.parametrize(
    ("template", "refusal"),
    [
        ("Hi {name} `", "backtick"),
        ("{name} " + "x" * 301, "the limit is 300 characters, and it has 301"),
        ("Hi {name", "A field of the template is not closed"),
    ],
)
async def test_a_template_gosms_would_refuse_for_every_row_is_refused_at_once(
    harness: Harness, template: str, refusal: str
) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    await send_file(harness, EN, b"number,name\n79991234567,Anna\n", "list.csv")
    await harness.send(EN, template)
    answer = last_text(harness, EN)
    assert answer.startswith("❌")
    assert refusal in answer
    assert answer.endswith("Send the text again, or /cancel.")
    assert await campaigns(harness) == []
    await harness.send(EN, "{name}")
    assert "👥 Recipients: 1" in last_text(harness, EN)


async def test_a_list_that_reads_differently_at_the_summary_is_asked_again(
    harness: Harness,
) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    await harness.send(EN, NUMBERS)
    harness.deps.settings.bulk_max_rows = 2  # lowered meanwhile: the list is read again
    await harness.send(EN, "Hi")
    answer = last_text(harness, EN)
    assert answer.startswith("❌ The list has 3 rows; a campaign takes at most 2.")
    assert answer.endswith("Send the list again, or /cancel.")
    await harness.send(EN, "79991234567")
    assert last_text(harness, EN).startswith("✅ 1 row read."), "it does wait for the list"
    await harness.send(EN, "Hi")
    assert "👥 Recipients: 1" in last_text(harness, EN)


async def test_a_file_name_is_escaped(harness: Harness) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    await send_file(harness, EN, b"79991234567, Hi & bye\n", "<b>&list.txt")
    summary = harness.last(EN)
    assert summary.text.startswith("📨 Campaign #1 · <b>&list.txt")
    assert summary.html is not None
    assert "&lt;b&gt;&amp;list.txt" in summary.html


async def test_a_campaign_that_paused_by_itself_says_why_and_resumes(harness: Harness) -> None:
    await connect(harness, EN)
    campaign_id = await made(harness, EN, CampaignState.PAUSED, [(RowState.QUEUED, None)])
    async with harness.deps.session_factory() as session:
        await session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(reason="tariff")
        )
        await session.commit()
    await open_card(harness, EN, campaign_id)
    card = harness.last(EN)
    assert "⏸ Paused: the monthly limit of your GoSMS plan is reached." in card.text
    assert card.button_texts() == ["▶️ Resume", "⏹ Cancel"]
    await press(harness, EN, "Resume")
    async with harness.deps.session_factory() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        assert (campaign.state, campaign.reason) == (CampaignState.RUNNING, None)
    assert "▶️ Running" in harness.tg.message(EN, card.message_id).text


async def test_rows_without_their_own_text_take_the_text_asked_for(harness: Harness) -> None:
    await connect(harness, EN)
    await harness.send(EN, "/bulk")
    await harness.send(EN, "79991234567, Own text\n79991234568")
    assert last_text(harness, EN).startswith("✅ 2 rows read.")
    await harness.send(EN, "Common text")
    assert "👥 Recipients: 2" in last_text(harness, EN)
    campaign = await only_campaign(harness)
    assert [r.text for r in await rows_of(harness, campaign.id)] == ["Own text", "Common text"]


async def test_the_dropped_rows_of_a_replaced_draft_are_gone(harness: Harness) -> None:
    await connect(harness, EN)
    await summary_of(harness, EN, "79991234567\nbad", "First")
    dropped = harness.find_button(EN, "Download dropped rows")[1]
    first = (await only_campaign(harness)).id
    await summary_of(harness, EN, "79991234567\nworse", "Second")
    assert (await only_campaign(harness)).id != first, "a new campaign has a new id"
    answer = answered(await forge(harness, EN, dropped))
    assert answer.show_alert
    assert answer.text == "This campaign no longer exists. /bulk shows your campaigns."
