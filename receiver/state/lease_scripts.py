"""Lua for a held lock record (renew, release, reap), record transitions and transition times.

One lock record per rollback: `lock:<service>` (owner, PX lease), one `tlock:<target>` per
safety target with the same owner and lease, and `locktargets[service]` naming those targets,
so each script below covers the service and all its targets in one step. Times are Redis's
own clock (`TIME`), so replicas with skewed clocks agree.
"""

from __future__ import annotations

# Shared Lua prelude: Redis's clock in ms, the target ids of a held lock record.
PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function held_targets(hash, service)
  local ids = {}
  local raw = redis.call('HGET', hash, service)
  if raw then
    for id in string.gmatch(raw, '[^\\n]+') do ids[#ids + 1] = id end
  end
  return ids
end
local function drop_targets(prefix, hash, service, owner)
  for _, id in ipairs(held_targets(hash, service)) do
    local key = prefix .. 'tlock:' .. id
    if redis.call('GET', key) == owner then redis.call('DEL', key) end
  end
  redis.call('HDEL', hash, service)
end
"""

# KEYS: 1 service lock, 2 locks zset, 3 running hash, 4 locktargets hash
# ARGV: 1 owner token, 2 service, 3 lease ms, 4 key prefix
# returns: 1 renewed (service and every target), 0 the lock is not ours any more
RENEW_SCRIPT = (
    PRELUDE
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local lease = tonumber(ARGV[3])
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('ZADD', KEYS[2], now_ms() + lease, ARGV[2])
for _, id in ipairs(held_targets(KEYS[4], ARGV[2])) do
  local key = ARGV[4] .. 'tlock:' .. id
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, lease) end
end
return 1
"""
)

# KEYS: 1 service lock, 2 locks zset, 3 running hash, 4 locktargets hash
# ARGV: 1 owner token, 2 service, 3 key prefix
# returns: 1 released, 2 our lease had expired (bookkeeping cleaned), 0 not ours
RELEASE_SCRIPT = (
    PRELUDE
    + """
local mine = redis.call('GET', KEYS[1]) == ARGV[1]
if not mine and redis.call('HGET', KEYS[3], ARGV[2]) ~= ARGV[1] then return 0 end
if mine then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
drop_targets(ARGV[3], KEYS[4], ARGV[2], ARGV[1])
if mine then return 1 end
return 2
"""
)

# KEYS: 1 service lock, 2 locks zset, 3 running hash, 4 locktargets hash
# ARGV: 1 service, 2 key prefix
# returns: the rollback id whose lease expired (now reaped by this caller), or false
REAP_SCRIPT = (
    PRELUDE
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not deadline or tonumber(deadline) > now_ms() then return false end
local owner = redis.call('HGET', KEYS[3], ARGV[1]) or ''
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
drop_targets(ARGV[2], KEYS[4], ARGV[1], owner)
return owner
"""
)

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

# KEYS: 1 transitions hash of the service, 2 services set
# ARGV: 1 state, 2 service, 3 "1" when this state starts a new run (older states cleared)
# returns: the time written (seconds, Redis's clock)
MARK_TRANSITION_SCRIPT = (
    PRELUDE
    + """
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
local at = string.format('%.3f', now_ms() / 1000)
redis.call('HSET', KEYS[1], ARGV[1], at)
redis.call('SADD', KEYS[2], ARGV[2])
return at
"""
)
