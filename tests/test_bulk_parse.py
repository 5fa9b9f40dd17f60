"""The /bulk list reader and checker (bot/services/bulk.py) and its texts, without the
dispatcher: pasted lists, files in every encoding a user's spreadsheet writes, templates, and
every reason a row is dropped."""

from __future__ import annotations

import csv
import gc
import io
import time
from collections.abc import Iterator

import pytest

from bot.db.campaigns import Dropped, Recipient
from bot.i18n import create_i18n
from bot.services.bulk import (
    BulkRefused,
    DropReason,
    Refusal,
    Source,
    TemplateError,
    check,
    dropped_csv,
    parse_file,
    parse_pasted,
    template_fields,
)
from bot.services.gosms import InvalidInput, check_text, normalize_phone
from bot.texts import bulk as bulk_texts
from bot.texts.bulk_input import reason_text, refusal_text

MAX_ROWS = 5000
MAX_BYTES = 1024 * 1024
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    i18n = create_i18n()
    with i18n.context(), i18n.use_locale("en"):
        yield


def read(data: bytes, name: str = "list.csv", max_rows: int = MAX_ROWS) -> Source:
    return parse_file(data, name, max_rows=max_rows, max_bytes=MAX_BYTES)


def refusal(data: bytes, name: str = "list.csv", max_rows: int = MAX_ROWS) -> BulkRefused:
    with pytest.raises(BulkRefused) as caught:
        read(data, name, max_rows)
    return caught.value


def reasons(source: Source, template: str | None = None) -> list[tuple[int, str]]:
    return [(d.line, d.reason) for d in check(source, template).dropped]


# ---- pasted lists


def test_pasted_numbers_and_texts_with_user_line_numbers() -> None:
    source = parse_pasted(
        "+7 (999) 123-45-67\n\n  \n79991234568, Hello, world\n79991234569;Hi\n"
        "79991234570\tTabbed\n+1 202 555 0143 Spaced text\n",
        max_rows=10,
    )
    assert [r.line for r in source.rows] == [1, 4, 5, 6, 7]
    assert source.columns == ()
    assert source.name == ""
    assert not source.texts
    checked = check(source, "Default")
    assert checked.dropped == []
    assert checked.recipients == [
        Recipient(1, "79991234567", "Default"),
        Recipient(4, "79991234568", "Hello, world"),
        Recipient(5, "79991234569", "Hi"),
        Recipient(6, "79991234570", "Tabbed"),
        Recipient(7, "12025550143", "Spaced text"),
    ]


def test_pasted_rows_all_with_texts_need_no_template() -> None:
    source = parse_pasted("79991234567, one\n79991234568, two", max_rows=10)
    assert source.texts
    assert [r.text for r in check(source, None).recipients] == ["one", "two"]


def test_pasted_blank_lines_are_not_rows() -> None:
    source = parse_pasted("\n".join(["79991234567", ""] * 3), max_rows=3)
    assert len(source.rows) == 3
    with pytest.raises(BulkRefused) as caught:
        parse_pasted("   \n\n\t\n", max_rows=3)
    assert caught.value.reason == Refusal.EMPTY


def test_pasted_over_the_cap_is_refused_with_the_count() -> None:
    with pytest.raises(BulkRefused) as caught:
        parse_pasted("\n".join(f"7999{i:07d}" for i in range(12)), max_rows=10)
    assert caught.value.reason == Refusal.TOO_MANY
    assert caught.value.detail == {"rows": 12, "max": 10}


# ---- every drop reason


