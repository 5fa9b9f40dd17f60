"""Keep the gettext catalogs in step with the code.

python scripts/i18n.py update            # extract messages, add new ones to locales/*/messages.po
python scripts/i18n.py update SEED.json  # the same, then take Russian texts from SEED.json
python scripts/i18n.py check             # untranslated messages and broken wording rules (exit 1)

A seed maps the English text (the singular of a plural) to its Russian, or to the list of the three
Russian plural forms; a seed's text replaces the catalog's.
"""

from __future__ import annotations

import fcntl
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import wording

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
            if message.id and locale in TRANSLATED:
                message.string = _seeded(message.id, message.string, seed or {})
                if seed and _singular(message.id) in seed:
                    message.flags.discard("fuzzy")  # a text now plural is fuzzy until seeded
        catalog.obsolete.clear()
        catalog.fuzzy = False
        write(locale, catalog)


def _in_catalog(locale: str) -> Iterator[tuple[Message, Message | None]]:
    """Each message of the code with its entry in `locale`'s catalog (None: not there)."""
    catalog = read(locale)
    for message in extract():
        if message.id:
            yield message, catalog.get(message.id)


def missing(locale: str = "ru") -> list[str]:
    """Messages used in the code that have no translation (or a fuzzy one) in `locale`."""
    return [
        _singular(message.id)
        for message, translated in _in_catalog(locale)
        if translated is None or not _translated(translated.string) or translated.fuzzy
    ]


Text = str | tuple[str, ...] | list[str] | None


def _singular(message_id: Text) -> str:
    return message_id if isinstance(message_id, str) else str(message_id[0]) if message_id else ""


def _translated(string: Text) -> bool:
    """A plural counts only when every form is there."""
    return all(string) if isinstance(string, tuple | list) else bool(string)


def _seeded(message_id: Text, current: Text, seed: dict[str, Any]) -> Text:
    """The seed's text where it has one of the right shape, else the catalog's."""
    value = seed.get(_singular(message_id))
    if isinstance(message_id, str):
        return str(value) if isinstance(value, str) and value else current
    if isinstance(value, list) and len(value) == 3 and all(value):
        return tuple(value)
    return current if isinstance(current, tuple | list) else ("", "", "")


def wording_problems(locale: str = "ru") -> list[str]:
    """The glossary's and the check's rules broken by the translated messages of `locale`."""
    messages = [
        wording.Message(_forms(message.id), _forms(translated.string))
        for message, translated in _in_catalog(locale)
        if translated is not None and _translated(translated.string)
    ]
    return wording.problems(messages, wording.load_rules())


def _forms(text: Text) -> tuple[str, ...]:
    return tuple(str(t) for t in text) if isinstance(text, tuple | list) else (str(text or ""),)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        seed = json.loads(Path(argv[2]).read_text()) if len(argv) > 2 else None
        update(seed)
        return 0
    gaps = [m for locale in TRANSLATED for m in missing(locale)]
    for message in gaps:
        print(f"untranslated: {message!r}")
    broken = wording_problems()
    for problem in broken:
        print(problem)
    if broken:
        print(f"{len(broken)} wording problems: the rules are in locales/GLOSSARY.md")
    return 1 if gaps or broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
