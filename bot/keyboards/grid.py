"""Inline keyboards, built row by row.

The part of aiogram's Keyboard that the bot uses (`button`, `row`, `adjust`,
`as_markup`), with the same layout rules. The builder deep-copies the whole markup on every
button it adds, which made drawing a menu cost more CPU than sending it (bench/handlers.py).
"""

from __future__ import annotations

from itertools import chain

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

MAX_WIDTH = 8  # Telegram: buttons in one row
MAX_BUTTONS = 100  # Telegram: buttons in one keyboard


class Keyboard:
    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: list[list[InlineKeyboardButton]] = []

    def button(self, *, text: str, callback_data: CallbackData | str) -> Keyboard:
        """One callback button, on the last row while it has room (as the builder does)."""
        if isinstance(callback_data, CallbackData):
            callback_data = callback_data.pack()
        button = InlineKeyboardButton(text=text, callback_data=callback_data)
        if self._rows and len(self._rows[-1]) < MAX_WIDTH:
            self._rows[-1].append(button)
        else:
            self._rows.append([button])
        return self

    def row(self, *buttons: InlineKeyboardButton) -> Keyboard:
        """The buttons on new rows, at most MAX_WIDTH on each."""
        for start in range(0, len(buttons), MAX_WIDTH):
            self._rows.append(list(buttons[start : start + MAX_WIDTH]))
        return self

    def adjust(self, *sizes: int) -> Keyboard:
        """Every button so far re-flowed into rows of these sizes; the last size repeats."""
        if any(not 1 <= size <= MAX_WIDTH for size in sizes):
            raise ValueError(f"row sizes must be 1..{MAX_WIDTH}, not {sizes}")
        buttons = list(chain.from_iterable(self._rows))
        widths = list(sizes) or [MAX_WIDTH]
        rows: list[list[InlineKeyboardButton]] = []
        while buttons:
            width = widths.pop(0) if len(widths) > 1 else widths[0]
            rows.append(buttons[:width])
            buttons = buttons[width:]
        self._rows = rows
        return self

    def as_markup(self) -> InlineKeyboardMarkup:
        count = sum(len(row) for row in self._rows)
        if count > MAX_BUTTONS:
            raise ValueError(f"{count} buttons; Telegram allows {MAX_BUTTONS} in a keyboard")
        return InlineKeyboardMarkup(inline_keyboard=[list(row) for row in self._rows])
