"""GoSMS input rules: checked here, before any request, each refusal saying what to fix."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

PHONE_MIN, PHONE_MAX = 3, 30
TEXT_MAX = 300
SEARCH_MAX = 100
PAGE_SIZE = 10
DELETE_AFTER = 300  # an SMS can be deleted only 5 minutes after it was created
OFFLINE_AFTER = 300  # a device reports every 5 minutes; silent longer means offline
MAX_SAVED_DEVICES = 20

PHONE_CHARS = frozenset(string.digits + "+()-. ")
_PHONE_PREFIX = re.compile(r"[+\d()\-. ]+")
_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class InvalidInput(ValueError):
    """A refusal for the user: `text` is localized and says exactly what to fix."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class PhoneProblem(StrEnum):
    EMPTY = "empty"
    LETTERS = "letters"
    CHARACTERS = "characters"
    SHORT = "short"
    LONG = "long"


class TextProblem(StrEnum):
    EMPTY = "empty"
    LONG = "long"
    BACKTICK = "backtick"


def phone_digits(raw: str) -> tuple[str, PhoneProblem | None]:
    """The rule of every GoSMS phone, pure (no texts, safe off the event loop): the digits
    of `raw`, and what is wrong with it or None."""
    value = raw.strip()
    if not value:
        return "", PhoneProblem.EMPTY
    if any(c.isalpha() for c in value):
        return "", PhoneProblem.LETTERS
    if not PHONE_CHARS.issuperset(value):
        return "", PhoneProblem.CHARACTERS
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) < PHONE_MIN:
        return digits, PhoneProblem.SHORT
    if len(digits) > PHONE_MAX:
        return digits, PhoneProblem.LONG
    return digits, None


def text_problem(text: str) -> TextProblem | None:
    """The rule of every SMS text, pure: what is wrong with `text` (already stripped) or None."""
    if not text:
        return TextProblem.EMPTY
    if len(text) > TEXT_MAX:
        return TextProblem.LONG
    if "`" in text:
        return TextProblem.BACKTICK
    return None


def normalize_phone(raw: str) -> str:
    """`+7 (999) 123-45-67` → `79991234567`; raises InvalidInput with what to fix."""
    digits, problem = phone_digits(raw)
    if problem is None:
        return digits
    if problem == PhoneProblem.EMPTY:
        raise InvalidInput(
            _("The phone number is missing: send it in digits, like +7 999 123-45-67.")
        )
    if problem == PhoneProblem.LETTERS:
        raise InvalidInput(
            _("The phone number must not contain letters: send digits only, like +7 999 123-45-67.")
        )
    if problem == PhoneProblem.CHARACTERS:
        raise InvalidInput(
            _(
                "The phone number may contain only digits, spaces, +, brackets and dashes. "
                "Send it like +7 999 123-45-67."
            )
        )
    if problem == PhoneProblem.SHORT:
        raise InvalidInput(
            _(
                "The phone number is too short: it needs {min} to {max} digits but has {count}."
            ).format(min=PHONE_MIN, max=PHONE_MAX, count=len(digits))
        )
    raise InvalidInput(
        _("The phone number is too long: it needs {min} to {max} digits but has {count}.").format(
            min=PHONE_MIN, max=PHONE_MAX, count=len(digits)
        )
    )


def check_text(raw: str) -> str:
    """The SMS text, stripped of surrounding blanks: 1–300 characters, no backtick."""
    text = raw.strip()
    problem = text_problem(text)
    if problem is None:
        return text
    if problem == TextProblem.EMPTY:
        raise InvalidInput(_("The text is empty: send 1 to {max} characters.").format(max=TEXT_MAX))
    if problem == TextProblem.LONG:
        raise InvalidInput(
            ngettext(
                "The text is too long: the limit is {max} characters, and it has {count}. "
                "Shorten it by {extra} character.",
                "The text is too long: the limit is {max} characters, and it has {count}. "
                "Shorten it by {extra} characters.",
                len(text) - TEXT_MAX,
            ).format(count=len(text), max=TEXT_MAX, extra=len(text) - TEXT_MAX)
        )
    raise InvalidInput(_("GoSMS does not accept the backtick (`): replace it, for example with '."))


def split_one_liner(args: str) -> tuple[str, str]:
    """`/send` arguments → (phone as typed, text).

    The text may go on its own line. Otherwise the phone is the longest leading run of phone
    characters (digits, spaces, + ( ) - .), so `+7 (999) 123-45-67 Hello` splits after 67; a first
    word mixing digits and letters is taken as a (bad) phone so its refusal says what is wrong.
    """
    args = args.strip()
    if "\n" in args:
        phone, text = args.split("\n", 1)
        return phone.strip(), text.strip()
    match = _PHONE_PREFIX.match(args)
    prefix = match.group(0) if match else ""
    runs_into_text = prefix != args and not prefix[-1:].isspace()
    if not any(c.isdigit() for c in prefix) or runs_into_text:
        # no phone at the start, or it runs straight into letters ("7999abc Hello")
        first, _sep, rest = args.partition(" ")
        return first, rest.strip()
    return prefix.strip(), args[len(prefix) :].strip()


def is_device_id(value: str) -> bool:
    """A 24-hex ObjectID (older docs) or a UUID (newer docs)."""
    return bool(_OBJECT_ID.fullmatch(value) or _UUID.fullmatch(value))


def check_device_id(raw: str) -> str:
    value = raw.strip()
    if not is_device_id(value):
        raise InvalidInput(
            _(
                "That's not a device ID. Copy it from the GoSMS panel → My devices (it looks "
                "like <code>6622a8bb…</code>)."
            )
        )
    return value.lower()


def check_search(raw: str | None) -> str:
    value = (raw or "").strip()
    if len(value) > SEARCH_MAX:
        raise InvalidInput(
            _("The search is too long: use at most {max} characters.").format(max=SEARCH_MAX)
        )
    return value


def pages(total: int, size: int = PAGE_SIZE) -> int:
    return max(1, -(-total // size))


def now_utc() -> datetime:
    return datetime.now(UTC)


def delete_wait(time_create: int, now: datetime | None = None) -> int:
    """Seconds until an SMS created at `time_create` (unix) may be deleted; 0 if it may now."""
    moment = (now or now_utc()).timestamp()
    return max(0, int(time_create + DELETE_AFTER - moment + 0.999))


def seconds_since(moment: datetime | None, now: datetime | None = None) -> int | None:
    if moment is None:
        return None
    when = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return max(0, int(((now or now_utc()) - when).total_seconds()))


@dataclass(frozen=True)
class Sim:
    """A SIM choice: slot 1 → `to_sim` 0, slot 2 → 1, None → the device's default."""

    slot: int | None

    @property
    def to_sim(self) -> int | None:
        return None if self.slot is None else self.slot - 1
