"""GoSMS cards and lists. Everything that comes from the API is HTML-escaped here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from aiogram.utils.i18n import gettext as _

from bot.api.gosms import DeviceInfo, Sms, SmsStatus
from bot.db.models import Device
from bot.services.gosms import OFFLINE_AFTER, PAGE_SIZE, seconds_since
from bot.texts import utc_time

CONSOLE_MAX = 600
PREVIEW_MAX = 40
STATUS_ICONS = {0: "⏳", 1: "⚙️", 2: "📨", 3: "❌", 4: "✅", 5: "⚠️"}


def status_label(status: int) -> str:
    labels = {
        SmsStatus.WAITING: _("waiting"),
        SmsStatus.PROCESSING: _("processing"),
        SmsStatus.SENT: _("sent"),
        SmsStatus.SEND_ERROR: _("not sent (send error)"),
        SmsStatus.DELIVERED: _("delivered"),
        SmsStatus.DELIVERY_ERROR: _("not delivered (delivery error)"),
    }
    try:
        label = labels[SmsStatus(status)]
    except ValueError:
        return _("unknown ({status})").format(status=status)
    return f"{STATUS_ICONS[status]} {label}"


def sim_label(to_sim: int | None) -> str:
    if to_sim is None:
        return _("default")
    return str(to_sim + 1)


def device_label(name: str | None, device_id: str | None) -> str:
    if not device_id:
        return _("any device")
    if name:
        return escape(name)
    return f"<code>{escape(device_id)}</code>"


def duration(seconds: int) -> str:
    minutes = seconds // 60
    if minutes < 60:
        return _("{minutes} min").format(minutes=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _("{hours} h {minutes} min").format(hours=hours, minutes=minutes)
    return _("{days} d").format(days=hours // 24)


def when(unix: int) -> str:
    return utc_time(datetime.fromtimestamp(unix, UTC))


def sms_card(
    *,
    sms_id: str,
    phone: str,
    text: str,
    status: int,
    device_name: str | None = None,
    device_id: str | None = None,
    to_sim: int | None = None,
    time_create: int | None = None,
) -> str:
    """The card of one SMS. The poller re-renders it from a `SentSms` row when the status moves."""
    lines = [
        _("📤 <b>SMS</b> <code>{id}</code>").format(id=escape(sms_id)),
        _("To: <code>{phone}</code>").format(phone=escape(phone)),
        _("Device: {device}").format(device=device_label(device_name, device_id)),
    ]
    if device_id:
        lines.append(_("SIM: {sim}").format(sim=sim_label(to_sim)))
    lines.append(_("Status: {status}").format(status=status_label(status)))
    if time_create:
        lines.append(_("Created: {when}").format(when=when(time_create)))
    lines += ["", f"<blockquote>{escape(text)}</blockquote>"]
    return "\n".join(lines)


def card_of(sms: Sms, device_name: str | None = None) -> str:
    return sms_card(
        sms_id=sms.id,
        phone=sms.phone_number,
        text=sms.message,
        status=sms.status,
        device_name=device_name,
        device_id=sms.device_id,
        to_sim=sms.to_sim,
        time_create=sms.time_create,
    )


def preview(text: str, limit: int = PREVIEW_MAX) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def sms_list(items: Sequence[Sms], total: int, page: int, pages: int, search: str) -> str:
    if not items:
        if search:
            return _("🔎 Nothing found for «{search}». Try another search: /sms TEXT").format(
                search=escape(search)
            )
        return _("You have no SMS in GoSMS yet. Send one with /send.")
    if search:
        head = _("🔎 SMS matching «{search}»: {total}").format(search=escape(search), total=total)
    else:
        head = _("📋 Your SMS: {total}").format(total=total)
    if pages > 1:
        head += " · " + _("page {page} of {pages}").format(page=page, pages=pages)
    lines = [head, ""]
    first = (page - 1) * PAGE_SIZE + 1
    for number, sms in enumerate(items, start=first):
        icon = STATUS_ICONS.get(sms.status, "•")
        lines.append(
            f"{number}. {icon} <code>{escape(sms.phone_number)}</code> — "
            f"{escape(preview(sms.message))}"
        )
    lines += ["", _("To open an SMS, tap the button with its number. Search: /sms TEXT")]
    return "\n".join(lines)


def send_question(
    phone: str, text: str, device_id: str | None, device_name: str | None, to_sim: int | None
) -> str:
    lines = [
        _("<b>Send this SMS?</b>"),
        _("To: <code>{phone}</code>").format(phone=escape(phone)),
        _("Device: {device}").format(device=device_label(device_name, device_id)),
    ]
    if device_id:
        lines.append(_("SIM: {sim}").format(sim=sim_label(to_sim)))
    lines += [
        "",
        f"<blockquote>{escape(text)}</blockquote>",
        "",
        _("It counts towards your GoSMS plan."),
    ]
    return "\n".join(lines)


def online_line(last_online: datetime | None, now: datetime | None = None) -> str:
    seconds = seconds_since(last_online, now)
    if seconds is None:
        return _("Last online: never")
    if seconds > OFFLINE_AFTER:
        return _("🔴 Offline for {time}").format(time=duration(seconds))
    if seconds < 60:
        return _("🟢 Online: last seen just now")
    return _("🟢 Online: last seen {minutes} min ago").format(minutes=seconds // 60)


def console_block(console: str) -> str:
    data = console.strip()
    if not data:
        return _("Device log: empty")
    if len(data) > CONSOLE_MAX:
        data = "…" + data[-CONSOLE_MAX:]
    return _("Device log:") + f"\n<pre>{escape(data)}</pre>"


def _either(flag: bool | None, yes: str, no: str) -> str:
    """A yes/no field of an answer; "—" when the API sent a value that could not be read."""
    if flag is None:
        return "—"
    return yes if flag else no


def device_card(info: DeviceInfo, device_id: str, now: datetime | None = None) -> str:
    name = info.device_name or _("Unnamed device")
    battery = escape(info.device_battery_state or "—")
    charging = _either(info.is_charging, _("charging"), _("not charging"))
    active = _either(info.is_active, _("✅ on"), _("⏸ off"))
    return "\n".join(
        [
            f"📱 <b>{escape(name)}</b>",
            _("ID: <code>{id}</code>").format(id=escape(device_id)),
            _("Battery: {battery} % ({charging})").format(battery=battery, charging=charging),
            _("State: {active}").format(active=active),
            online_line(info.last_online_date, now),
            "",
            console_block(info.console_data),
        ]
    )


def devices_list(devices: Sequence[Device]) -> str:
    if not devices:
        return "\n".join(
            [
                _("📱 You have no saved devices yet."),
                _(
                    "GoSMS doesn't give me a list of your devices, so add them yourself: tap "
                    "«Add a device» and send the device ID from the GoSMS panel → My devices."
                ),
            ]
        )
    lines = [_("📱 Your devices: {count}").format(count=len(devices)), ""]
    lines += [f"• {escape(d.name or d.device_id)}" for d in devices]
    lines += ["", _("Tap a device to open its card.")]
    return "\n".join(lines)
