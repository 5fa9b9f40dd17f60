"""GotSMS callback data: ids shortened without loss, every button within 64 bytes."""

from __future__ import annotations

import uuid

import pytest

from bot.keyboards import gotsms as kb


def test_short_ids_round_trip_and_refuse_garbage() -> None:
    for _ in range(200):
        value = str(uuid.uuid4())
        short = kb.short_id(value)
        assert len(short) == 22
        assert ":" not in short
        assert kb.long_id(short) == value
    assert kb.long_id(kb.short_id("not-a-uuid")) == "not-a-uuid"
    for bad in ("", "abc", "A" * 21, "!" * 22, "~"):
        with pytest.raises(ValueError, match="short id"):
            kb.long_id(bad)


def test_the_longest_buttons_fit() -> None:
    a, b = kb.short_id(str(uuid.uuid4())), kb.short_id(str(uuid.uuid4()))
    packed = [
        kb.PlansCb(m="p", s=a, d="m", b="s", c=b, p=999).pack(),
        kb.PlanCb(s=a, id=b).pack(),
        kb.RentCb(a="o", id=a, st="f", p=999).pack(),
        kb.RentMessagesCb(id=a, b=b).pack(),
        kb.MoveCb(id=a, pl=b).pack(),
        kb.MessagesCb(p=999, s=a, q="9" * 20).pack(),
        kb.ServicesCb(m="m", p=999, q="0123abcd").pack(),
    ]
    assert all(len(data.encode()) <= 64 for data in packed), packed
    assert all(data.startswith("g") for data in packed)
