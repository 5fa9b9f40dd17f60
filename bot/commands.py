"""The command list: one source for /help and the localized command menus."""

from __future__ import annotations


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated where it is shown."""
    return message


COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("main menu")),
    ("help", N_("list of commands")),
    ("token", N_("connect a GoSMS or GotSMS token")),
    ("balance", N_("GotSMS: your balance")),
    ("rent", N_("GotSMS: rent a number for codes")),
    ("rents", N_("GotSMS: your rented numbers")),
    ("codes", N_("GotSMS: unread codes")),
    ("messages", N_("GotSMS: message history")),
    ("prices", N_("GotSMS: public price list")),
    ("services", N_("GotSMS: search services")),
    ("plans", N_("GotSMS: rental plans with filters")),
    ("send", N_("GoSMS: send an SMS through your phone")),
    ("bulk", N_("GoSMS: one text to many numbers, from a list or a file")),
    ("sms", N_("GoSMS: SMS history and search")),
    ("devices", N_("GoSMS: your devices")),
    ("notify", N_("choose which notifications you get")),
    ("logout", N_("disconnect a token")),
    ("forget", N_("delete everything the bot stores about you")),
    ("lang", N_("choose the language")),
    ("cancel", N_("leave the current dialog")),
)
