"""The recipients of /bulk: a pasted list or a .csv / .txt file → rows → checked recipients.

Pure code (enums and data, no gettext, no I/O), so the handler runs it in `asyncio.to_thread`.
Every row is checked with the rules of /send (bot/services/gosms.py `phone_digits`,
`text_problem`); what cannot go out is kept as a `Dropped` with its line and a `DropReason`.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from bot.db.campaigns import Dropped, Recipient
from bot.services.gosms import TextProblem, phone_digits, split_one_liner, text_problem

NUMBER_COLUMNS = frozenset(
    ("phone", "number", "tel", "telephone", "mobile", "msisdn", "номер", "телефон")
)
TEXT_COLUMNS = frozenset(("text", "message", "sms", "текст", "сообщение"))
DELIMITERS = (",", ";", "\t")
SNIFF_LINES = 20
VALUE_MAX = 60  # characters of a dropped row kept to show it
# control characters no text file has: what binary data decoded as cp1251 is full of
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_PASTED_SEPARATOR = re.compile(r"[,;\t]")
_WORDS = re.compile(r"[\s_\-.#()]+")


class Refusal(StrEnum):
    NOT_TEXT = "not_text"
    EMPTY = "empty"
    TOO_BIG = "too_big"
    TOO_MANY = "too_many"
    NO_NUMBER_COLUMN = "no_number_column"
    BAD_TEMPLATE = "bad_template"
    BAD_CSV = "bad_csv"  # a quoted cell never closed (or over 128 KB)


class TemplateError(StrEnum):
    """What is wrong with a template's braces (BulkRefused.detail["error"])."""

    UNCLOSED = "unclosed"  # `{name` without its `}`
    UNOPENED = "unopened"  # a `}` without its `{`
    EMPTY = "empty"  # `{}`
    NESTED = "nested"  # `{a{b}}`


class BulkRefused(Exception):
    """The whole list (or template) is refused. `detail` carries the numbers a message needs:
    TOO_BIG {"bytes", "max"}, TOO_MANY {"rows", "max"}, NO_NUMBER_COLUMN {"columns"},
    BAD_CSV {"line": where the bad cell starts},
    BAD_TEMPLATE {"error": TemplateError, "near": the text around it}."""

    def __init__(self, reason: Refusal, detail: dict[str, Any] | None = None, **more: Any) -> None:
        self.reason = reason
        self.detail: dict[str, Any] = {**(detail or {}), **more}
        super().__init__(reason.value, self.detail)


class DropReason(StrEnum):
    DUPLICATE = "duplicate"
    BAD_NUMBER = "bad_number"
    EMPTY_TEXT = "empty_text"
    TOO_LONG = "too_long"
    BACKTICK = "backtick"
    MISSING_FIELD = "missing_field"
    NO_TEXT = "no_text"


TEXT_DROPS = {
    TextProblem.EMPTY: DropReason.EMPTY_TEXT,
    TextProblem.LONG: DropReason.TOO_LONG,
    TextProblem.BACKTICK: DropReason.BACKTICK,
}


@dataclass(frozen=True)
class SourceRow:
    line: int  # the line the user sees (1-based; a quoted multi-line row: its first line)
    phone: str  # the number cell as written
    text: str | None  # the row's own text; None when it has none (or a blank one)
    fields: dict[str, str]  # template fields (lower-cased header names) → values


@dataclass(frozen=True)
class Source:
    rows: list[SourceRow]
    columns: tuple[str, ...]  # fields a template may use (lower-cased header names)
    texts: bool  # every row carries its own text
    name: str  # the file's name, or "" for a pasted list


@dataclass(frozen=True)
class Checked:
    recipients: list[Recipient]
    dropped: list[Dropped]


# ---- reading


def source_of(rows: list[SourceRow], columns: tuple[str, ...], name: str) -> Source:
    return Source(
        rows=rows,
        columns=columns,
        texts=all(r.text is not None for r in rows),
        name=name,
    )


