"""How a code of a shared rent looks in its group (the row: bot/poller/group_codes.py).

The group sees the service, the number and the code (with its SMS text), never a balance, a
token or another rent, and no button that acts on the rent: copying the code is all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.utils.i18n import gettext as _

from bot.db.group_links import GROUP_CODE
from bot.poller.pushes import Push, Renderer, code_message


def group_code_push(payload: Mapping[str, Any]) -> Push:
    return code_message(payload, _("🔑 Code from <b>{service}</b> on {phone}"), [])


RENDERERS: dict[str, Renderer] = {GROUP_CODE: group_code_push}
