"""What the owner and the group are told about sharing a rent's codes with a group. A group
is told about codes and numbers only: never balances, tokens or other rents."""

from __future__ import annotations

from html import escape

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.api.gotsms import Rent
from bot.db.models import RentWatch


def group_name(title: str) -> str:
    return "«" + escape(title or _("a group")) + "»"


def shared_line(watch: RentWatch | None) -> str:
    if watch is None or watch.group_chat_id is None:
        return ""
    return "👥 " + _("Codes also go to {group}.").format(group=group_name(watch.group_title))


def groups_text(rent: Rent, count: int) -> str:
    phone = escape(rent.phone)
    if count:
        return _(
            "👥 Which group gets the codes of {phone}? Its members see the codes and the number, "
            "nothing else, and cannot act on the rental."
        ).format(phone=phone)
    return _(
        "👥 No group is linked yet. Add me to the group, send /link there, and come back to "
        "this card: the group will be offered here. Its members will see the codes of {phone} "
        "and the number, nothing else."
    ).format(phone=phone)


def linked_note(title: str) -> str:
    return "👥 " + _("Codes of this rental now go to {group} too.").format(group=group_name(title))


def stopped_note(title: str) -> str:
    return "🚫 " + _("Codes of this rental no longer go to {group}.").format(
        group=group_name(title)
    )


def not_member_note(title: str) -> str:
    return "❌ " + _(
        "You are not a member of {group}, so the codes cannot go there. Join it and try again."
    ).format(group=group_name(title))


def bot_gone_note(title: str) -> str:
    return "❌ " + _(
        "I am not in {group} any more, so it was unlinked. Add me again and send /link there."
    ).format(group=group_name(title))


def offer_gone_note() -> str:
    return "❌ " + _("That group is not linked any more. Send /link in it again.")


def group_linked_text(service: str, phone: str) -> str:
    return "🔗 " + _("Codes of the {service} number {phone} will come here from now on.").format(
        service=escape(service), phone=escape(phone)
    )


def group_stopped_text(phone: str) -> str:
    return "🔓 " + _("Codes of {phone} no longer come here.").format(phone=escape(phone))


def group_offered_text(username: str) -> str:
    return "✅ " + _(
        "Linked. To share a rental's codes here, open its card in our private chat "
        "(@{username}, /rents) and press «Share codes with a group». Only codes come here, "
        "nothing else from your account."
    ).format(username=username)


def owner_offered_text(title: str) -> str:
    return "👥 " + _(
        "{group} is linked. Open a rental's card with /rents and press «Share codes with a "
        "group» to send its codes there."
    ).format(group=group_name(title))


def owner_unreachable_text(username: str) -> str:
    return _("I could not write to you privately: open @{username} and send /start.").format(
        username=username
    )


def link_refused_text(username: str) -> str:
    return "🔒 " + _(
        "Only someone who uses me with a GotSMS token can link this group, for their own "
        "rentals: open @{username} in a private chat first. Nothing was changed."
    ).format(username=username)


def not_in_group_text() -> str:
    return "🔒 " + _("Only a member of this group can link it. Nothing was changed.")


def check_failed_text() -> str:
    return "⚠️ " + _("I could not check who is in this group just now. Try again in a minute.")


def unlinked_text(count: int) -> str:
    if count == 0:
        return "🔓 " + _("Unlinked: this group is no longer offered on your rental cards.")
    return "🔓 " + ngettext(
        "Unlinked: codes of {count} rental no longer come here.",
        "Unlinked: codes of {count} rentals no longer come here.",
        count,
    ).format(count=count)


def unlink_refused_text() -> str:
    return "🔒 " + _(
        "Nothing of yours is linked here: only the one who linked a rental can unlink it. "
        "Nothing was changed."
    )


def greeting_text() -> str:
    return "👋 " + _(
        "Hi! To get a rental's codes in this group, its owner sends /link here. The group "
        "sees codes and numbers only."
    )


def private_link_text() -> str:
    return "👥 " + _(
        "/link works in a group: add me to the group, send /link there, then open a rental's "
        "card (/rents) and press «Share codes with a group»."
    )


def private_unlink_text() -> str:
    return "👥 " + _(
        "To unlink a group, send /unlink in that group, or press «Stop sharing» on a rental's card."
    )


def rent_gone_text() -> str:
    return _("This rental is not in your list any more.")
