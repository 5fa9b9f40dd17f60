"""The wording check: the glossary's terms, "rent" as a noun, counts and durations in Russian."""

from __future__ import annotations

import pytest

from scripts import i18n as catalogs
from scripts.wording import Message, load_rules, problems

RULES = load_rules()


def check(english: str | tuple[str, ...], *russian: str) -> list[str]:
    forms = english if isinstance(english, tuple) else (english,)
    return problems([Message(forms, russian)], RULES)


def test_the_glossary_has_a_rule_for_every_term_the_issue_names() -> None:
    terms = {rule.term for rule in RULES}
    wanted = {
        "rental",
        "API token",
        "disconnect",
        "device",
        "code",
        "wake up",
        "remove from the bot",
    }
    assert wanted | {"delete from GoSMS", "ID", "plain English"} <= terms


@pytest.mark.parametrize(
    "english",
    [
        "My rents",
        "Open the rent",
        "Rent card",
        "This rent can't be refunded.",
        "Only a daily rent can be moved to a longer plan.",
        "I was restarted while refunding your rent.",
        "The rent went through:",
        "Refund the rent of {phone}?",
    ],
)
def test_rent_as_a_noun_is_refused(english: str) -> None:
    assert any("noun" in p for p in check(english, "Аренда"))


@pytest.mark.parametrize(
    ("english", "russian"),
    [
        ("Rent a number", "Арендовать номер"),
        ("Rent again", "Арендовать снова"),
        ("Press a plan to rent a number.", "Выберите тариф, чтобы арендовать номер."),
        ("Look at /rents before renting again.", "Загляните в /rents."),
        ("Rent for {price}", "Арендовать за {price}"),
        ("My rentals", "Мои аренды"),
        ("GotSMS: rent a number for codes", "GotSMS: номер для кодов"),
    ],
)
def test_rent_as_a_verb_and_the_rents_command_pass(english: str, russian: str) -> None:
    assert check(english, russian) == []


def test_a_token_is_never_an_api_key() -> None:
    assert check("GoSMS did not accept your API key.", "GoSMS не принял ваш ключ API.") == [
        "'GoSMS did not accept your API key.': API token: the Russian must not say"
        " /(?<![а-яё])ключ/",
        "'GoSMS did not accept your API key.': API token: the English must not say"
        " /\\bAPI keys?\\b/",
    ]
    assert check("GoSMS did not accept your API token.", "GoSMS не принял API-токен.") == []


def test_a_term_translated_another_way_is_refused() -> None:
    found = check("Pick a device.", "Выберите телефон.")
    assert found == ["'Pick a device.': device: the Russian must say /устройств/"]


def test_disconnecting_is_never_forgetting_or_logging_out() -> None:
    assert check("Log out", "Отключить")
    assert check("Disconnect", "Забыть")
    assert check("Which token should I disconnect?", "Какой токен отключить?") == []


def test_id_is_written_in_capitals_in_both_languages() -> None:
    assert check("Send the device id.", "Пришлите ID устройства.")
    assert check("Send the device ID.", "Пришлите id устройства.")
    assert check("Send the device ID.", "Пришлите ID устройства.") == []


def test_jargon_and_till_are_refused_in_english() -> None:
    assert check("Active till {end}", "Действует до {end}")
    assert check("24 hex characters", "24 символа")
    assert check("Active until {end}", "Действует до {end}") == []


def test_a_count_before_a_russian_noun_needs_plural_forms() -> None:
    assert check("{count} devices", "{count} устройств") == [
        "'{count} devices': {count} is a count: the Russian needs plural forms",
        "'{count} devices': {count} is a count: the English needs plural forms",
    ]
    plural = ("{count} device", "{count} devices")
    assert check(plural, "{count} устройство", "{count} устройства", "{count} устройств") == []


def test_a_count_after_a_colon_or_before_a_unit_needs_no_plural() -> None:
    assert check("Devices: {count}", "Устройств: {count}") == []
    assert check("{seconds} s", "{seconds} с") == []
    assert check("{sent} of {total} sent", "Отправлено: {sent} из {total}") == []


def test_a_limit_keeps_its_english_plural_but_not_its_russian_one() -> None:
    assert check("Use at most {max} characters.", "Не больше {max} символов.") == [
        "'Use at most {max} characters.': {max} is a count: the Russian needs plural forms"
    ]
    assert check("Use at most {max} characters.", "Символов — не больше {max}.") == []


def test_a_duration_stands_after_a_colon_or_a_dash_in_russian() -> None:
    english = "Your number ends in {left}."
    assert check(english, "Номер закончится через {left}.") == [
        f"{english!r}: {{left}} must follow a colon or a dash (its case is fixed)"
    ]
    assert check(english, "Аренда номера скоро закончится, осталось: {left}.") == []
    assert check(english, "Аренда номера закончится — осталось {left}.")


def test_russian_cannot_invent_a_placeholder() -> None:
    assert check("Sent.", "Отправлено: {count}.") == [
        "'Sent.': the Russian has {count}, the English does not"
    ]


def test_markup_placeholders_and_commands_are_not_words() -> None:
    assert check("<b>{name}</b>: /devices", "<b>{name}</b>: /devices") == []
    assert check("Send /logout again.", "Отправьте /logout ещё раз.") == []
    assert check("a <code>number</code> column", "столбец <code>number</code>") == []


def test_a_seed_replaces_the_catalogs_russian_and_keeps_it_where_it_has_none() -> None:
    seed = {"Open rental": "Открыть аренду", "{n} code": ["{n} код", "{n} кода", "{n} кодов"]}
    assert catalogs._seeded("Open rental", "Открыть", seed) == "Открыть аренду"
    assert catalogs._seeded("Other", "Другое", seed) == "Другое"
    forms = catalogs._seeded(("{n} code", "{n} codes"), ("", "", ""), seed)
    assert forms == ("{n} код", "{n} кода", "{n} кодов")
    assert catalogs._seeded(("{n} day", "{n} days"), "старый", seed) == ("", "", "")


def test_the_catalogs_follow_every_rule() -> None:
    assert catalogs.wording_problems() == []
