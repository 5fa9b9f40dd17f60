"""How each kind of push looks. Rendered at send time, in the user's language, HTML-escaped."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Any

from aiogram.types import CopyTextButton, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.api.gosms import SmsStatus
from bot.api.gotsms import Rent
from bot.campaigns import card as campaign
from bot.campaigns.card import StopReason
from bot.campaigns.report import report_name
from bot.db.models import Service
from bot.keyboards import gosms as gosms_kb
from bot.keyboards import gotsms as gotsms_kb
from bot.keyboards.bulk import card_keyboard
from bot.keyboards.callbacks import BulkAction, BulkCb
from bot.keyboards.gosms import sms_card as sms_card_keyboard
from bot.keyboards.gotsms import rent_ending
from bot.middlewares.tokens import reconnect_hint
from bot.texts import money
from bot.texts.bulk import card_text
from bot.texts.gosms import sms_card, status_label
from bot.texts.gotsms import rent_done

CODE_IN_TEXT = re.compile(r"(?<![\d-])(\d{4,8})(?![\d-])")
MAX_BODY = 3000


@dataclass(frozen=True)
class Document:
    """A file sent with a push: the push's text is its caption."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class Push:
    text: str
    reply_markup: InlineKeyboardMarkup | None = None
    edit_message_id: int | None = None
    document: Document | None = None
    attach: str | None = None  # a file the sender reads from the database (its name)


Renderer = Callable[[Mapping[str, Any]], Push]


def extract_code(text: str) -> str | None:
    """The first standalone run of 4–8 digits, the usual shape of a verification code."""
    match = CODE_IN_TEXT.search(text)
    return match.group(1) if match else None


def code_push(payload: Mapping[str, Any]) -> Push:
    notes = (
        [_("↩️ This rental was refunded before this code came.")] if payload.get("refunded") else []
    )
    return code_message(payload, _("🔑 New code from <b>{service}</b> on {phone}"), notes)


def code_message(payload: Mapping[str, Any], heading: str, notes: list[str]) -> Push:
    """A code: `heading` (with {service} and {phone}), the code, `notes`, the SMS text, and the
    code on a copy button."""
    body = str(payload.get("body") or "")
    code = payload.get("code") or extract_code(body)
    service = escape(str(payload.get("service") or "GotSMS"))
    phone = escape(str(payload.get("phone") or ""))
    lines = [heading.format(service=service, phone=phone)]
    if code:
        lines.append(f"<code>{escape(str(code))}</code>")
    lines += notes
    if body:
        lines += ["", escape(body[:MAX_BODY])]
    markup = None
    if code:
        button = InlineKeyboardButton(
            text=_("📋 Copy {code}").format(code=code), copy_text=CopyTextButton(text=str(code))
        )
        markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
    return Push("\n".join(lines), markup)


def unread_note_push(payload: Mapping[str, Any]) -> Push:
    count = int(payload.get("count", 0))
    text = ngettext(
        "📥 You have {count} unread code in GotSMS — see /codes. New codes will come here "
        "automatically.",
        "📥 You have {count} unread codes in GotSMS — see /codes. New codes will come here "
        "automatically.",
        count,
    ).format(count=count)
    return Push(text)


