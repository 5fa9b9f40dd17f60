"""Texts of the /bulk list checks (bot/services/bulk.py): why a list is refused, why a row is
dropped. HTML: whatever comes from the user's file is escaped."""

from __future__ import annotations

from html import escape

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from babel.numbers import format_decimal

from bot.services.bulk import BulkRefused, DropReason, Refusal, TemplateError
from bot.services.gosms import PHONE_MAX, PHONE_MIN, TEXT_MAX
from bot.texts import _number_locale, current_locale

COLUMNS_SHOWN = 8  # header cells named in the NO_NUMBER_COLUMN refusal


def count(value: int) -> str:
    """10000 → en "10,000", ru "10\u00a0000"."""
    return format_decimal(value, "#,##0", locale=_number_locale(current_locale()))


def refusal_text(error: BulkRefused) -> str:
    """Why the list (or template) is refused and what to do, in one or two sentences."""
    detail = error.detail
    match error.reason:
        case Refusal.NOT_TEXT:
            return _("This file is not a text list: save it as CSV (UTF-8) or as plain text.")
        case Refusal.EMPTY:
            return _("The list has no numbers. Send one number per line, or a CSV file with them.")
        case Refusal.TOO_BIG:
            return _(
                "The file is {kb} KB; a list takes at most {max_kb} KB. Split it and send the "
                "first part."
            ).format(
                kb=count(-(-int(detail.get("bytes", 0)) // 1024)),
                max_kb=count(int(detail.get("max", 0)) // 1024),
            )
        case Refusal.TOO_MANY:
            rows = int(detail.get("rows", 0))
            return ngettext(
                "The list has {rows} row; a campaign takes at most {max}. "
                "Split it and send the first part.",
                "The list has {rows} rows; a campaign takes at most {max}. "
                "Split it and send the first part.",
                rows,
            ).format(rows=count(rows), max=count(int(detail.get("max", 0))))
        case Refusal.NO_NUMBER_COLUMN:
            return no_number_column_text([str(c) for c in detail.get("columns", [])])
        case Refusal.BAD_CSV:
            return _(
                'The CSV file cannot be read from line {line} on: a quote (") opens there and '
                "is never closed. Close it or remove it."
            ).format(line=int(detail.get("line", 0)))
        case Refusal.BAD_TEMPLATE:
            return bad_template_text(str(detail.get("error", "")), str(detail.get("near", "")))
    return _("The list cannot be read.")


def no_number_column_text(columns: list[str]) -> str:
    shown = [c for c in columns if c][:COLUMNS_SHOWN]
    names = ", ".join(f"<code>{escape(c)}</code>" for c in shown) or "—"
    if len(columns) > COLUMNS_SHOWN:
        names += ", …"
    return _(
        "The first row names the columns {columns}, but none of them is the number. Name it "
        "<code>phone</code> (or <code>number</code>, <code>номер</code>, <code>телефон</code>), "
        "or leave the header out so that the number is the first column."
    ).format(columns=names)


def bad_template_text(error: str, near: str) -> str:
    where = f"<code>{escape(near)}</code>"
    match error:
        case TemplateError.UNCLOSED:
            text = _("A field of the template is not closed near {where}: write it as {example}.")
        case TemplateError.UNOPENED:
            text = _(
                "The template has a }} without its {{ near {where}: write a field as {example}."
            )
        case TemplateError.EMPTY:
            text = _("The template has empty braces near {where}: name the column, as {example}.")
        case _:
            text = _("The template has braces inside a field near {where}: write it as {example}.")
    text = text.format(where=where, example="<code>{name}</code>")
    return text + " " + _("For a brace itself, write it twice: <code>{{</code> or <code>}}</code>.")


def reason_text(reason: str) -> str:
    """A DropReason in words: "duplicate number", "text over 300 characters", ..."""
    texts: dict[str, str] = {
        DropReason.DUPLICATE: _("the number is already in the list"),
        DropReason.BAD_NUMBER: ngettext(
            "not a phone number ({min} to {max} digit)",
            "not a phone number ({min} to {max} digits)",
            PHONE_MAX,
        ).format(min=PHONE_MIN, max=PHONE_MAX),
        DropReason.EMPTY_TEXT: _("the text is empty"),
        DropReason.TOO_LONG: ngettext(
            "the text is over {max} character", "the text is over {max} characters", TEXT_MAX
        ).format(max=TEXT_MAX),
        DropReason.BACKTICK: _("the text has a backtick (`)"),
        DropReason.MISSING_FIELD: _("a field of the template has no value in this row"),
        DropReason.NO_TEXT: _("the row has no text"),
    }
    return texts.get(reason, reason)
