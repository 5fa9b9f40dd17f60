"""The Telegram pace of the pushes: about 25 messages a second in all and about 1 a second per
chat (3 at once), and Telegram's 429 `retry_after` respected.

`LocalPace` keeps it in the process: right for the only instance. `RedisPace` keeps it in Redis
for every instance of a deployment: each decision is one Lua script, so senders on several
instances never together go over it, and a 429 one of them was given pauses that chat for all.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class Send(NamedTuple):
    """A push the sender would like to send now."""

    push_id: int
    chat_id: int


class Pacing(Protocol):
    late: float  # seconds a send may go after its slot; later, it asks for another

    async def admit(self, sends: Sequence[Send]) -> list[float | None]:
        """For each send: in how many seconds it may go (0: now), or None: not in this round."""

    async def back_off(self, chat_id: int, seconds: float) -> None:
        """Telegram answered 429 for this chat: nothing goes to it for `seconds`."""


@dataclass
class Bucket:
    capacity: float
    rate: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.stamp = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def full(self, now: float) -> bool:
        """Refilled by now: as good as a new bucket."""
        return self.tokens + (now - self.stamp) * self.rate >= self.capacity


@dataclass
class LocalPace:
    """At most `global_rate` messages a second in all, and about `chat_rate` a second per chat,
    counted in this process."""

    global_rate: float = 25.0
    chat_rate: float = 1.0
    chat_burst: float = 3.0
    everyone: Bucket = field(init=False)
    chats: dict[int, Bucket] = field(default_factory=dict)
    paused: dict[int, float] = field(default_factory=dict)
    prune_every: float = 60.0
    pruned_at: float = field(default=0.0, init=False)
    late: float = field(default=math.inf, init=False)  # its slots are all now

    def __post_init__(self) -> None:
        self.everyone = Bucket(capacity=self.global_rate, rate=self.global_rate)

    async def admit(self, sends: Sequence[Send]) -> list[float | None]:
        now = time.monotonic()
        return [0.0 if self.allows(send.chat_id, now) else None for send in sends]

    async def back_off(self, chat_id: int, seconds: float) -> None:
        self.pause(chat_id, seconds, time.monotonic())

    def allows(self, chat_id: int, now: float) -> bool:
        if now - self.pruned_at >= self.prune_every:
            self.prune(now)
        if self.paused.get(chat_id, 0.0) > now:
            return False
        chat = self.chats.setdefault(chat_id, Bucket(self.chat_burst, self.chat_rate))
        if not chat.take(now):
            return False
        if not self.everyone.take(now):
            chat.tokens += 1  # not sent after all
            return False
        return True

    def pause(self, chat_id: int, seconds: float, now: float) -> None:
        self.paused[chat_id] = now + seconds

    def prune(self, now: float) -> None:
        """Forget the chats that are as if never sent to: one bucket per chat ever pushed to
        would otherwise grow without end."""
        self.chats = {c: b for c, b in self.chats.items() if not b.full(now)}
        self.paused = {c: until for c, until in self.paused.items() if until > now}
        self.pruned_at = now


# Every send is given a time slot (the generic cell rate algorithm): slots in all are at least
# 1/25 s apart, so no second ever holds more than 25; a chat's slots follow the same rule with its
# own gap and a burst. A push is reserved for its sender for a moment, so that senders looking at
# the same due rows do not both take a slot for it (only one of them will claim it).
# Times are milliseconds of Redis's own clock, the same for every instance; each key expires once
# it says no more than a missing key would.
ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local gap, ahead = tonumber(ARGV[1]), tonumber(ARGV[2])
local chat_gap, chat_burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local owner, hold = ARGV[5], tonumber(ARGV[6])
local out = {}
local paused = redis.call('EXISTS', KEYS[2]) == 1
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or 0))
local first = slot
for i = 1, (#KEYS - 2) / 3 do
  out[i] = -1
  local chat, chat_pause, push = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  if not paused and slot - now <= ahead and redis.call('EXISTS', chat_pause) == 0 then
    local holder = redis.call('GET', push)
    if not holder or holder == owner then
      local chat_next = tonumber(redis.call('GET', chat) or 0)
      if chat_next - slot <= chat_burst then
        local after = math.max(chat_next, slot) + chat_gap
        redis.call('SET', chat, string.format('%.3f', after), 'PX', math.ceil(after - now))
        redis.call('SET', push, owner, 'PX', hold)
        out[i] = math.ceil(slot - now)
        slot = slot + gap
      end
    end
  end
end
if slot > first then
  redis.call('SET', KEYS[1], string.format('%.3f', slot), 'PX', math.ceil(slot - now))
end
return out
"""

