"""The command list: one source for /help and the localized command menus."""

from __future__ import annotations


def N_(message: str) -> str:
    return message


COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("main menu")),
    ("help", N_("every command, one line each")),
    ("token", N_("connect a GoSMS or GotSMS token")),
    ("logout", N_("forget a token")),
    ("lang", N_("choose the language")),
    ("cancel", N_("leave the current dialog")),
)
