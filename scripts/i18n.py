"""Keep the gettext catalogs in step with the code.

python scripts/i18n.py update    # extract messages, add new ones to locales/*/messages.po
python scripts/i18n.py check     # list messages without a Russian translation (exit 1 if any)
"""

from __future__ import annotations

import fcntl
import json
import sys
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"
KEYWORDS = {"_": None, "N_": None, "__": None, "gettext": None, "ngettext": (1, 2)}
TRANSLATED = ("ru",)


def extract() -> Catalog:
    catalog = Catalog(project="sms-desk", charset="utf-8")
    method_map = [("**.py", "python")]
    for filename, lineno, message, comments, _context in extract_from_dir(
        ROOT / "bot", method_map=method_map, keywords=KEYWORDS
    ):
        catalog.add(message, locations=[(f"bot/{filename}", lineno)], auto_comments=comments)
    return catalog


def po_path(locale: str) -> Path:
    return LOCALES / locale / "LC_MESSAGES" / "messages.po"


def read(locale: str) -> Catalog:
    path = po_path(locale)
    if not path.exists():
        return Catalog(locale=locale, project="sms-desk")
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def write(locale: str, catalog: Catalog) -> None:
    path = po_path(locale)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, omit_header=False, sort_output=True, no_location=True, width=0)


def update(seed: dict[str, Any] | None = None) -> None:
    LOCALES.mkdir(exist_ok=True)
    with (LOCALES / ".update.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several people may update the catalogs at once
        _update(seed)


def _update(seed: dict[str, Any] | None) -> None:
    template = extract()
    for locale in ("en", *TRANSLATED):
        catalog = read(locale)
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        for message in catalog:
            if message.id and seed and locale in TRANSLATED and not _translated(message.string):
                message.string = _from_seed(message.id, seed)
        catalog.obsolete.clear()
        catalog.fuzzy = False
        write(locale, catalog)


def missing(locale: str = "ru") -> list[str]:
    """Messages used in the code that have no translation (or a fuzzy one) in `locale`."""
    catalog = read(locale)
    result = []
    for message in extract():
        if not message.id:
            continue
        translated = catalog.get(message.id)
        if translated is None or not _translated(translated.string) or translated.fuzzy:
            result.append(_singular(message.id))
    return result


Text = str | tuple[str, ...] | list[str] | None


def _singular(message_id: Text) -> str:
    return message_id if isinstance(message_id, str) else str(message_id[0]) if message_id else ""


def _translated(string: Text) -> bool:
    """A plural counts only when every form is there."""
    return all(string) if isinstance(string, tuple | list) else bool(string)


def _from_seed(message_id: Text, seed: dict[str, Any]) -> str | tuple[str, ...]:
    """Seeds map the (singular) English text to the Russian text, or to the list of its forms."""
    value = seed.get(_singular(message_id), "")
    if isinstance(message_id, str):
        return str(value)
    return tuple(value) if isinstance(value, list) else ("", "", "")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        seed = json.loads(Path(argv[2]).read_text()) if len(argv) > 2 else None
        update(seed)
        return 0
    gaps = [m for locale in TRANSLATED for m in missing(locale)]
    for message in gaps:
        print(f"untranslated: {message!r}")
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