def test_every_drop_reason() -> None:
    source = parse_pasted(
        "\n".join(
            [
                "79990000001",  # 1: the template
                "79990000001, again",  # 2: duplicate
                "12",  # 3: too short
                "7999abc0000, letters",  # 4: letters
                "7999*000000, stars",  # 5: characters
                "1" * 31,  # 6: too long a number
                "79990000002, " + "я" * 301,  # 7: too long a text
                "79990000003, it`s",  # 8: backtick
                "79990000004, " + "я" * 300,  # 9: exactly the limit
            ]
        ),
        max_rows=20,
    )
    checked = check(source, "Hi")
    assert [(d.line, d.reason) for d in checked.dropped] == [
        (2, DropReason.DUPLICATE),
        (3, DropReason.BAD_NUMBER),
        (4, DropReason.BAD_NUMBER),
        (5, DropReason.BAD_NUMBER),
        (6, DropReason.BAD_NUMBER),
        (7, DropReason.TOO_LONG),
        (8, DropReason.BACKTICK),
    ]
    assert [r.line for r in checked.recipients] == [1, 9]


def test_no_text_and_empty_text_and_missing_field() -> None:
    source = parse_pasted("79990000001\n79990000002, own", max_rows=5)
    assert reasons(source, None) == [(1, DropReason.NO_TEXT)]
    assert reasons(source, "   ") == [(1, DropReason.EMPTY_TEXT)]
    filed = read(b"phone,name\n79990000001,Ann\n79990000002,\n79990000003")
    assert reasons(filed, "Hi {name}") == [
        (3, DropReason.MISSING_FIELD),
        (4, DropReason.MISSING_FIELD),
    ]
    assert reasons(filed, "Hi {city}") == [(n, DropReason.MISSING_FIELD) for n in (2, 3, 4)]


def test_the_rules_are_those_of_send() -> None:
    """A row is kept exactly when /send accepts its number and its text."""
    samples = ["+7 (999) 123-45-67", "123", "12", "1" * 30, "1" * 31, "7999 abc", "7999#1", " "]
    texts = ["ok", " padded ", "", "x" * 300, "x" * 301, "a`b"]
    lines = [f"{p}\t{t}" for p in samples for t in texts]
    source = parse_pasted("\n".join(lines), max_rows=1000)
    kept = {r.line for r in check(source, "fallback").recipients}
    seen: set[str] = set()
    for line_no, (phone, text) in enumerate(((p, t) for p in samples for t in texts), 1):
        try:
            digits = normalize_phone(phone)
            check_text(text.strip() or "fallback")
        except InvalidInput:
            assert line_no not in kept, (phone, text)
            continue
        assert (line_no in kept) == (digits not in seen), (phone, text)
        seen.add(digits)


def test_a_duplicate_of_a_dropped_row_is_sent() -> None:
    source = parse_pasted(
        "79990000001, it`s\n+7 999 000-00-01, fixed\n79990000001, again", max_rows=5
    )
    checked = check(source, None)
    assert checked.recipients == [Recipient(2, "79990000001", "fixed")]
    assert [(d.line, d.reason) for d in checked.dropped] == [
        (1, DropReason.BACKTICK),
        (3, DropReason.DUPLICATE),
    ]


def test_dropped_value_is_what_the_row_said_cut() -> None:
    source = parse_pasted("79990000002, " + "long text " * 40, max_rows=5)
    (dropped,) = check(source, None).dropped
    assert dropped.value.startswith("79990000002, long text long")
    assert len(dropped.value) <= 60
    assert dropped.value.endswith("…")


# ---- templates


def test_template_fields_from_the_header() -> None:
    source = read(
        "Phone,First Name,City,Text\n"
        "79990000001,Анна,Москва,\n"
        "79990000002,Boris,Tver,Own text wins\n".encode()
    )
    assert source.columns == ("first name", "city")
    assert not source.texts
    assert template_fields("Hi {First Name} from {CITY}, {city}!") == ("first name", "city")
    checked = check(source, "Hi {First Name} from {city}!")
    assert [r.text for r in checked.recipients] == ["Hi Анна from Москва!", "Own text wins"]


