"""Texts of /bulk: the summary, the progress card, the stops and the final note (HTML-escaped)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.db.models import CampaignState
from bot.texts import number as localized
from bot.texts.bulk_input import count

BAR_WIDTH = 10
SAMPLE_DROPPED = 5  # dropped rows shown in the summary; the rest in the file


def number(value: float) -> str:
    """3.0 → "3", 1.5 → en "1.5", ru "1,5"."""
    return localized(value, "0.##")


def duration(seconds: float) -> str:
    """A time in words: "40 s", "12 min", "2 h 5 min"."""
    total = max(0, round(seconds))
    if total < 60:
        return _("{s} s").format(s=total)
    minutes = round(total / 60)
    if minutes < 60:
        return _("{m} min").format(m=minutes)
    hours, minutes = divmod(minutes, 60)
    if not minutes:
        return _("{h} h").format(h=hours)
    return _("{h} h {m} min").format(h=hours, m=minutes)


def pace_text(per_device_s: float) -> str:
    return _("one SMS every {s} s per device").format(s=number(per_device_s))


def bar(done: int, total: int) -> str:
    share = done / total if total else 1.0
    filled = min(BAR_WIDTH, int(share * BAR_WIDTH))
    return "▓" * filled + "░" * (BAR_WIDTH - filled) + f" {int(share * 100)} %"


def stop_reason_text(reason: str | None) -> str:
    """Why a campaign paused by itself (bot/campaigns/card.py StopReason), in words."""
    texts = {
        "revoked": _("the GoSMS token was turned off or deleted"),
        "tariff": _("the monthly limit of your GoSMS plan is reached"),
        "no_device": _("no device can send right now"),
        "blocked": _("the GoSMS account is blocked"),
        "permission": _("the GoSMS token is not allowed to send SMS"),
    }
    return texts.get(reason or "", _("a GoSMS error"))


def state_text(state: str) -> str:
    texts: dict[str, str] = {
        CampaignState.DRAFT: "📝 " + _("not started"),
        CampaignState.RUNNING: "▶️ " + _("running"),
        CampaignState.PAUSED: "⏸ " + _("paused"),
        CampaignState.CANCELLED: "⏹ " + _("cancelled"),
        CampaignState.DONE: "🏁 " + _("done"),
    }
    return texts.get(state, state)


def title(campaign_id: int, source: str) -> str:
    head = _("📨 <b>Campaign #{id}</b>").format(id=campaign_id)
    return head + (f" · {escape(source)}" if source else "")


def card_text(card: Mapping[str, Any]) -> str:
    """The progress card (bot/campaigns/card.py's payload): a bar, sent / delivered / failed /
    waiting, the pace and the time left, or the final state."""
    total = int(card["total"])
    sent, failed, unknown = int(card["sent"]), int(card["failed"]), int(card["unknown"])
    # `failed` counts SMS whose delivery failed too: those are part of `sent` already
    done = min(total, total - int(card["waiting"]))
    lines = [title(int(card["campaign_id"]), str(card.get("source") or "")), bar(done, total), ""]
    lines.append(_("✅ Sent: {sent} of {total}").format(sent=sent, total=total))
    lines.append(_("📬 Delivered: {n}").format(n=card["delivered"]))
    lines.append(_("❌ Failed: {n}").format(n=failed))
    lines.append(_("⏳ Waiting: {n}").format(n=card["waiting"]))
    if unknown:
        lines.append(_("❓ Unknown (may have gone out): {n}").format(n=unknown))
    lines.append("")
    lines.append(state_line(card))
    return "\n".join(lines)


def state_line(card: Mapping[str, Any]) -> str:
    state = card["state"]
    if state == CampaignState.RUNNING:
        line = _("▶️ Running: one SMS every {s} s").format(s=number(float(card["per_sms_s"])))
        if card.get("left_s") is not None:
            line += " · " + _("about {time} left").format(time=duration(float(card["left_s"])))
        return line
    if state == CampaignState.PAUSED:
        if card.get("reason"):
            return "⏸ " + _("Paused: {reason}.").format(reason=stop_reason_text(card["reason"]))
        return "⏸ " + _("Paused. Press Resume when you are ready.")
    if state == CampaignState.CANCELLED:
        return "⏹ " + _("Cancelled: what was sent stays sent.")
    if state == CampaignState.DONE:
        return "🏁 " + _("Done. The report has every row with its status.")
    return "📝 " + _("Not started yet.")


# ---- the dialog


def size_text(size: int) -> str:
    """A file size limit in words: 1048576 → "1 MB", 512000 → "500 KB"."""
    mb = 1024 * 1024
    if size >= mb and size % mb == 0:
        return _("{n} MB").format(n=count(size // mb))
    return _("{n} KB").format(n=count(size // 1024))


def ask_source_text(max_rows: int, max_bytes: int) -> str:
    limits = ngettext(
        "Up to {rows} row, files up to {size}. /cancel to stop.",
        "Up to {rows} rows, files up to {size}. /cancel to stop.",
        max_rows,
    )
    return "\n\n".join(
        [
            _("📨 <b>A campaign: one text to many numbers.</b>"),
            _(
                "Send the recipients: paste a list, one number per line, or "
                "<code>number, text</code> per line to give each its own text."
            ),
            _(
                "Or send a <b>.csv</b> or <b>.txt</b> file as a document, with a header row: "
                "a <code>number</code> column, optionally <code>text</code>, and any columns "
                "a template uses, like <code>name</code> for <code>Hello, {name}!</code>."
            ),
            limits.format(rows=count(max_rows), size=size_text(max_bytes)),
        ]
    )


def not_a_list_text() -> str:
    return _("Send the list as text or as a .csv / .txt file, or /cancel.")


def file_too_big_text(max_bytes: int) -> str:
    return "❌ " + _("The file is larger than {size}. Send a smaller one, or /cancel.").format(
        size=size_text(max_bytes)
    )


def not_a_text_file_text() -> str:
    return "❌ " + _("I can read only .csv and .txt files. Send the list as one, or /cancel.")


def refused_text(reason: str) -> str:
    return "❌ " + reason + "\n" + _("Send the list again, or /cancel.")


def ask_text_text(rows: int, columns: Sequence[str]) -> str:
    lines = [
        ngettext("✅ {n} row read.", "✅ {n} rows read.", rows).format(n=rows),
        _("✍️ Now send the text of the SMS: 1 to 300 characters, no backtick (`)."),
    ]
    if columns:
        fields = ", ".join(f"<code>{{{escape(c)}}}</code>" for c in columns)
        lines.append(
            _("A template may use the columns of the file: {fields}.").format(fields=fields)
        )
    return "\n".join(lines)


def unknown_fields_text(missing: Sequence[str], columns: Sequence[str]) -> str:
    named = ", ".join(f"<code>{{{escape(f)}}}</code>" for f in missing)
    if columns:
        offered = ", ".join(f"<code>{{{escape(c)}}}</code>" for c in columns)
        hint = _("Columns you can use: {fields}.").format(fields=offered)
    else:
        hint = _(
            "This list has no columns: send a plain text, or /bulk again with a .csv file "
            "whose header row names the fields."
        )
    return "\n".join(
        [
            "❌ " + _("The list has no column for {fields}.").format(fields=named),
            hint,
            _("Send the text again, or /cancel."),
        ]
    )


def ask_device_text() -> str:
    return _("📱 Which devices should send the campaign?")


def ask_sim_text(name: str | None) -> str:
    if name is None:
        return _("📶 Which SIM card should each device send from?")
    return _("📶 Which SIM card of {name} should send it?").format(name=escape(name))


def devices_text(mode: str, names: Sequence[str], to_sim: int | None) -> str:
    if mode == "any" or not names:
        return _("any device (GoSMS chooses)")
    if mode == "spread":
        text = ngettext(
            "spread over {n} device: {names}", "spread over {n} devices: {names}", len(names)
        ).format(n=len(names), names=", ".join(escape(n) for n in names))
    else:
        text = escape(names[0])
    sim = _("default SIM") if to_sim is None else _("SIM {slot}").format(slot=to_sim + 1)
    return f"{text}, {sim}"


def summary_text(
    *,
    campaign_id: int,
    source: str,
    recipients: int,
    dropped: Sequence[tuple[int, str, str]],
    describe: Any,
    sample: str | None,
    devices: str,
    pace: float,
    seconds: float,
) -> str:
    """`dropped`: (line, value, reason) rows; `describe`: a reason in words."""
    lines = [title(campaign_id, source), ""]
    lines.append(_("👥 Recipients: <b>{n}</b>").format(n=recipients))
    if dropped:
        lines.append(_("🚫 Dropped: {n}").format(n=len(dropped)))
        by_reason: dict[str, int] = {}
        for _line, _value, reason in dropped:
            by_reason[reason] = by_reason.get(reason, 0) + 1
        for reason, count in by_reason.items():
            lines.append(f"  • {escape(describe(reason))}: {count}")
        for line, value, reason in dropped[:SAMPLE_DROPPED]:
            lines.append(
                "  "
                + _("line {line}: {value} — {reason}").format(
                    line=line,
                    value=f"<code>{escape(value)}</code>",
                    reason=escape(describe(reason)),
                )
            )
        if (more := len(dropped) - SAMPLE_DROPPED) > 0:
            lines.append(
                "  "
                + ngettext(
                    "…and {n} more row in the file.", "…and {n} more rows in the file.", more
                ).format(n=more)
            )
    if not recipients:
        lines += [
            "",
            "❌ " + _("Nothing to send: no row is valid. Fix the list and send /bulk again."),
        ]
        return "\n".join(lines)
    if sample is not None:
        lines += ["", _("💬 The first SMS:"), f"<blockquote>{escape(sample)}</blockquote>"]
    lines.append(_("📱 Devices: {devices}").format(devices=devices))
    lines.append(_("🐢 Pace: {pace}").format(pace=pace_text(pace)))
    lines.append(_("⏱ It will take about {time}.").format(time=duration(seconds)))
    lines += ["", _("Start the campaign?")]
    return "\n".join(lines)


def not_started_text() -> str:
    return _("Not started: nothing was sent.")


# ---- the card's questions


def cancel_question_text(campaign_id: int, waiting: int) -> str:
    return "\n".join(
        [
            ngettext(
                "Cancel campaign #{id}? {n} SMS is still waiting and will not be sent.",
                "Cancel campaign #{id}? {n} SMS are still waiting and will not be sent.",
                waiting,
            ).format(id=campaign_id, n=waiting),
            _("What was sent stays sent."),
        ]
    )


def cancelled_text(campaign_id: int) -> str:
    return "⏹ " + _("Campaign #{id} cancelled: what was sent stays sent.").format(id=campaign_id)


def kept_text(campaign_id: int) -> str:
    return _("Campaign #{id} goes on.").format(id=campaign_id)


def retry_question_text(campaign_id: int, failed: int, unknown: int, with_unknown: bool) -> str:
    rows = failed + (unknown if with_unknown else 0)
    lines = [
        ngettext(
            "Send campaign #{id} again to the {n} row that failed to send?",
            "Send campaign #{id} again to the {n} rows that failed to send?",
            rows,
        ).format(id=campaign_id, n=rows)
    ]
    if with_unknown:
        lines.append(
            ngettext(
                "This includes {n} unknown row: its SMS may have gone out already.",
                "This includes {n} unknown rows: their SMS may have gone out already.",
                unknown,
            ).format(n=unknown)
        )
    elif unknown:
        lines.append(
            ngettext(
                "{n} more is unknown: its SMS may have gone out. "
                "Include it only if you know it did not.",
                "{n} more are unknown: their SMS may have gone out. "
                "Include them only if you know they did not.",
                unknown,
            ).format(n=unknown)
        )
    return "\n".join(lines)


def retry_after_cancel_text(campaign_id: int, waiting: int) -> str:
    return ngettext(
        "Campaign #{id} was cancelled with {n} SMS never sent: Retry failed would send it "
        "too. Start a new campaign with /bulk instead.",
        "Campaign #{id} was cancelled with {n} SMS never sent: Retry failed would send them "
        "too. Start a new campaign with /bulk instead.",
        waiting,
    ).format(id=campaign_id, n=waiting)


def nothing_to_retry_text() -> str:
    return _("Nothing to send again: every failed SMS went out but was not delivered.")


def not_retried_text() -> str:
    return _("Nothing was sent again.")


def stale_campaign_text() -> str:
    return _("This campaign no longer exists. /bulk shows your campaigns.")


def changed_text() -> str:
    return _("The campaign has changed meanwhile: here it is as it is now.")


# ---- the list


def list_text(total: int) -> str:
    return _("📋 <b>Your campaigns</b> ({n}). Press one to open its card.").format(n=total)


def list_label(campaign_id: int, source: str, state: str, sent: int, total: int) -> str:
    name = f" {source[:24]}" if source else ""
    return f"#{campaign_id}{name} · {state_text(state)} · {sent}/{total}"
