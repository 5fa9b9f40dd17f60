"""Every message has a Russian translation that keeps its placeholders and valid HTML."""

from __future__ import annotations

import re

import pytest

from bot.i18n import create_i18n
from scripts import i18n as catalogs
from tests.fakes.telegram import parse_html

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
TAG = re.compile(r"</?[a-z]+")
MESSAGES = [str(m.id) for m in catalogs.extract() if m.id]


def test_every_message_has_a_russian_translation() -> None:
    assert catalogs.missing("ru") == []


def test_the_catalogs_hold_every_message_of_the_code() -> None:
    assert len(MESSAGES) > 50
    english = {str(m.id) for m in catalogs.read("en") if m.id}
    assert set(MESSAGES) <= english, "run: python scripts/i18n.py update"


@pytest.mark.parametrize("message", MESSAGES)
def test_translation_keeps_placeholders_and_markup(message: str) -> None:
    russian = create_i18n().gettext(message, locale="ru")
    assert sorted(PLACEHOLDER.findall(russian)) == sorted(PLACEHOLDER.findall(message))
    assert sorted(TAG.findall(russian)) == sorted(TAG.findall(message))
    filled = PLACEHOLDER.sub("x", russian)
    parse_html(filled)  # raises on markup Telegram would refuse
