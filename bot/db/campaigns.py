"""The campaigns of /bulk and their rows (bot/db/models.py: Campaign, CampaignRow).

Every write that matters for "never twice" is one guarded UPDATE: a row goes QUEUED → SENDING
(committed before its SMS is requested) → SENT or FAILED; a row found SENDING by the next holder
of the campaign becomes UNKNOWN and is never sent again by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Campaign, CampaignRow, CampaignState, DeviceMode


class Recipient(NamedTuple):
    """A checked row, ready to be stored."""

    line: int
    phone: str
    text: str


class Dropped(NamedTuple):
    line: int
    value: str  # what the row said (cut to a sensible length)
    reason: str  # a DropReason value (bot/services/bulk.py)


class Counts(NamedTuple):
    """What the card shows. `failed`: refused sends plus SMS whose delivery failed;
    `waiting`: queued plus sending; `delivered` is part of `sent`."""

    total: int
    sent: int
    delivered: int
    failed: int
    waiting: int
    unknown: int


class CampaignRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- the dialog and the buttons (bot/handlers/gosms/bulk.py)

    async def create_draft(
        self,
        user_id: int,
        *,
        source: str,
        template: str,
        device_mode: DeviceMode,
        device_ids: Sequence[str],
        to_sim: int | None,
        pace: float,
        recipients: Sequence[Recipient],
        dropped: Sequence[Dropped],
    ) -> Campaign:
        """A DRAFT campaign with its rows (QUEUED); the user's older drafts are deleted."""
        raise NotImplementedError

    async def get(self, user_id: int, campaign_id: int) -> Campaign | None:
        """The user's campaign, or None (another user's, or gone)."""
        raise NotImplementedError

    async def of_user(self, user_id: int, *, limit: int, offset: int = 0) -> list[Campaign]:
        """The user's campaigns but drafts, newest first."""
        raise NotImplementedError

    async def count(self, user_id: int) -> int:
        """How many campaigns `of_user` can show."""
        raise NotImplementedError

    async def counts(self, campaign_id: int) -> Counts:
        raise NotImplementedError

    async def start(self, user_id: int, campaign_id: int, now: datetime) -> bool:
        """DRAFT → RUNNING once; False if it was not a draft of this user."""
        raise NotImplementedError

    async def move(
        self,
        user_id: int,
        campaign_id: int,
        from_states: Sequence[CampaignState],
        to: CampaignState,
        *,
        reason: str | None = None,
    ) -> bool:
        """Pause / resume / cancel: one guarded UPDATE; False if it was in none of `from_states`.
        Resuming clears `reason`; CANCELLED and DONE set `finished_at`."""
        raise NotImplementedError

    async def retry(self, user_id: int, campaign_id: int, *, with_unknown: bool) -> int:
        """A DONE (or CANCELLED) campaign: its FAILED rows that were refused (no SMS id) — and
        its UNKNOWN ones if asked — go back to QUEUED, and it runs again. How many rows."""
        raise NotImplementedError

    async def set_card(self, campaign_id: int, chat_id: int, message_id: int) -> None:
        raise NotImplementedError

    async def rows(self, campaign_id: int) -> list[CampaignRow]:
        """Every row, in the order of their lines (the report)."""
        raise NotImplementedError

    async def drop_drafts(self, user_id: int) -> int:
        raise NotImplementedError
