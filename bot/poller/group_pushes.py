"""How a code of a shared rent looks in its group (the row: bot/poller/group_codes.py).

The group sees the service, the number and the code (with its SMS text), never a balance, a
token or another rent, and no button that acts on the rent: copying the code is all.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from aiogram.types import CopyTextButton, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot.db.group_links import GROUP_CODE
from bot.poller.pushes import MAX_BODY, Push, Renderer, extract_code


def group_code_push(payload: Mapping[str, Any]) -> Push:
    body = str(payload.get("body") or "")
    code = payload.get("code") or extract_code(body)
    service = escape(str(payload.get("service") or "GotSMS"))
    phone = escape(str(payload.get("phone") or ""))
    lines = [_("🔑 Code from <b>{service}</b> on {phone}").format(service=service, phone=phone)]
    if code:
        lines.append(f"<code>{escape(str(code))}</code>")
    if body:
        lines += ["", escape(body[:MAX_BODY])]
    markup = None
    if code:
        button = InlineKeyboardButton(
            text=_("📋 Copy {code}").format(code=code), copy_text=CopyTextButton(text=str(code))
        )
        markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
    return Push("\n".join(lines), markup)


RENDERERS: dict[str, Renderer] = {GROUP_CODE: group_code_push}