def test_template_literal_braces() -> None:
    assert template_fields("{{not a field}} {{{name}}}") == ("name",)
    source = read(b"phone,name\n79990000001,Ann\n")
    (recipient,) = check(source, "{{code}}: {{{name}}}").recipients
    assert recipient.text == "{code}: {Ann}"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("Hi {name", TemplateError.UNCLOSED),
        ("Hi name}", TemplateError.UNOPENED),
        ("Hi {}", TemplateError.EMPTY),
        ("Hi {  }", TemplateError.EMPTY),
        ("Hi {a{b}}", TemplateError.NESTED),
    ],
)
def test_malformed_templates(template: str, error: TemplateError) -> None:
    with pytest.raises(BulkRefused) as caught:
        template_fields(template)
    assert caught.value.reason == Refusal.BAD_TEMPLATE
    assert caught.value.detail["error"] == error
    with pytest.raises(BulkRefused):
        check(parse_pasted("79990000001", max_rows=1), template)
    text = refusal_text(caught.value)
    assert "<code>{{</code>" in text
    assert "<code>{name}</code>" in text


# ---- files: encodings


def test_utf8_with_and_without_bom() -> None:
    body = "phone,name\n79990000001,Ёлка\n"
    for data in (body.encode(), b"\xef\xbb\xbf" + body.encode()):
        source = read(data)
        assert source.columns == ("name",)
        assert source.rows[0].fields == {"name": "Ёлка"}
        assert source.name == "list.csv"


def test_cp1251_russian_names() -> None:
    source = read("телефон;имя\n79990000001;Пётр Ильич\n".encode("cp1251"))
    assert source.columns == ("имя",)
    assert check(source, "Здравствуйте, {имя}").recipients[0].text == "Здравствуйте, Пётр Ильич"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_with_bom(encoding: str) -> None:
    body = "Номер\tТекст\r\n79990000001\tПривет\r\n"
    data = body.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    source = read(data)
    assert source.texts
    assert check(source, None).recipients == [Recipient(2, "79990000001", "Привет")]


def test_mixed_utf8_and_cp1251_lines() -> None:
    data = (
        b"phone,name\n"
        + "79990000001,Анна\n".encode()
        + "79990000002,Борис\n".encode("cp1251")
        + "79990000003,Вера\n".encode()
    )
    source = read(data)
    assert [r.fields["name"] for r in source.rows] == ["Анна", "Борис", "Вера"]


@pytest.mark.parametrize(
    "data",
    [PNG, b"%PDF-1.4\n\x00\x01binary", b"PK\x03\x04\x14\x00\x06\x00", bytes(range(1, 32)) * 4],
)
def test_binary_is_not_text(data: bytes) -> None:
    error = refusal(data)
    assert error.reason == Refusal.NOT_TEXT
    assert "CSV" in refusal_text(error)


@pytest.mark.parametrize(
    ("data", "name"),
    [(b"", "list.csv"), (b"\n\r\n  \n", "list.csv"), (b"phone,text\n", "list.csv"), (b"", "a.txt")],
)
def test_empty_files(data: bytes, name: str) -> None:
    assert refusal(data, name).reason == Refusal.EMPTY


# ---- files: layout


def test_header_without_a_number_column() -> None:
    error = refusal(b"name,city,text\nAnn,Tver,Hi\n")
    assert error.reason == Refusal.NO_NUMBER_COLUMN
    assert error.detail == {"columns": ["name", "city", "text"]}
    text = refusal_text(error)
    assert "<code>name</code>, <code>city</code>, <code>text</code>" in text
    assert "<code>phone</code>" in text
    assert "&lt;b&gt;" in refusal_text(refusal(b"<b>,x\n1,2\n"))


def test_headerless_file_is_number_then_text() -> None:
    source = read(b'79990000001,Hello, world\n79990000002\n12,bad\n"79990000003", "Hi, you"\n')
    assert source.columns == ()
    checked = check(source, "Fallback")
    assert [(r.line, r.text) for r in checked.recipients] == [
        (1, "Hello, world"),
        (2, "Fallback"),
        (4, "Hi, you"),
    ]
    assert [(d.line, d.reason) for d in checked.dropped] == [(3, DropReason.BAD_NUMBER)]


