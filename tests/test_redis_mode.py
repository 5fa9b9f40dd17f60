"""Dialogs and kept searches with REDIS_URL set (run against a real Redis, and the database)."""

from __future__ import annotations

import pytest
from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from redis.asyncio import Redis

from bot.app import upgrade_dialog_keys
from tests.backends import Backend, RedisPlace
from tests.conftest import GOTSMS_TOKEN, Harness
from tests.fakes.gotsms import FakeGotSMS
from tests.test_gotsms_catalog import connect

EN = 7101


async def test_kept_searches_page_and_filter(
    harness: Harness, gotsms: FakeGotSMS, storage: RedisPlace | None
) -> None:
    for n in range(30):
        gotsms.add_service(f"Shop {n:02d}")
    await connect(harness, EN)
    await harness.send(EN, "/services shop")
    assert "Search: shop" in harness.last(EN).text
    await harness.press(EN, "›")
    assert gotsms.requests[-1].query["search"] == "shop"
    assert "Shop 12" in harness.last(EN).button_texts()
    await harness.send(EN, "/plans tele")
    assert "Plans of Telegram" in harness.last(EN).text
    if storage is not None:
        redis = Redis.from_url(storage.url)
        try:
            keys = [key.decode() async for key in redis.scan_iter(match=f"{storage.prefix}:*")]
        finally:
            await redis.aclose()
        assert any(key.endswith(":gotsms:data") for key in keys), keys


async def test_a_dialog_goes_on(harness: Harness) -> None:
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/token")
    await harness.press(EN, "GotSMS")
    assert "Send your GotSMS API token" in harness.last(EN).text
    await harness.send(EN, "not-a-token")
    assert "Something went wrong" not in harness.last(EN).text


@pytest.mark.parametrize("backend", [Backend.SQLITE_REDIS, Backend.POSTGRES], indirect=True)
async def test_dialogs_kept_before_the_upgrade_go_on(harness: Harness, storage: RedisPlace) -> None:
    """Keys written by the release without destinies (`fsm:chat:user:state`) are moved at the
    start, and the user's dialog goes on."""
    harness.tg.user(EN, language_code="en")
    await harness.send(EN, "/token")
    await harness.press(EN, "GotSMS")
    redis = Redis.from_url(storage.url)
    try:
        old = DefaultKeyBuilder(prefix=storage.prefix)  # the former key builder
        key = StorageKey(bot_id=harness.bot.id, chat_id=EN, user_id=EN)
        for part in ("state", "data"):
            new = DefaultKeyBuilder(prefix=storage.prefix, with_destiny=True).build(key, part)
            assert await redis.rename(new, old.build(key, part))
        assert await upgrade_dialog_keys(redis, storage.prefix) == 2
        assert await upgrade_dialog_keys(redis, storage.prefix) == 0
    finally:
        await redis.aclose()
    await harness.send(EN, GOTSMS_TOKEN)
    assert "GotSMS is connected" in harness.last(EN).text
