"""Lua scripts for the atomic parts of the safety state, each beside its wrapper.

All times are milliseconds since the epoch, passed in by the caller (so tests
and replicas agree on one clock source: the caller's NTP-synced clock); lock
leases use Redis's own PX expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

# KEYS: 1 episode key, 2 service lock, 3 locks zset (service -> lease deadline ms),
#       4 starts zset of the service (rollback id -> start ms), 5 running hash (service -> id),
#       6 record-state key of the rollback
# ARGV: 1 now ms, 2 rollback id (lock owner token), 3 lease ms, 4 cooldown ms, 5 max per hour,
#       6 max per day, 7 max concurrent, 8 episode ttl s, 9 service,
#       10 mode: reserve | hold | peek, 11 check episode 1/0, 12 skip cooldown+rate limits 1/0,
#       13 expected record state ("" = none), 14 record state to set on success ("" = none)
# returns: {reason, detail}; reason "ok" or the first that blocks, in the contract's order:
#          not_pending, duplicate, locked, cooldown, rate_limit_hour, rate_limit_day, global_limit
RESERVE_SCRIPT = """
local now = tonumber(ARGV[1])
if ARGV[13] ~= '' then
  local state = redis.call('GET', KEYS[6])
  if state ~= ARGV[13] then return {'not_pending', state or 'unknown'} end
end
if ARGV[11] == '1' then
  local prev = redis.call('GET', KEYS[1])
  if prev then return {'duplicate', prev} end
end
local owner = redis.call('GET', KEYS[2])
if owner then return {'locked', owner} end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 86400000)
if ARGV[12] ~= '1' then
  local last = redis.call('ZREVRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if last[2] then
    local left = tonumber(last[2]) + tonumber(ARGV[4]) - now
    if left > 0 then return {'cooldown', tostring(left)} end
  end
  local hour = redis.call('ZCOUNT', KEYS[4], now - 3600000, '+inf')
  if hour >= tonumber(ARGV[5]) then return {'rate_limit_hour', tostring(hour)} end
  local day = redis.call('ZCARD', KEYS[4])
  if day >= tonumber(ARGV[6]) then return {'rate_limit_day', tostring(day)} end
end
local held = redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')
if held >= tonumber(ARGV[7]) then return {'global_limit', tostring(held)} end
if ARGV[10] == 'peek' then return {'ok', ''} end
if ARGV[11] == '1' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[8]))
end
if ARGV[14] ~= '' then redis.call('SET', KEYS[6], ARGV[14], 'KEEPTTL') end
if ARGV[10] == 'hold' then return {'ok', ''} end
local lease = tonumber(ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', lease)
redis.call('ZADD', KEYS[3], now + lease, ARGV[9])
redis.call('HSET', KEYS[5], ARGV[9], ARGV[2])
redis.call('ZADD', KEYS[4], now, ARGV[2])
return {'ok', ''}
"""

# KEYS: 1 service lock, 2 locks zset, 3 running hash
# ARGV: 1 owner token, 2 service, 3 now ms, 4 lease ms
# returns: 1 renewed, 0 the lock is not ours any more
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[2])
return 1
"""

# KEYS: 1 service lock, 2 locks zset, 3 running hash
# ARGV: 1 owner token, 2 service
# returns: 1 released, 2 our lease had expired (bookkeeping cleaned), 0 not ours
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 1
end
if redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 2
end
return 0
"""

# KEYS: 1 service lock, 2 locks zset, 3 running hash
# ARGV: 1 service, 2 now ms
# returns: the rollback id whose lease expired (now reaped by this caller), or false
REAP_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not deadline or tonumber(deadline) > tonumber(ARGV[2]) then return false end
local owner = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return owner or ''
"""

# KEYS: 1 record-state key, 2 record key
# ARGV: 1 expected states, comma-separated ("" = any), 2 new state, 3 record JSON ("" = keep),
#       4 ttl s
# returns: {1, new} when written, {0, current} when the state did not match
TRANSITION_SCRIPT = """
local current = redis.call('GET', KEYS[1]) or ''
if ARGV[1] ~= '' then
  local ok = false
  for state in string.gmatch(ARGV[1], '[^,]+') do
    if state == current then ok = true end
  end
  if not ok then return {0, current} end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[4]))
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[4])) end
return {1, ARGV[2]}
"""


@dataclass(frozen=True)
class ReserveResult:
    reason: str  # ok | not_pending | duplicate | locked | cooldown | ...
    detail: str

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


class Scripts:
    """The registered scripts of one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.reserve = client.register_script(RESERVE_SCRIPT)
        self.renew = client.register_script(RENEW_SCRIPT)
        self.release = client.register_script(RELEASE_SCRIPT)
        self.reap = client.register_script(REAP_SCRIPT)
        self.transition = client.register_script(TRANSITION_SCRIPT)


def decode(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
