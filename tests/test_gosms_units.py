"""GoSMS input rules, callback data sizes and card texts, without the dispatcher."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.api.gosms import DeviceInfo, Sms
from bot.i18n import create_i18n
from bot.keyboards.gosms import (
    DeviceCb,
    DevicesCb,
    SendDeviceCb,
    SendSimCb,
    SmsCb,
    SmsPageCb,
    sms_card,
)
from bot.services.gosms import (
    InvalidInput,
    check_device_id,
    check_text,
    delete_wait,
    normalize_phone,
    split_one_liner,
)
from bot.texts.gosms import card_of, device_card, online_line, sms_list

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    i18n = create_i18n()
    with i18n.context(), i18n.use_locale("en"):
        yield


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("+7 (999) 123-45-67 Hello there", ("+7 (999) 123-45-67", "Hello there")),
        ("79991234567 Hi", ("79991234567", "Hi")),
        ("79991234567", ("79991234567", "")),
        ("+7 999 123 45 67\n42 is the answer", ("+7 999 123 45 67", "42 is the answer")),
        ("7999abc Hello", ("7999abc", "Hello")),
        ("hello world", ("hello", "world")),
        ("  +1.202.555.0143   spaced   text ", ("+1.202.555.0143", "spaced   text")),
    ],
)
def test_split_one_liner(args: str, expected: tuple[str, str]) -> None:
    assert split_one_liner(args) == expected


def test_phone_rules() -> None:
    assert normalize_phone("+7 (999) 123-45-67") == "79991234567"
    assert normalize_phone("123") == "123"
    assert normalize_phone("1" * 30) == "1" * 30
    for bad, why in [
        ("", "missing"),
        ("+7 999 CALL ME", "letters"),
        ("+7 999 твой", "letters"),
        ("7999_123", "only digits"),
        ("12", "too short"),
        ("1" * 31, "too long"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            normalize_phone(bad)


def test_text_rules() -> None:
    assert check_text("  hi  ") == "hi"
    assert check_text("я" * 300) == "я" * 300
    for bad, why in [("", "empty"), (" \n ", "empty"), ("x" * 301, "301"), ("`", "backtick")]:
        with pytest.raises(InvalidInput, match=why):
            check_text(bad)


def test_device_ids() -> None:
    assert check_device_id(" 6622A8BBD963898821EBF934 ") == "6622a8bbd963898821ebf934"
    assert check_device_id(UUID.upper()) == UUID
    for bad in ("6622a8bbd963898821ebf93", "6622a8bbd963898821ebf934x", "zz" * 12, "1"):
        with pytest.raises(InvalidInput):
            check_device_id(bad)


def test_callback_data_fits_telegram_with_whole_ids() -> None:
    biggest = [
        SmsCb(action="r", id=UUID, page=9999, q="abcdef12"),
        SmsCb(action="d", id="6622a8bbd963898821ebf934", page=9999, q="abcdef12"),
        SmsPageCb(page=99999, q="abcdef12"),
        DeviceCb(action="off", row=2**31),
        DevicesCb(action="list"),
        SendDeviceCb(row=2**31),
        SendSimCb(slot=2),
    ]
    for data in biggest:
        packed = data.pack()
        assert len(packed.encode()) <= 64, packed
        assert packed[0] in "sd"
    assert UUID in SmsCb.unpack(biggest[0].pack()).id
    markup = sms_card(UUID, page=3, q="abcdef12")
    assert all(
        len((b.callback_data or "").encode()) <= 64 for row in markup.inline_keyboard for b in row
    )


def test_delete_wait() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    created = int(now.timestamp())
    assert delete_wait(created, now) == 300
    assert delete_wait(created - 100, now) == 200
    assert delete_wait(created - 400, now) == 0


def test_texts_escape_everything_from_the_api() -> None:
    sms = Sms(
        id="6622a8bbd963898821ebf934",
        message="<b>hi</b> & `x`",
        status=4,
        phone_number="7<9>",
        device_id="dev&",
        to_sim=0,
        time_create=1716812679,
    )
    card = card_of(sms, "Name <i>")
    assert "&lt;b&gt;hi&lt;/b&gt; &amp;" in card
    assert "Name &lt;i&gt;" in card
    assert "7&lt;9&gt;" in card
    assert "<b>hi" not in card
    listing = sms_list([sms], 1, 1, 1, "<q>")
    assert "&lt;q&gt;" in listing
    assert "<q>" not in listing
    info = DeviceInfo(id="x", device_name="<Phone>", console_data="</pre>" * 500)
    text = device_card(info, "x")
    assert "&lt;Phone&gt;" in text
    assert text.count("</pre>") == 1


def test_online_line() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert "just now" in online_line(now - timedelta(seconds=20), now)
    assert "5 min ago" in online_line(now - timedelta(minutes=5), now)
    assert "Offline for 5 min" in online_line(now - timedelta(minutes=5, seconds=1), now)
    assert "Offline for 3 d" in online_line(now - timedelta(days=3), now)
    assert "never" in online_line(None, now)


def test_wait_text() -> None:
    from bot.handlers.gosms.sms import wait_text

    assert wait_text(0) == "in a moment"
    assert wait_text(45) == "in 45 s"
    assert wait_text(300) == "in 5 min"
    assert wait_text(299) == "in 4 min 59 s"