def test_a_first_row_with_a_number_is_data_even_if_its_text_names_a_column() -> None:
    source = read(b"79990000001,text\n79990000002,sms\n")
    assert [r.text for r in source.rows] == ["text", "sms"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters(delimiter: str) -> None:
    body = delimiter.join(["phone", "name", "text"]) + "\n"
    body += delimiter.join(["79990000001", "Ann", '"Hi, Ann; how are you?"']) + "\n"
    body += delimiter.join(["79990000002", "Bob", ""]) + "\n"
    source = read(body.encode())
    assert source.columns == ("name",)
    assert [(r.phone, r.text, r.fields) for r in source.rows] == [
        ("79990000001", "Hi, Ann; how are you?", {"name": "Ann"}),
        ("79990000002", None, {"name": "Bob"}),
    ]


def test_quoted_fields_with_newlines_keep_the_line_numbers() -> None:
    data = b'phone,text\n"+7 999 000-00-01","one,\ntwo\nthree"\n\n79990000002,after\n'
    source = read(data)
    assert [(r.line, r.text) for r in source.rows] == [(2, "one,\ntwo\nthree"), (6, "after")]


def test_txt_file_reads_like_a_pasted_list() -> None:
    source = read("79990000001\r\n\r\n79990000002; Привет\r\n".encode("cp1251"), "list.TXT")
    assert [(r.line, r.text) for r in source.rows] == [(1, None), (3, "Привет")]
    assert source.name == "list.TXT"


# ---- files: limits


def test_too_big_is_checked_before_anything_else() -> None:
    data = b"\x00" * (2 * 1024 * 1024)
    error = refusal(data)
    assert error.reason == Refusal.TOO_BIG
    assert error.detail == {"bytes": 2 * 1024 * 1024, "max": MAX_BYTES}
    assert refusal_text(error).startswith("The file is 2,048 KB; a list takes at most 1,024 KB.")


def test_too_many_rows_counts_them_all() -> None:
    data = "phone\n" + "".join(f"7999{i:07d}\n" for i in range(10_000))
    error = refusal(data.encode())
    assert error.reason == Refusal.TOO_MANY
    assert error.detail == {"rows": 10_000, "max": MAX_ROWS}
    assert refusal_text(error) == (
        "The list has 10,000 rows; a campaign takes at most 5,000. "
        "Split it and send the first part."
    )


def test_exactly_max_rows_is_accepted() -> None:
    data = "".join(f"7999{i:07d}\n" for i in range(MAX_ROWS)).encode()
    assert len(read(data).rows) == MAX_ROWS
    assert refusal(data, max_rows=MAX_ROWS - 1).detail == {"rows": MAX_ROWS, "max": MAX_ROWS - 1}


def test_a_megabyte_of_5000_rows_is_read_and_checked_fast() -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["phone", "name", "city", "note"])
    for i in range(MAX_ROWS):
        writer.writerow(
            [f"+7 (999) {i:03d}-{i % 100:02d}-{i % 97:02d}", f"Имя {i}", "Город", "x" * 150]
        )
    data = out.getvalue().encode()
    assert 0.9 * MAX_BYTES < len(data) <= MAX_BYTES
    gc.collect()  # a full collection of the test session's heap is not the parser's time
    started = time.perf_counter()
    checked = check(read(data), "Здравствуйте, {name} из {city}!")
    elapsed = time.perf_counter() - started
    assert len(checked.recipients) + len(checked.dropped) == MAX_ROWS
    assert elapsed < 0.5, elapsed


# ---- the dropped rows as a file, and the texts


def test_dropped_csv_round_trip() -> None:
    dropped = [
        Dropped(3, "12, x", DropReason.BAD_NUMBER.value),
        Dropped(7, '79990000001, "quoted", comma', DropReason.DUPLICATE.value),
        Dropped(9, "79990000002, Привет\u00a0мир", DropReason.TOO_LONG.value),
    ]
    data = dropped_csv(dropped, reason_text)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows == [
        ["line", "value", "reason"],
        ["3", "12, x", "not a phone number (3 to 30 digits)"],
        ["7", '79990000001, "quoted", comma', "the number is already in the list"],
        ["9", "79990000002, Привет\u00a0мир", "the text is over 300 characters"],
    ]