class RowCounter:
    """Keeps the first `max_rows` rows and counts them all, so TOO_MANY can say how many."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.rows: list[SourceRow] = []
        self.count = 0

    def add(self, row: SourceRow) -> None:
        self.count += 1
        if self.count <= self.max_rows:
            self.rows.append(row)

    def done(self) -> list[SourceRow]:
        if self.count == 0:
            raise BulkRefused(Refusal.EMPTY)
        if self.count > self.max_rows:
            raise BulkRefused(Refusal.TOO_MANY, rows=self.count, max=self.max_rows)
        return self.rows


def own_text(cell: str | None) -> str | None:
    if cell is None:
        return None
    text = cell.strip()
    return text or None


def parse_pasted(text: str, *, max_rows: int) -> Source:
    """One number per line, or `number, text` per line (`,` `;` or a tab after the number).
    Blank lines are skipped and not counted; `line` is the line as the user sees it."""
    return source_of(pasted_rows(text.splitlines(), max_rows), (), "")


def pasted_rows(lines: Iterable[str], max_rows: int) -> list[SourceRow]:
    counter = RowCounter(max_rows)
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = _PASTED_SEPARATOR.split(line, maxsplit=1)
        if len(parts) == 1:  # `+7 999 123-45-67 Hello`: split as /send splits it
            parts = list(split_one_liner(line))
        phone = parts[0].strip()
        text = own_text(parts[1]) if len(parts) > 1 else None
        counter.add(SourceRow(line=line_no, phone=phone, text=text, fields={}))
    return counter.done()


def parse_file(data: bytes, filename: str, *, max_rows: int, max_bytes: int) -> Source:
    """A .csv (header row optional, delimiter `,` `;` or tab) or a .txt (read like a pasted
    list). Refuses (BulkRefused) a file over `max_bytes`, one that is not text, an empty one,
    one over `max_rows` rows, and a header naming no number column."""
    if len(data) > max_bytes:
        raise BulkRefused(Refusal.TOO_BIG, bytes=len(data), max=max_bytes)
    lines = decode_lines(data)
    if filename.lower().endswith(".txt"):
        return source_of(pasted_rows((ln.rstrip("\r\n") for ln in lines), max_rows), (), filename)
    return csv_source(lines, filename, max_rows)


# ---- decoding


def decode_lines(data: bytes) -> list[str]:
    """The file's lines with their ends: UTF-8 (BOM or not), UTF-16 with a BOM, else cp1251 —
    line by line when the file is not UTF-8 as a whole (a UTF-8 list with cp1251 lines pasted
    in). NUL bytes, undecodable bytes or control characters: not a text file."""
    text = decode_bom(data)
    if text is not None:
        return lines_of(checked_text(text))
    if b"\x00" in data:
        raise BulkRefused(Refusal.NOT_TEXT)
    try:
        return lines_of(checked_text(data.decode("utf-8")))
    except UnicodeDecodeError:
        pass
    return [checked_text(decode_line(raw)) for raw in data.splitlines(keepends=True)]


def lines_of(text: str) -> list[str]:
    """Split at \\n, \\r and \\r\\n only, as the csv module does (not at U+2028 and the like)."""
    return io.StringIO(text, newline="").readlines()


def decode_bom(data: bytes) -> str | None:
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8")
        except UnicodeDecodeError:
            return "".join(decode_line(raw) for raw in data[3:].splitlines(keepends=True))
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise BulkRefused(Refusal.NOT_TEXT) from None
    return None


def decode_line(raw: bytes) -> str:
    if b"\x00" in raw:
        raise BulkRefused(Refusal.NOT_TEXT)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1251")
    except UnicodeDecodeError:  # 0x98 has no character in cp1251
        raise BulkRefused(Refusal.NOT_TEXT) from None


def checked_text(text: str) -> str:
    if _CONTROLS.search(text):
        raise BulkRefused(Refusal.NOT_TEXT)
    return text


# ---- CSV


class CsvRow(NamedTuple):
    line: int
    cells: list[str]
    raw: str  # the row's lines as written


@dataclass(frozen=True)
class Layout:
    """Which cell of a row is what."""

    number: int
    text: int | None
    fields: tuple[tuple[str, int], ...]  # (field name, cell index)
    joined_text: bool  # no header: every cell after the number is the text


def csv_source(lines: list[str], name: str, max_rows: int) -> Source:
    delimiter = excel_separator(lines)
    if delimiter is None:
        delimiter = sniff(lines)
    else:  # the line stays, blank, so that the lines keep their numbers
        lines = ["\n", *lines[1:]]
    reader = csv.reader(lines, delimiter=delimiter, skipinitialspace=True)
    rows = numbered(reader, lines)
    try:
        first = next(rows, None)
        if first is None:
            raise BulkRefused(Refusal.EMPTY)
        layout, header = layout_of(first.cells)
        counter = RowCounter(max_rows)
        if not header:
            counter.add(source_row(first, layout, delimiter))
        last = first
        for last in rows:
            counter.add(source_row(last, layout, delimiter))
    except csv.Error:  # a cell over the csv module's 128 KB: no list of SMS has one
        raise BulkRefused(Refusal.BAD_CSV, line=reader.line_num) from None
    if last.raw.count('"') % 2:  # a quote left open takes the rest of the file as one cell
        raise BulkRefused(Refusal.BAD_CSV, line=last.line)
    columns = tuple(f for f, _i in layout.fields)
    return source_of(counter.done(), columns, name)


def numbered(reader: Iterator[list[str]], lines: Sequence[str]) -> Iterator[CsvRow]:
    """Every row with a non-blank cell, with its first line and its text as written."""
    line = 1
    for cells in reader:
        end: int = reader.line_num  # type: ignore[attr-defined]
        if any(c.strip() for c in cells):
            yield CsvRow(line, cells, "".join(lines[line - 1 : end]))
        line = end + 1


def excel_separator(lines: Sequence[str]) -> str | None:
    """The delimiter Excel names in a first line `sep=;`, if there is one."""
    first = lines[0].strip() if lines else ""
    if len(first) == 5 and first.lower().startswith("sep=") and first[4] in DELIMITERS:
        return first[4]
    return None


def sniff(lines: Sequence[str]) -> str:
    """The delimiter: of those in the first line, the one in the most of the first lines;
    a tie goes to the one met first in the first line (right after the number, headerless)."""
    sample = [ln for ln in lines[: SNIFF_LINES * 2] if ln.strip()][:SNIFF_LINES]
    if not sample:
        return ","
    head = sample[0]
    present = [d for d in DELIMITERS if d in head]
    if not present:
        return ","
    return max(present, key=lambda d: (sum(d in ln for ln in sample), -head.index(d)))


def find_column(names: list[str], known: frozenset[str], taken: int | None) -> int | None:
    """The first cell that is one of the `known` names, else the first with one of them as a
    word (`Phone number`, `mobile_phone`, `Номер телефона`)."""
    exact = next((i for i, n in enumerate(names) if n in known and i != taken), None)
    if exact is not None:
        return exact
    return next(
        (i for i, n in enumerate(names) if i != taken and not known.isdisjoint(_WORDS.split(n))),
        None,
    )


def layout_of(first: list[str]) -> tuple[Layout, bool]:
    """The layout, and whether the first row is a header."""
    names = [c.strip().lower() for c in first]
    number = find_column(names, NUMBER_COLUMNS, None)
    text = find_column(names, TEXT_COLUMNS, number)
    headerless = Layout(number=0, text=1, fields=(), joined_text=True)
    if phone_digits(names[0])[1] is None:  # a number first: data, whatever its text says
        return headerless, False
    if number is None and text is None and any(ch.isdigit() for ch in names[0]):
        return headerless, False  # a bad number first: data, its row is dropped
    if number is None:
        raise BulkRefused(Refusal.NO_NUMBER_COLUMN, columns=[c.strip() for c in first])
    fields: dict[str, int] = {}
    for i, n in enumerate(names):
        if n and i not in (number, text) and n not in fields:
            fields[n] = i
    return Layout(number=number, text=text, fields=tuple(fields.items()), joined_text=False), True


def source_row(row: CsvRow, layout: Layout, delimiter: str) -> SourceRow:
    cells, size = row.cells, len(row.cells)
    phone = cells[layout.number].strip() if layout.number < size else ""
    text: str | None = None
    if layout.joined_text:
        text = joined_text(row, delimiter)
    elif layout.text is not None and layout.text < size:
        text = own_text(cells[layout.text])
    fields = {f: cells[i].strip() for f, i in layout.fields if i < size and cells[i].strip()}
    return SourceRow(line=row.line, phone=phone, text=text, fields=fields)


def joined_text(row: CsvRow, delimiter: str) -> str | None:
    """A headerless row's text: every cell after the number; when the text's own commas
    were not quoted (more than two cells), the text as written."""
    if len(row.cells) > 2:
        return own_text(row.raw.partition(delimiter)[2])
    return own_text(row.cells[1]) if len(row.cells) > 1 else None


# ---- templates


@dataclass(frozen=True)
class Template:
    """A template split once: literal text and field names in turn (`parts[1::2]` are fields)."""

    parts: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.parts[1::2]))

    def fill(self, values: dict[str, str]) -> str | None:
        """The filled text, or None when a field has no value in `values`."""
        out = []
        for i, part in enumerate(self.parts):
            if i % 2 == 0:
                out.append(part)
            elif (value := values.get(part)) is None:
                return None
            else:
                out.append(value)
        return "".join(out)


def compile_template(template: str) -> Template:
    """`Hello, {name}!` → ("Hello, ", "name", "!"); `{{` and `}}` are literal braces;
    field names are lower-cased and stripped. Malformed braces: BulkRefused(BAD_TEMPLATE)."""
    parts: list[str] = []
    literal: list[str] = []
    i, size = 0, len(template)
    while i < size:
        ch = template[i]
        if ch == "{" and template.startswith("{{", i):
            literal.append("{")
            i += 2
        elif ch == "}" and template.startswith("}}", i):
            literal.append("}")
            i += 2
        elif ch == "}":
            raise template_error(TemplateError.UNOPENED, template, i)
        elif ch == "{":
            end = template.find("}", i + 1)
            if end < 0:
                raise template_error(TemplateError.UNCLOSED, template, i)
            inner = template[i + 1 : end]
            if "{" in inner:
                raise template_error(TemplateError.NESTED, template, i)
            if not inner.strip():
                raise template_error(TemplateError.EMPTY, template, i)
            parts.append("".join(literal))
            parts.append(inner.strip().lower())
            literal = []
            i = end + 1
        else:
            literal.append(ch)
            i += 1
    parts.append("".join(literal))
    return Template(tuple(parts))


def template_error(error: TemplateError, template: str, at: int) -> BulkRefused:
    near = template[max(0, at - 10) : at + 20]
    return BulkRefused(Refusal.BAD_TEMPLATE, error=error, near=near)


def template_fields(template: str) -> tuple[str, ...]:
    """The `{name}` fields a template uses (lower-cased, each once, in order)."""
    return compile_template(template).fields


# ---- checking


def check(source: Source, template: str | None) -> Checked:
    """Every row with the rules of /send: a valid number not seen in an earlier recipient,
    and its own text or else the template filled with its fields, 1–300 characters, no
    backtick. A row's own text wins over the template."""
    compiled = compile_template(template) if template is not None else None
    recipients: list[Recipient] = []
    dropped: list[Dropped] = []
    seen: set[str] = set()
    for row in source.rows:
        digits, problem = phone_digits(row.phone)
        if problem is not None:
            dropped.append(drop(row, DropReason.BAD_NUMBER))
            continue
        if digits in seen:
            dropped.append(drop(row, DropReason.DUPLICATE))
            continue
        text, reason = row_text(row, compiled)
        if reason is not None:
            dropped.append(drop(row, reason))
            continue
        seen.add(digits)
        recipients.append(Recipient(row.line, digits, text))
    return Checked(recipients=recipients, dropped=dropped)


def row_text(row: SourceRow, template: Template | None) -> tuple[str, DropReason | None]:
    if row.text is not None:
        raw = row.text
    elif template is None:
        return "", DropReason.NO_TEXT
    elif (filled := template.fill(row.fields)) is None:
        return "", DropReason.MISSING_FIELD
    else:
        raw = filled
    text = raw.strip()
    problem = text_problem(text)
    return text, TEXT_DROPS[problem] if problem is not None else None


def drop(row: SourceRow, reason: DropReason) -> Dropped:
    cells = [row.phone or ", ".join(row.fields.values()), row.text or ""]
    said = ", ".join(c for c in cells if c)
    said = " ".join(said.split())  # one line, whatever the cells held
    if len(said) > VALUE_MAX:
        said = said[: VALUE_MAX - 1] + "…"
    return Dropped(row.line, said, reason.value)


# ---- the dropped rows as a file


def dropped_csv(dropped: Sequence[Dropped], describe: Callable[[str], str]) -> bytes:
    """line, value, reason (in words, by `describe`) — UTF-8 with a BOM (spreadsheets read it)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("line", "value", "reason"))
    for item in dropped:
        writer.writerow((item.line, item.value, describe(item.reason)))
    return out.getvalue().encode("utf-8-sig")