def _left(iso: str | None) -> str:
    if not iso:
        return "?"
    minutes = max(0, int((datetime.fromisoformat(iso) - datetime.now(UTC)).total_seconds() // 60))
    if minutes < 90:
        return ngettext("{n} minute", "{n} minutes", minutes).format(n=minutes)
    hours = round(minutes / 60)
    return ngettext("{n} hour", "{n} hours", hours).format(n=hours)


def rent_expiring_push(payload: Mapping[str, Any]) -> Push:
    text = _(
        "⏳ The rental of {phone} ({service}) ends soon: {left} left. Auto-renew is off."
    ).format(
        service=escape(str(payload.get("service") or "")),
        phone=escape(str(payload.get("phone") or "")),
        left=_left(payload.get("active_till")),
    )
    markup = rent_ending(str(payload["rent_id"]), can_renew=bool(payload.get("monthly")))
    return Push(text, markup)


def device_connection_push(payload: Mapping[str, Any]) -> Push:
    name = escape(str(payload.get("name") or payload.get("device_id") or ""))
    if not payload.get("bad"):
        return Push(_("📶 Your device {name} is back online.").format(name=name))
    seen = payload.get("last_online")
    if not seen:
        return Push(_("📴 Your device {name} has never been online.").format(name=name))
    minutes = int((datetime.now(UTC) - datetime.fromisoformat(seen)).total_seconds() // 60)
    return Push(
        ngettext(
            "📴 Your device {name} is offline: last online {n} minute ago.",
            "📴 Your device {name} is offline: last online {n} minutes ago.",
            minutes,
        ).format(name=name, n=minutes)
    )


def device_battery_push(payload: Mapping[str, Any]) -> Push:
    return Push(
        _("🪫 Your device {name}: battery at {battery} % and not charging.").format(
            name=escape(str(payload.get("name") or payload.get("device_id") or "")),
            battery=payload.get("battery"),
        )
    )


def low_balance_push(payload: Mapping[str, Any]) -> Push:
    return Push(
        _("💸 Your GotSMS balance has dropped below {threshold}: it is {balance} now.").format(
            balance=money(Decimal(str(payload.get("balance", "0")))),
            threshold=money(Decimal(str(payload.get("threshold", "0")))),
        )
    )


def sms_card_push(payload: Mapping[str, Any]) -> Push:
    sms_id = str(payload["sms_id"])
    text = sms_card(
        sms_id=sms_id,
        phone=str(payload.get("phone") or ""),
        text=str(payload.get("text") or ""),
        status=int(payload["status"]),
        device_name=payload.get("device_name") or None,
        device_id=payload.get("device_id") or None,
        to_sim=payload.get("to_sim"),
    )
    return Push(text, sms_card_keyboard(sms_id), edit_message_id=int(payload["message_id"]))


def sms_final_push(payload: Mapping[str, Any]) -> Push:
    phone = escape(str(payload.get("phone") or ""))
    if int(payload.get("status", 0)) == SmsStatus.DELIVERED:
        return Push(_("✅ Your SMS to {phone} was delivered.").format(phone=phone))
    return Push(
        _("❌ Your SMS to {phone} failed: {status}.").format(
            phone=phone, status=status_label(int(payload.get("status", 0)))
        )
    )


def interrupted_push(payload: Mapping[str, Any]) -> Push:
    """An action the bot was killed in the middle of (bot/poller/recovery.py)."""
    action = str(payload.get("action") or "")
    outcome = payload.get("outcome")
    if action == gotsms_kb.RENT and outcome == "done" and isinstance(payload.get("rent"), dict):
        rent = Rent.model_validate(payload["rent"])
        head = _("⚠️ I was restarted while renting your number. The rental went through:")
        return Push(head + "\n\n" + rent_done(rent), gotsms_kb.rent_result(rent))
    if action == gotsms_kb.RENT and outcome == "not_done":
        return Push(
            _(
                "⚠️ I was restarted while renting your number, and the rental did not go "
                "through: nothing was charged. Send /rent to try again."
            )
        )
    phone = escape(str(payload.get("phone") or ""))
    texts = {
        gotsms_kb.RENT: _(
            "⚠️ I was restarted while renting your number and could not check whether the "
            "rental went through. Look at /rents before renting again."
        ),
        gotsms_kb.REFUND: _(
            "⚠️ I was restarted while refunding your rental and cannot tell whether the "
            "refund went through. Look at /rents before trying again."
        ),
        gotsms_kb.MOVE: _(
            "⚠️ I was restarted while moving your rental to a longer plan and cannot tell "
            "whether it went through. Look at /rents before trying again."
        ),
        gosms_kb.SEND: _(
            "⚠️ I was restarted while sending your SMS to {phone} and cannot tell whether it "
            "went out. Look at /sms before sending it again."
        ).format(phone=phone),
        gosms_kb.SMS_DELETE: _(
            "⚠️ I was restarted while deleting your SMS and cannot tell whether it was "
            "deleted. Look at /sms."
        ),
        gosms_kb.DEVICE_DELETE: _(
            "⚠️ I was restarted while deleting your device from GoSMS and cannot tell "
            "whether it was deleted. Look at /devices."
        ),
        "logout": _(
            "⚠️ I was restarted while disconnecting your token and cannot tell whether it "
            "is done. /start shows which tokens are connected; send /logout again if needed."
        ),
    }
    default = _(
        "⚠️ I was restarted while doing what you confirmed a moment ago, so it may not be "
        "done. /start shows what is connected; please check and try again."
    )
    return Push(texts.get(action, default))


def token_broken_push(payload: Mapping[str, Any]) -> Push:
    """The stored token cannot be decrypted: its polls stop until it is connected again."""
    return Push("🔑 " + reconnect_hint(Service(str(payload["service"]))))


def campaign_card_push(payload: Mapping[str, Any]) -> Push:
    """The progress card, edited in place (a card not yet shown is sent as a new message)."""
    message_id = payload.get("message_id")
    edit = int(message_id) if message_id is not None else None
    return Push(card_text(payload), card_keyboard(payload), edit_message_id=edit)


def _campaign(payload: Mapping[str, Any]) -> str:
    head = _("<b>Campaign #{id}</b>").format(id=int(payload["campaign_id"]))
    source = str(payload.get("source") or "")
    return head + (f" · {escape(source)}" if source else "")


def _stop_advice(reason: str) -> str:
    texts: dict[str, str] = {
        StopReason.REVOKED: _(
            "GoSMS no longer accepts your API token: it was turned off or deleted. Connect a "
            "working one with /token, then press Resume."
        ),
        StopReason.TARIFF: _(
            "The monthly limit of your GoSMS plan is reached. Raise it in the GoSMS panel, "
            "then press Resume."
        ),
        StopReason.NO_DEVICE: _(
            "No device is turned on to send it. Turn one on in the GoSMS app, then press Resume."
        ),
        StopReason.BLOCKED: _(
            "Your GoSMS account is blocked. Contact GoSMS support; once it is unblocked, press "
            "Resume."
        ),
        StopReason.PERMISSION: _(
            "Your GoSMS token is not allowed to send SMS. Allow sending in the GoSMS panel or "
            "connect another token with /token, then press Resume."
        ),
    }
    return texts.get(reason, _("GoSMS stopped the campaign. Press Resume to try again."))


def campaign_stopped_push(payload: Mapping[str, Any]) -> Push:
    """The campaign paused by itself: why, what to do, and the button to go on."""
    lines = [
        _("⏸ {campaign} is paused.").format(campaign=_campaign(payload)),
        "",
        _stop_advice(str(payload.get("reason") or "")),
        _("What was sent stays sent; the other numbers get their SMS when the campaign resumes."),
    ]
    resume = InlineKeyboardButton(
        text="▶️ " + _("Resume"),
        callback_data=BulkCb(action=BulkAction.RESUME, id=int(payload["campaign_id"])).pack(),
    )
    return Push("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=[[resume]]))


def campaign_done_push(payload: Mapping[str, Any]) -> Push:
    """The end of a campaign: the counts, with the CSV report as a document (read when it
    is sent, so it has what is known of the deliveries by then)."""
    campaign_id = int(payload["campaign_id"])
    lines = [
        _("🏁 {campaign} is done.").format(campaign=_campaign(payload)),
        "",
        _("✅ Sent: {sent} of {total}").format(sent=payload["sent"], total=payload["total"]),
        _("📬 Delivered: {n}").format(n=payload["delivered"]),
        _("❌ Failed: {n}").format(n=payload["failed"]),
    ]
    if int(payload.get("unknown") or 0):
        lines.append(_("❓ Unknown (may have gone out): {n}").format(n=payload["unknown"]))
    lines += ["", _("The report has every number with its status.")]
    return Push("\n".join(lines), attach=report_name(campaign_id))


RENDERERS: dict[str, Renderer] = {
    campaign.CARD: campaign_card_push,
    campaign.STOPPED: campaign_stopped_push,
    campaign.DONE: campaign_done_push,
    "sms_card": sms_card_push,
    "sms_final": sms_final_push,
    "code": code_push,
    "unread_note": unread_note_push,
    "rent_expiring": rent_expiring_push,
    "device_online": device_connection_push,
    "device_battery": device_battery_push,
    "low_balance": low_balance_push,
    "interrupted": interrupted_push,
    "token_broken": token_broken_push,
}

from bot.poller.broadcast_pushes import RENDERERS as BROADCASTS  # noqa: E402  (it needs Push)
from bot.poller.group_pushes import RENDERERS as GROUP_RENDERERS  # noqa: E402
from bot.poller.nocode_pushes import RENDERERS as NO_CODE  # noqa: E402
from bot.poller.wake import RENDERERS as WAKE_RENDERERS  # noqa: E402

RENDERERS.update(WAKE_RENDERERS)
RENDERERS.update(GROUP_RENDERERS)
RENDERERS.update(NO_CODE)
RENDERERS.update(BROADCASTS)
