"""Gettext catalogs read straight from the `.po` files (compiled in memory with Babel)."""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
LANGUAGES = ("en", "ru")


class PoI18n(I18n):
    """aiogram's I18n, but a fresh clone needs no `pybabel compile` step."""

    @contextmanager
    def context(self) -> Iterator[I18n]:
        # Each subclass of aiogram's context mixin gets its own context variable; aiogram's
        # `gettext` reads I18n's, so register there.
        token = I18n.set_current(self)
        try:
            yield self
        finally:
            I18n.reset_current(token)

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for folder in sorted(self.path.iterdir()):
            po_path = folder / "LC_MESSAGES" / f"{self.domain}.po"
            if po_path.is_file():
                translations[folder.name] = compile_po(po_path)
        return translations


def compile_po(po_path: Path) -> gettext.GNUTranslations:
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=po_path.parent.parent.name)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def create_i18n(path: Path = LOCALES_DIR) -> PoI18n:
    return PoI18n(path=path, default_locale="en", domain=DOMAIN)
