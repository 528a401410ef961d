"""Escalation burst windows: the minute after a burst is told, later escalations wait here.

Keys (under REDIS_PREFIX):

    bursts            zset: window id -> when the window closes (seconds, Redis's clock)
    burst:<id>:first  string: what the window's opener told at once (its burst id, keys, time)
    burst:<id>        list: the escalations held while window <id> was open (one text each)

A window is open while its close time is after Redis's `TIME`, so replicas with skewed
clocks agree on it. `hold` appends to the open window, or, when none is open, opens one,
stores the caller's `first` with it in the same script and holds nothing (the caller tells
at once). `take` removes a closed window, its `first` and its list in one step: whichever
replica takes it alone gets the escalations to tell, and what they continue.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from receiver.state.lease_scripts import PRELUDE
from receiver.state.reservation import decode
from receiver.state.store import Store

WINDOW_SECONDS = 60.0
HELD_TTL_SECONDS = 86400  # a list no sweeper ever took is dropped after a day

# KEYS: 1 bursts zset, 2 the first text of a window opened now (`<prefix>burst:<new id>:first`)
# ARGV: 1 key prefix, 2 window length s, 3 id for a new window, 4 held list ttl s,
#       5 the first text to store if this opens the window, 6.. the escalations to hold
# returns: {'held', id} appended to the open window's list `<prefix>burst:<id>` (named from
#          the id the zset holds, so it cannot be passed in KEYS); {'opened', id} no window was
#          open: this one opens now with ARGV[5] as its first, and nothing is held
HOLD_SCRIPT = (
    PRELUDE
    + """
local now = now_ms() / 1000
local open = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, 1)
if #open == 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
  return {'opened', ARGV[3]}
end
local held = ARGV[1] .. 'burst:' .. open[1]
for i = 6, #ARGV do redis.call('RPUSH', held, ARGV[i]) end
redis.call('EXPIRE', held, ARGV[4])
return {'held', open[1]}
"""
)

# KEYS: 1 bursts zset, 2 the window's list, 3 the window's first text
# ARGV: 1 window id
# returns: {first or '', held...} to the one caller that removes the closed window; {} to
#          every other caller, and while the window is still open
TAKE_SCRIPT = (
    PRELUDE
    + """
local closes = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not closes or tonumber(closes) > now_ms() / 1000 then return {} end
redis.call('ZREM', KEYS[1], ARGV[1])
local first = redis.call('GET', KEYS[3]) or ''
local held = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2], KEYS[3])
table.insert(held, 1, first)
return held
"""
)


@dataclass(frozen=True)
class Taken:
    """A closed window as one caller took it: its opener's `first` text and what it held."""

    first: str | None = None  # None: another caller took it, or it opened without one
    held: list[str] = field(default_factory=list)


class Bursts:
    """The burst windows of one store; `window_seconds` is injectable (tests shorten it)."""

    def __init__(self, store: Store, window_seconds: float = WINDOW_SECONDS) -> None:
        self.store = store
        self.window_seconds = window_seconds
        self._hold = store.client.register_script(HOLD_SCRIPT)
        self._take = store.client.register_script(TAKE_SCRIPT)

    def hold(self, items: Sequence[str], first: str = "") -> bool:
        """Hold `items` in the open window (True), or open one remembering `first` (False)."""
        store = self.store
        new_window = secrets.token_hex(8)
        keys = [store.key("bursts"), store.key("burst", new_window, "first")]
        args: list[str | float] = [
            store.prefix,
            self.window_seconds,
            new_window,
            HELD_TTL_SECONDS,
            first,
        ]
        with store.guarded():
            outcome, _window = self._hold(keys=keys, args=[*args, *items])
        return decode(outcome) == "held"

    def closed(self) -> list[str]:
        """The windows that closed, by Redis's clock, and were not taken yet."""
        return self.store.due("bursts")

    def take(self, window: str) -> Taken:
        """A closed window's first and held escalations, removed with it; empty when gone."""
        store = self.store
        keys = [
            store.key("bursts"),
            store.key("burst", window),
            store.key("burst", window, "first"),
        ]
        with store.guarded():
            taken = [decode(item) for item in self._take(keys=keys, args=[window])]
        if not taken:
            return Taken()
        return Taken(first=taken[0] or None, held=taken[1:])
