"""bot/keyboards/grid.py lays buttons out exactly as aiogram's InlineKeyboardBuilder does."""

from __future__ import annotations

import pytest
from aiogram.types import InlineKeyboardButton
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.keyboards.callbacks import MenuCb
from bot.keyboards.grid import Keyboard


def _buttons(n: int) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text=f"b{i}", callback_data=f"menu:b{i}") for i in range(n)]


def _shape(markup: object) -> list[list[str]]:
    rows = markup.inline_keyboard  # type: ignore[attr-defined]
    return [[button.text for button in row] for row in rows]


@pytest.mark.parametrize("count", [1, 2, 7, 8, 9, 17])
@pytest.mark.parametrize("sizes", [(), (2,), (2, 1), (1, 2), (5,), (2, 2, 1), (3, 1, 2)])
def test_buttons_then_adjust_match_the_builder(count: int, sizes: tuple[int, ...]) -> None:
    ours, theirs = Keyboard(), InlineKeyboardBuilder()
    for i in range(count):
        ours.button(text=f"b{i}", callback_data=MenuCb(action=f"b{i}"))
        theirs.button(text=f"b{i}", callback_data=MenuCb(action=f"b{i}"))
    if sizes or count % 3 == 0:
        ours.adjust(*sizes)
        theirs.adjust(*sizes)
    assert ours.as_markup() == theirs.as_markup()


@pytest.mark.parametrize("groups", [[1], [2, 3], [9], [1, 1, 1], [3, 8, 2]])
def test_rows_and_buttons_mixed_match_the_builder(groups: list[int]) -> None:
    ours, theirs = Keyboard(), InlineKeyboardBuilder()
    for n in groups:
        ours.row(*_buttons(n))
        theirs.row(*_buttons(n))
        ours.button(text="tail", callback_data="menu:tail")
        theirs.button(text="tail", callback_data="menu:tail")
    assert _shape(ours.as_markup()) == _shape(theirs.as_markup())


def test_callback_data_is_packed() -> None:
    markup = Keyboard().button(text="Balance", callback_data=MenuCb(action="balance")).as_markup()
    assert markup.inline_keyboard[0][0].callback_data == "menu:balance"


def test_telegram_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="row sizes"):
        Keyboard().row(*_buttons(3)).adjust(9)
    keyboard = Keyboard()
    for _ in range(11):
        keyboard.row(*_buttons(10))
    with pytest.raises(ValueError, match="100"):
        keyboard.as_markup()