def test_every_reason_and_refusal_has_words() -> None:
    words = {reason_text(r) for r in DropReason}
    assert len(words) == len(DropReason)
    assert not words & {r.value for r in DropReason}
    for refused in Refusal:
        assert refusal_text(BulkRefused(refused)).strip()


@pytest.mark.parametrize(
    ("header", "row", "columns"),
    [
        ("Phone number,Name,SMS text", "79990000001,Ann,Hi", ("name",)),
        ("Номер телефона,Имя,Текст сообщения", "79990000001,Ann,Hi", ("имя",)),
        ("number of visits,phone,text", "3,79990000001,Hi", ("number of visits",)),
        ("first-name,mobile_phone,message", "Ann,79990000001,Hi", ("first-name",)),
    ],
)
def test_header_names_in_words(header: str, row: str, columns: tuple[str, ...]) -> None:
    source = read(f"{header}\n{row}\n".encode())
    assert source.columns == columns
    assert (source.rows[0].phone, source.rows[0].text) == ("79990000001", "Hi")


def test_an_unclosed_quote_is_refused_with_its_line() -> None:
    error = refusal(b'phone,text\n79990000001,ok\n79990000002,"never closed\n79990000003,x\n')
    assert error.reason == Refusal.BAD_CSV
    assert error.detail == {"line": 3}
    assert "line 3" in refusal_text(error)
    huge = refusal(b'phone,text\n79990000001,"' + b"a" * 200_000 + b'"\n')
    assert huge.reason == Refusal.BAD_CSV


def test_counts_in_the_users_locale() -> None:
    error = BulkRefused(Refusal.TOO_MANY, rows=10_000, max=5000)
    i18n = create_i18n()
    with i18n.context(), i18n.use_locale("ru"):
        assert "10\u00a0000" in refusal_text(error)
    assert "10,000" in refusal_text(error)


def test_russian_counts_agree_with_their_nouns() -> None:
    i18n = create_i18n()
    with i18n.context(), i18n.use_locale("ru"):
        assert "До 5\u00a0000 строк, файл — до 1 МБ." in bulk_texts.ask_source_text(5000, 1 << 20)
        assert "До 21 строки," in bulk_texts.ask_source_text(21, 1 << 20)
        assert reason_text(DropReason.BAD_NUMBER) == "не номер телефона (нужно от 3 до 30 цифр)"
        assert reason_text(DropReason.BACKTICK) == "в тексте есть обратная кавычка (`)"
        assert bulk_texts.cancel_question_text(7, 1).startswith(
            "Отменить рассылку №7? 1 SMS ещё ждёт"
        )
        assert bulk_texts.cancel_question_text(7, 3).startswith(
            "Отменить рассылку №7? 3 SMS ещё ждут"
        )
        assert (
            bulk_texts.ask_sim_text("Pixel") == "📶 С какой SIM-карты устройства Pixel отправить?"
        )
        assert bulk_texts.pace_text(1.5) == "одно SMS раз в 1,5 с на каждое устройство"
        spread = bulk_texts.devices_text("spread", ["A", "B"], None)
        assert spread == "по очереди на 2 устройствах: A, B, SIM по умолчанию"


def test_excel_separator_line() -> None:
    source = read(b"sep=;\r\nphone;name\r\n79990000001;Ann, Bob\r\n")
    assert source.columns == ("name",)
    assert [(r.line, r.fields) for r in source.rows] == [(3, {"name": "Ann, Bob"})]


def test_a_row_without_a_number_shows_its_other_cells() -> None:
    (dropped,) = check(read(b"phone,name,city\n,Ann,Tver\n"), "Hi").dropped
    assert dropped == Dropped(2, "Ann, Tver", DropReason.BAD_NUMBER.value)