# A 429 pauses its chat; 429s for several chats close together are Telegram's flood limit over
# all chats: then everyone pauses. Returns 1 then.
BACK_OFF = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local pause, within, chats = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('PTTL', KEYS[1]) < pause then
  redis.call('SET', KEYS[1], '1', 'PX', pause)
end
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - within)
redis.call('PEXPIRE', KEYS[3], within)
if redis.call('ZCARD', KEYS[3]) >= chats then
  if redis.call('PTTL', KEYS[2]) < pause then
    redis.call('SET', KEYS[2], '1', 'PX', pause)
  end
  return 1
end
return 0
"""


# A reply to a user goes at once, but takes the next slot in all: the pushes of every instance
# make room for it.
NOTE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or 0)) + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.3f', slot), 'PX', math.ceil(slot - now))
return 1
"""


class RedisPace:
    """The pace of every sender of a deployment, in Redis under `namespace`.

    Sends are given slots up to `ahead` seconds away; the sender waits for its slot, and asks
    again when it missed it by more than `late`. Slots in all are (1 + `margin`) / `global_rate`
    seconds apart, so that Telegram, which sees each send a little sooner or later than its slot,
    still never counts more than `global_rate` in a second. While Redis cannot be reached, the
    pace of this process alone is kept (one warning per episode).
    """

    def __init__(
        self,
        redis: Redis,
        namespace: str,
        *,
        global_rate: float = 25.0,
        chat_rate: float = 1.0,
        chat_burst: float = 3.0,
        ahead: float = 1.0,
        late: float = 0.1,
        margin: float = 0.08,
        hold: float = 3.0,
        flood_chats: int = 3,
        flood_within: float = 1.0,
    ) -> None:
        self.prefix = f"{namespace}:pace"
        self.late = late
        self.owner = uuid.uuid4().hex  # this sender, for its reservations
        self.args: list[float | str] = [
            (1.0 + margin) * 1000.0 / global_rate,
            ahead * 1000.0,
            1000.0 / chat_rate,
            (chat_burst - 1) * 1000.0 / chat_rate,
            self.owner,
            int(hold * 1000),
        ]
        self.flood = (flood_chats, int(flood_within * 1000))
        self.local = LocalPace(global_rate, chat_rate, chat_burst)
        self._admit = redis.register_script(ADMIT)
        self._back_off = redis.register_script(BACK_OFF)
        self._note = redis.register_script(NOTE)
        self._down = False

    def _keys(self, sends: Sequence[Send]) -> list[str]:
        keys = [f"{self.prefix}:all", f"{self.prefix}:all:paused"]
        for push_id, chat_id in sends:
            chat = f"{self.prefix}:chat:{chat_id}"
            keys += [chat, f"{chat}:paused", f"{self.prefix}:push:{push_id}"]
        return keys

    async def admit(self, sends: Sequence[Send]) -> list[float | None]:
        from redis.exceptions import RedisError

        if not sends:
            return []
        try:
            slots = await self._admit(keys=self._keys(sends), args=self.args)
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return await self.local.admit(sends)
        self._back()
        return [None if ms < 0 else ms / 1000.0 for ms in slots]

    async def note_reply(self) -> None:
        """A message sent outside the sender (a handler's reply) counts towards the pace."""
        from redis.exceptions import RedisError

        try:
            await self._note(keys=[f"{self.prefix}:all"], args=self.args[:1])
        except (RedisError, OSError) as exc:
            self._lost(exc)

    async def back_off(self, chat_id: int, seconds: float) -> None:
        from redis.exceptions import RedisError

        await self.local.back_off(chat_id, seconds)
        chat = f"{self.prefix}:chat:{chat_id}:paused"
        keys = [chat, f"{self.prefix}:all:paused", f"{self.prefix}:limited"]
        chats, within = self.flood
        args: list[int] = [chat_id, max(1, int(seconds * 1000)), within, chats]
        try:
            flood = await self._back_off(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return
        self._back()
        if flood:
            log.warning("Telegram's flood limit: every push waits %.0f s", seconds)

    def _lost(self, error: BaseException) -> None:
        if not self._down:
            log.warning("Redis unreachable (%s): pushes keep this process's pace", error)
        self._down = True

    def _back(self) -> None:
        if self._down:
            log.info("Redis reachable again: pushes keep the shared pace")
        self._down = False
