"""Codes for a team: /link in a group, Share codes with a group on the rent card, every code of
the shared rent pushed into the group too (once), /unlink, Stop sharing, a group the bot left."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from sqlalchemy import func, select

from bot.db.group_links import GROUP_CODE
from bot.db.models import GroupOffer, RentWatch, User, utcnow
from bot.db.outbox import OutboxItem
from bot.db.outbox_repo import OutboxRepo
from bot.keyboards.gotsms import short_id
from bot.keyboards.share import STOP, ShareCb
from bot.poller.codes import CodesJob, CodesTiming
from bot.poller.sender import OutboxSender, Pace
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.fakes.telegram import MemberStatus, StoredMessage

OWNER, MATE, OTHER = 8101, 8102, 8103
GROUP = -500_600_700
SUPERGROUP = -100_500_600_700
OTHER_TOKEN = "gotsms-token-other-5c2d9e7f13a8"
SHARE = "Share codes with a group"


class Team:
    """The owner, a group with the owner and a mate in it, the codes job and the sender."""

    def __init__(self, harness: Harness, gotsms: FakeGotSMS) -> None:
        self.harness = harness
        self.tg = harness.tg
        self.gotsms = gotsms
        deps = harness.deps
        self.timing = CodesTiming(hot_interval=3, cold_interval=50)
        self.job = CodesJob(deps.session_factory, deps.cipher, deps.clients, timing=self.timing)
        pace = Pace(chat_rate=100, chat_burst=100)
        self.sender = OutboxSender(harness.bot, deps.session_factory, deps.i18n, pace=pace)

    def restart_job(self) -> None:
        deps = self.harness.deps
        self.job = CodesJob(deps.session_factory, deps.cipher, deps.clients, timing=self.timing)

    async def start(self) -> None:
        self.tg.user(OWNER, language_code="en", first_name="Olga")
        self.tg.user(MATE, language_code="en", first_name="Max")
        await self.harness.send(OWNER, f"/token gotsms {GOTSMS_TOKEN}")
        members: dict[int, MemberStatus] = {OWNER: "creator", MATE: "member"}
        self.tg.group(GROUP, title="Team", members=members, with_bot=False)
        await self.harness.feed(self.tg.bot_in_group_update(GROUP, OWNER, "member"))
        await self.cycle()  # the first poll: what is there already is not pushed

    def rent(self, service: str = "Telegram") -> dict[str, Any]:
        plan = self.gotsms.plan_by(service, "day", 1)
        return self.gotsms.create_rent(GOTSMS_TOKEN, plan["id"])

    async def in_group(self, user_id: int, text: str) -> StoredMessage:
        await self.harness.send(user_id, text, chat_id=GROUP, chat_type="group")
        return self.harness.last(GROUP)

    async def open_card(self, phone: str) -> StoredMessage:
        await self.harness.send(OWNER, "/rents")
        await self.harness.press(OWNER, phone)
        return self.harness.last(OWNER)

    async def share(self, phone: str) -> StoredMessage:
        """/link in the group, then the card's Share and the group's button."""
        await self.in_group(OWNER, "/link")
        card = await self.open_card(phone)
        await self.harness.press(OWNER, SHARE)
        await self.harness.press(OWNER, "Team")
        return self.tg.message(OWNER, card.message_id)

    async def cycle(self) -> tuple[list[StoredMessage], list[StoredMessage]]:
        """One poll and a full delivery: what the owner and the group got."""
        mine, theirs = len(self.tg.bot_messages(OWNER)), self.group_count()
        await self.job.poll(OWNER)
        await self.drain()
        group = self.tg.bot_messages(GROUP)[theirs:] if GROUP in self.tg._chats else []
        return self.tg.bot_messages(OWNER)[mine:], group

    async def drain(self) -> None:
        """Every due push settled: a round that sent nothing (a push that failed) is not the
        end while others wait behind it."""
        for _round in range(50):
            if await self.sender.drain_once():
                continue
            async with self.harness.deps.session_factory() as session:
                if not await OutboxRepo(session).due(utcnow(), 1):
                    return
        raise AssertionError("the outbox never emptied")

    def group_count(self) -> int:
        return len(self.tg.bot_messages(GROUP)) if GROUP in self.tg._chats else 0

    async def watch(self, rent_id: str) -> RentWatch | None:
        async with self.harness.deps.session_factory() as session:
            return await session.get(RentWatch, rent_id)

    async def offers(self) -> list[tuple[int, int]]:
        async with self.harness.deps.session_factory() as session:
            rows = await session.execute(select(GroupOffer.chat_id, GroupOffer.user_id))
            return [(row.chat_id, row.user_id) for row in rows]

    async def group_rows(self) -> int:
        async with self.harness.deps.session_factory() as session:
            query = select(func.count(OutboxItem.id)).where(OutboxItem.kind == GROUP_CODE)
            return int(await session.scalar(query) or 0)

    async def owner_active(self) -> bool:
        async with self.harness.deps.session_factory() as session:
            user = await session.get(User, OWNER)
            assert user is not None
            return user.is_active


def only_copy_buttons(message: StoredMessage) -> bool:
    return all(set(b.raw) == {"text", "copy_text"} for row in message.buttons for b in row)


async def test_a_shared_rent_sends_each_code_to_the_owner_and_the_group_once(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    team = Team(harness, gotsms)
    await team.start()
    assert "its owner sends /link here" in harness.last(GROUP).text, "the greeting"
    made = team.rent()
    other = team.rent("Google")

    linked = await team.in_group(OWNER, "/link")
    assert linked.text.startswith("✅ Linked.")
    assert made["phone"] not in linked.text
    assert "100" not in linked.text
    assert "«Team» is linked" in harness.last(OWNER).text, "the owner is told privately"
    assert await team.offers() == [(GROUP, OWNER)]
    member_checks = harness.tg.calls_of("getChatMember")
    assert [(c.params["chat_id"], c.params["user_id"]) for c in member_checks] == [(GROUP, OWNER)]

    card = await team.open_card(made["phone"])
    assert SHARE in " ".join(card.button_texts())
    await harness.press(OWNER, SHARE)
    listing = harness.tg.message(OWNER, card.message_id)
    assert "Which group gets the codes" in listing.text
    assert "👥 Team" in listing.button_texts()
    await harness.press(OWNER, "Team")
    shared = harness.tg.message(OWNER, card.message_id)
    assert "Codes of this rental now go to «Team» too." in shared.text
    assert "👥 Codes also go to «Team»." in shared.text
    assert "🚫 Stop sharing" in shared.button_texts()
    assert SHARE not in " ".join(shared.button_texts())
    told = harness.last(GROUP)
    phone = made["phone"]
    assert told.text == f"🔗 Codes of the Telegram number {phone} will come here from now on."
    assert len(harness.tg.calls_of("getChatMember")) == 2, "checked again when linking"
    watch = await team.watch(made["id"])
    assert watch is not None
    assert watch.group_chat_id == GROUP
    assert watch.group_title == "Team"

    gotsms.inject_message(made["id"], "Telegram code 424242. Do not share it.", code="424242")
    mine, theirs = await team.cycle()
    assert [m.text.splitlines()[1] for m in mine] == ["424242"]
    [push] = theirs
    assert push.text.splitlines()[0] == f"🔑 Code from Telegram on {made['phone']}"
    assert "424242" in push.text
    assert "Do not share it." in push.text
    assert [b.raw["copy_text"]["text"] for row in push.buttons for b in row] == ["424242"]
    assert only_copy_buttons(push), "no button in the group acts on anything"
    for secret in (GOTSMS_TOKEN, "100", "balance", other["phone"]):
        assert secret not in push.text
    assert await team.cycle() == ([], []), "each code once per chat"
    team.restart_job()  # a new process: nothing in memory of what was seen
    assert await team.cycle() == ([], []), "each code once per chat, across a restart"
    assert await team.group_rows() == 1

    gotsms.inject_message(other["id"], "Google code 777111", code="777111")
    mine, theirs = await team.cycle()
    assert len(mine) == 1
    assert "777111" in mine[0].text
    assert theirs == [], "another rent's codes stay with the owner"


async def test_members_of_the_group_cannot_act_on_the_rent(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    team = Team(harness, gotsms)
    await team.start()
    made = team.rent()
    await team.share(made["phone"])
    gotsms.inject_message(made["id"], "code 515151", code="515151")
    await team.cycle()
    push = harness.last(GROUP)
    forged = ShareCb(a=STOP, id=short_id(made["id"])).pack()
    update = harness.tg.callback_update(MATE, push.message_id, forged, chat_id=GROUP)
    await harness.feed(update)
    answer = harness.tg.callback_answers[update["callback_query"]["id"]]
    assert answer.show_alert
    assert "only in a private chat" in (answer.text or "")
    watch = await team.watch(made["id"])
    assert watch is not None
    assert watch.group_chat_id == GROUP, "still shared"


async def test_a_non_owner_can_neither_link_nor_unlink(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    team = Team(harness, gotsms)
    await team.start()
    made = team.rent()
    await team.share(made["phone"])

    refused = await team.in_group(MATE, "/link")
    assert "Only someone who uses me with a GotSMS token can link this group" in refused.text
    assert "Nothing was changed." in refused.text
    assert await team.offers() == [(GROUP, OWNER)]

    refused = await team.in_group(MATE, "/unlink")
    assert "only the one who linked a rental can unlink it" in refused.text

    # another user of the bot, with a token of their own, in the same group
    gotsms.add_account(OTHER_TOKEN)
    harness.tg.user(OTHER, language_code="en")
    await harness.send(OTHER, f"/token gotsms {OTHER_TOKEN}")
    harness.tg.set_member(GROUP, OTHER, "administrator")
    refused = await team.in_group(OTHER, "/unlink")
    assert "only the one who linked a rental can unlink it" in refused.text
    watch = await team.watch(made["id"])
    assert watch is not None
    assert watch.group_chat_id == GROUP, "the owner's rent is still shared"
    assert await team.offers() == [(GROUP, OWNER)]
    gotsms.inject_message(made["id"], "code 626262", code="626262")
    mine, theirs = await team.cycle()
    assert len(mine) == 1
    assert len(theirs) == 1


async def test_a_group_the_owner_is_not_in_cannot_be_linked(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    team = Team(harness, gotsms)
    await team.start()
    made = team.rent()
    await team.in_group(OWNER, "/link")
    harness.tg.set_member(GROUP, OWNER, "left")
    card = await team.open_card(made["phone"])
    await harness.press(OWNER, SHARE)
    groups_sent = team.group_count()
    await harness.press(OWNER, "Team")
    refused = harness.tg.message(OWNER, card.message_id)
    assert "You are not a member of «Team», so the codes cannot go there." in refused.text
    assert team.group_count() == groups_sent, "the group is told nothing"
    watch = await team.watch(made["id"])
    assert watch is None or watch.group_chat_id is None
    gotsms.inject_message(made["id"], "code 737373", code="737373")
    mine, theirs = await team.cycle()
    assert len(mine) == 1
    assert theirs == []


async def test_unlink_in_the_group_stops_every_rent_of_the_owner_shared_there(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    team = Team(harness, gotsms)
    await team.start()
    first, second = team.rent(), team.rent("Google")
    await team.share(first["phone"])
    await team.share(second["phone"])
    done = await team.in_group(OWNER, "/unlink")
    assert done.text == "🔓 Unlinked: codes of 2 rentals no longer come here."
    for made in (first, second):
        watch = await team.watch(made["id"])
        assert watch is not None
        assert watch.group_chat_id is None
    assert await team.offers() == []
    gotsms.inject_message(first["id"], "code 848484", code="848484")
    mine, theirs = await team.cycle()
    assert len(mine) == 1
    assert theirs == []
    card = await team.open_card(first["phone"])
    assert "Codes also go to" not in card.text
    await harness.press(OWNER, SHARE)
    assert "No group is linked yet" in harness.tg.message(OWNER, card.message_id).text
    again = await team.in_group(OWNER, "/unlink")
    assert "only the one who linked a rental can unlink it" in again.text


async def test_stop_sharing_from_the_card(harness: Harness, gotsms: FakeGotSMS) -> None:
    team = Team(harness, gotsms)
    await team.start()
    made = team.rent()
    card = await team.share(made["phone"])
    await harness.press(OWNER, "Stop sharing")
    stopped = harness.tg.message(OWNER, card.message_id)
    assert "Codes of this rental no longer go to «Team»." in stopped.text
    assert "Codes also go to" not in stopped.text
    assert SHARE in " ".join(stopped.button_texts())
    assert harness.last(GROUP).text == f"🔓 Codes of {made['phone']} no longer come here."
    gotsms.inject_message(made["id"], "code 959595", code="959595")
    mine, theirs = await team.cycle()
    assert len(mine) == 1
    assert theirs == []
    assert await team.offers() == [(GROUP, OWNER)], "the group stays offered"


async def test_the_bot_removed_from_the_group_unlinks_it(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    team = Team(harness, gotsms)
    await team.start()
    made = team.rent()
    await team.share(made["phone"])
    await harness.feed(harness.tg.bot_in_group_update(GROUP, MATE, "kicked"))
    watch = await team.watch(made["id"])
    assert watch is not None
    assert watch.group_chat_id is None
    assert await team.offers() == []
    sends = len(harness.tg.calls_of("sendMessage"))
    gotsms.inject_message(made["id"], "code 131313", code="131313")
    mine, _ = await team.cycle()
    assert len(mine) == 1
    assert "131313" in mine[0].text
    assert len(harness.tg.calls_of("sendMessage")) == sends + 1, "nothing tried in the group"
    assert await team.owner_active()


async def test_a_group_found_gone_by_a_push_stops_its_pushes_not_the_owners(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    team = Team(harness, gotsms)
    await team.start()
    made = team.rent()
    await team.share(made["phone"])
    harness.tg.bot_in_group_update(GROUP, MATE, "kicked")  # its update never reaches the bot
    gotsms.inject_message(made["id"], "code 212121", code="212121")
    gotsms.inject_message(made["id"], "code 232323", code="232323")
    mine, theirs = await team.cycle()
    assert [m.text.splitlines()[1] for m in mine] == ["212121", "232323"]
    assert theirs == []
    to_group = [c for c in harness.tg.calls_of("sendMessage") if c.params["chat_id"] == GROUP]
    assert [c.ok for c in to_group[-1:]] == [False]
    assert sum(1 for c in to_group if not c.ok) == 1, "the second code was not tried there"
    assert await team.owner_active(), "the owner is not marked blocked"
    watch = await team.watch(made["id"])
    assert watch is not None
    assert watch.group_chat_id is None
    assert await team.offers() == []
    gotsms.inject_message(made["id"], "code 252525", code="252525")
    mine, theirs = await team.cycle()
    assert len(mine) == 1
    assert theirs == []


async def test_link_and_unlink_in_the_private_chat_say_where_they_work(
    harness: Harness, gotsms: FakeGotSMS
) -> None:
    team = Team(harness, gotsms)
    await team.start()
    await harness.send(OWNER, "/link")
    assert "/link works in a group" in harness.last(OWNER).text
    await harness.send(OWNER, "/unlink")
    assert "send /unlink in that group" in harness.last(OWNER).text


async def test_the_fake_answers_membership_like_telegram(harness: Harness) -> None:
    tg = harness.tg
    tg.user(OWNER)
    tg.user(MATE)
    tg.group(GROUP, title="Team", members={OWNER: "creator"})
    assert (await harness.bot.get_chat_member(GROUP, OWNER)).status == "creator"
    assert (await harness.bot.get_chat_member(GROUP, MATE)).status == "left"
    tg.set_member(GROUP, MATE, "kicked")
    assert (await harness.bot.get_chat_member(GROUP, MATE)).status == "kicked"
    with pytest.raises(AssertionError, match="not a member"):
        tg.message_update(MATE, "hi", chat_id=GROUP, chat_type="group")
    with pytest.raises(TelegramBadRequest, match="user not found"):
        await harness.bot.get_chat_member(GROUP, 999_999)
    tg.bot_in_group_update(GROUP, OWNER, "left")
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the group chat"):
        await harness.bot.get_chat_member(GROUP, OWNER)
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the group chat"):
        await harness.bot.send_message(GROUP, "hello")


@pytest.mark.parametrize("told", [True, False], ids=["update", "found-by-a-push"])
async def test_a_group_made_a_supergroup_keeps_its_links(
    harness: Harness, gotsms: FakeGotSMS, told: bool
) -> None:
    team = Team(harness, gotsms)
    await team.start()
    made = team.rent()
    await team.share(made["phone"])
    upgraded = harness.tg.upgrade_group(GROUP, SUPERGROUP, OWNER)
    if told:
        await harness.feed(upgraded)
    gotsms.inject_message(made["id"], "code 464646", code="464646")
    mine, _ = await team.cycle()
    assert len(mine) == 1
    [push] = harness.tg.bot_messages(SUPERGROUP)
    assert "464646" in push.text
    watch = await team.watch(made["id"])
    assert watch is not None
    assert watch.group_chat_id == SUPERGROUP
    assert await team.offers() == [(SUPERGROUP, OWNER)]
    assert await team.owner_active()


async def test_linking_in_russian(harness: Harness, gotsms: FakeGotSMS) -> None:
    team = Team(harness, gotsms)
    await team.start()
    harness.tg.user(OWNER, language_code="ru", first_name="Olga")
    await harness.send(OWNER, "/start")
    made = team.rent()
    linked = await team.in_group(OWNER, "/link")
    assert linked.text.startswith("✅ Привязано.")
    assert "«Team» привязана" in harness.last(OWNER).text
    card = await team.open_card(made["phone"])
    await harness.press(OWNER, "Делиться кодами с группой")
    await harness.press(OWNER, "Team")
    shared = harness.tg.message(OWNER, card.message_id)
    assert "Теперь коды этой аренды приходят и в группу «Team»." in shared.text
    assert "👥 Коды также приходят в группу «Team»." in shared.text
    assert "🚫 Больше не делиться" in shared.button_texts()
    assert harness.last(GROUP).text.startswith("🔗 Теперь сюда будут приходить коды номера")
    gotsms.inject_message(made["id"], "code 383838", code="383838")
    _, [push] = await team.cycle()
    assert push.text.startswith(f"🔑 Код от Telegram на номер {made['phone']}")
    done = await team.in_group(OWNER, "/unlink")
    assert done.text == "🔓 Отвязано: коды 1 аренды сюда больше не приходят."
