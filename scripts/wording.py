"""The wording rules `scripts/i18n.py check` applies: the glossary, "rent" as a noun, counts.

A message is its English text (one, or singular and plural) and its Russian forms. `problems()`
returns one line per broken rule; the glossary's rules are the table in `locales/GLOSSARY.md`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

GLOSSARY = Path(__file__).resolve().parent.parent / "locales" / "GLOSSARY.md"

PLACEHOLDER = re.compile(r"\{([a-z_]+)[^}]*\}")
LITERAL = re.compile(r"<(code|pre)>.*?</\1>", re.DOTALL)
TAG = re.compile(r"<[^>]*>|&lt;|&gt;|&amp;")
COMMAND = re.compile(r"(?<![\w/])/[a-z_]+")
RENT_NOUN = (
    re.compile(r"\brents\b", re.IGNORECASE),
    re.compile(r"\brent's\b", re.IGNORECASE),
    re.compile(
        r"\b(a|the|this|that|your|my|its|each|every|no|active|finished|daily|monthly|one|of)"
        r"\s+rent\b(?!\s+(a|the|it|one|another|again|numbers?)\b)",
        re.IGNORECASE,
    ),
    re.compile(r"\brent\s+(card|list|ends?|ended|ending|id|price|period|status|is|was)\b", re.I),
)
# Placeholders that hold a count: a noun after one must have plural forms.
COUNTS = frozenset(
    {"n", "count", "total", "minutes", "hours", "days", "seconds", "sent", "blocked", "rows"}
    | {"min", "m", "h", "s", "jobs", "active", "parked", "held", "backlog", "reserve", "pages"}
    | {"devices", "rents", "sms", "extra", "most", "lowest", "size", "kb", "max_kb", "max", "page"}
)
# Limits from the configuration are never 1, so an English plural after them is always right.
LIMITS = frozenset({"max", "min", "most", "size", "kb", "max_kb"})
# Durations are words already ("21 минута"); their case must not depend on what stands before them.
DURATIONS = frozenset({"left", "wait", "duration"})
RU_INVARIABLE = frozenset(
    {"мин", "ч", "с", "сек", "мс", "дн", "шт", "кб", "мб", "из", "и", "или", "в", "на", "по", "за"}
    | {"до", "от", "при"}
)
EN_INVARIABLE = frozenset({"is", "was", "has", "as", "of", "sms", "ms", "s"})
CYRILLIC_WORD = re.compile(r"\s*([а-яё]+)", re.IGNORECASE)
LATIN_WORD = re.compile(r"\s*([a-z]+)\b")
BEFORE_DURATION = re.compile(r"(^|[:(—–-])\s*$")


@dataclass(frozen=True)
class Rule:
    term: str
    english: re.Pattern[str] | None
    russian_must: re.Pattern[str] | None
    russian_never: re.Pattern[str] | None
    english_never: re.Pattern[str] | None


@dataclass(frozen=True)
class Message:
    english: tuple[str, ...]
    russian: tuple[str, ...]

    @property
    def plural(self) -> bool:
        return len(self.english) > 1


def load_rules(path: Path = GLOSSARY) -> list[Rule]:
    text = path.read_text(encoding="utf-8")
    table = text.split("<!-- rules -->", 1)[1].split("<!-- /rules -->", 1)[0]
    rows = [line for line in table.strip().splitlines() if line.startswith("|")][2:]
    return [_rule(row) for row in rows]


def _rule(row: str) -> Rule:
    cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]
    term, *patterns = cells
    english, must, never, en_never = (_pattern(p) for p in patterns)
    return Rule(term, english, must, never, en_never)


def _pattern(cell: str) -> re.Pattern[str] | None:
    cell = cell.strip("`")
    return re.compile(cell, re.IGNORECASE) if cell else None


def plain(text: str) -> str:
    """The words of a text: no placeholders, markup, literal code or commands."""
    return COMMAND.sub(" ", PLACEHOLDER.sub(" ", TAG.sub(" ", LITERAL.sub(" ", text))))


def problems(messages: Iterable[Message], rules: list[Rule]) -> list[str]:
    found: list[str] = []
    for message in messages:
        found += [f"{message.english[0]!r}: {p}" for p in _problems(message, rules)]
    return found


def _problems(message: Message, rules: list[Rule]) -> list[str]:
    english = [plain(t) for t in message.english]
    russian = [plain(t) for t in message.russian]
    found = [p for rule in rules for p in _glossary(rule, english, russian)]
    if any(pattern.search(t) for pattern in RENT_NOUN for t in english):
        found.append('"rent" as a noun: say "rental"')
    found += _placeholders(message)
    if not message.plural:
        found += _counts(message)
    return found


def _glossary(rule: Rule, english: list[str], russian: list[str]) -> Iterable[str]:
    said, must = rule.english, rule.russian_must
    used = said is not None and any(said.search(t) for t in english)
    if used and must and not all(must.search(t) for t in russian if t.strip()):
        yield f"{rule.term}: the Russian must say /{must.pattern}/"
    if rule.russian_never and any(rule.russian_never.search(t) for t in russian):
        yield f"{rule.term}: the Russian must not say /{rule.russian_never.pattern}/"
    if rule.english_never and any(rule.english_never.search(t) for t in english):
        yield f"{rule.term}: the English must not say /{rule.english_never.pattern}/"


def _placeholders(message: Message) -> Iterable[str]:
    english = {name for t in message.english for name in PLACEHOLDER.findall(t)}
    for text in message.russian:
        for name in set(PLACEHOLDER.findall(text)) - english:
            yield f"the Russian has {{{name}}}, the English does not"
        for match in PLACEHOLDER.finditer(text):
            if match.group(1) in DURATIONS and not BEFORE_DURATION.search(text[: match.start()]):
                yield f"{{{match.group(1)}}} must follow a colon or a dash (its case is fixed)"


def _counts(message: Message) -> Iterable[str]:
    for text in message.russian:
        for name in _counted(text, CYRILLIC_WORD, RU_INVARIABLE):
            yield f"{{{name}}} is a count: the Russian needs plural forms"
    for text in message.english:
        for name in _counted(text, LATIN_WORD, EN_INVARIABLE):
            yield f"{{{name}}} is a count: the English needs plural forms"


def _counted(text: str, word: re.Pattern[str], invariable: frozenset[str]) -> Iterable[str]:
    english = word is LATIN_WORD
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) not in COUNTS or (english and match.group(1) in LIMITS):
            continue
        after = word.match(plain(text[match.end() :]))
        noun = after.group(1).lower() if after else ""
        if noun and noun not in invariable and (not english or noun.endswith("s")):
            yield match.group(1)
