"""The test doubles, made to scale to 10,000 accounts, plus the benchmark's measuring hooks.

The fakes in tests/fakes/ scan every rent / message of every account on each request (fine for a
test, O(N) per request at 10,000 accounts, which would make the fake the bottleneck on a 2-core
machine). These subclasses keep the same answers but index by account. The behaviour the bot
sees (paths, bodies, rate limits, latency) is unchanged.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

from tests.fakes.gotsms import FakeGotSMS, _Account, _Message, _Rent
from tests.fakes.telegram import FakeTelegram

CODE_RE = re.compile(r"\d{8}")


class ScaledGotSMS(FakeGotSMS):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._phone_seq = 0
        self._index_size = -1
        self._rents_by_account: dict[str, list[_Rent]] = defaultdict(list)
        self._messages_by_account: dict[str, list[_Message]] = defaultdict(list)
        self._next_end: datetime | None = None
        self.first_served: dict[str, float] = {}  # message id -> first /messages answer with it

    # unique phones without scanning every active rent
    def _new_phone(self, country: Any, area_code: str | None) -> str:
        self._phone_seq += 1
        area = area_code or country.area_codes[self._phone_seq % len(country.area_codes)]
        local = f"{self._phone_seq:07d}"
        return f"{country.dial_code} {area} {local[:3]} {local[3:]}"

    def _reindex(self) -> None:
        if self._index_size == len(self._rents):
            return
        self._rents_by_account.clear()
        for rent in self._rents.values():
            self._rents_by_account[rent.account_id].append(rent)
        for rents in self._rents_by_account.values():
            rents.sort(key=lambda r: (r.created_at, r.seq), reverse=True)
        active = [r.active_till for r in self._rents.values() if r.status == "active"]
        self._next_end = min(active, default=None)
        self._index_size = len(self._rents)

    def _tick(self) -> None:
        """Expiry only when some rent may have ended (the parent scans all rents every call)."""
        self._reindex()
        if self._next_end is not None and self.now() >= self._next_end:
            super()._tick()
            self._index_size = -1

    def _account_rents(self, account: _Account) -> list[_Rent]:
        self._reindex()
        return list(self._rents_by_account.get(account.id, ()))

    def inject_message(self, rent_id: str, body: str, **kwargs: Any) -> dict[str, Any]:
        view = super().inject_message(rent_id, body, **kwargs)
        message = self._messages[view["id"]]
        account_id = self._rents[rent_id].account_id
        self._messages_by_account[account_id].append(message)  # ids grow: oldest first
        return view

    def _get_messages(self, call: Any) -> Any:
        """Also notes when each message was first handed to the bot (splits the latency)."""
        reply = super()._get_messages(call)
        now = time.monotonic()
        for item in reply.body.get("data") or ():
            self.first_served.setdefault(item["id"], now)
        return reply

    def _account_messages(self, token: str) -> list[_Message]:
        account_id = self._accounts[token].id
        return list(reversed(self._messages_by_account.get(account_id, ())))


class MeasuringTelegram(FakeTelegram):
    """Records when a sendMessage carrying a watched code was accepted (answered 200)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watched: set[str] = set()
        self.accepted: dict[str, list[float]] = defaultdict(list)  # code -> acceptance times
        self.refused: dict[int, int] = defaultdict(int)  # error code -> count

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            result = await super()._send_message(params)
        except Exception as exc:
            code = getattr(exc, "code", 0)
            self.refused[code] += 1
            raise
        now = time.monotonic()
        for code in CODE_RE.findall(str(params.get("text", ""))):
            if code in self.watched:
                self.accepted[code].append(now)
                break
        return result
