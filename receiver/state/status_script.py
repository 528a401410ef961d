"""Lua of the status page's reads (receiver/state/overview.py): one call per service."""

from __future__ import annotations

from receiver.state.lease_scripts import PRELUDE

# KEYS: 1 starts zset of the service (id -> start ms), 2 service lock, 3 history zset of the
#       service; the records it names are read as <prefix>record:<id> and <prefix>rstate:<id>
# ARGV: 1 key prefix, 2 newest records scanned, 3 states of a rollback that ran,
#       comma-separated, 4 the skipped state
# returns: {now ms, starts in the last hour, in the last day, newest start score, lock owner,
#          ran record JSON, its rstate, skip record JSON, its rstate} ("" = none); a record's
#          state is its rstate, or the JSON's own `state` where no rstate was written
SERVICE_STATUS_SCRIPT = (
    PRELUDE
    + """
local now = now_ms()
local hour = redis.call('ZCOUNT', KEYS[1], now - 3600000, '+inf')
local day = redis.call('ZCOUNT', KEYS[1], now - 86400000, '+inf')
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local owner = redis.call('GET', KEYS[2]) or ''
local ran_states = {}
for state in string.gmatch(ARGV[3], '[^,]+') do ran_states[state] = true end
local found = {'', '', '', ''}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[3], 0, tonumber(ARGV[2]) - 1)) do
  local body = redis.call('GET', ARGV[1] .. 'record:' .. id)
  if body then
    local rstate = redis.call('GET', ARGV[1] .. 'rstate:' .. id) or ''
    local state = rstate
    if state == '' then
      local ok, data = pcall(cjson.decode, body)
      state = ok and type(data) == 'table' and type(data.state) == 'string' and data.state or ''
    end
    if found[1] == '' and ran_states[state] then found[1], found[2] = body, rstate end
    if found[3] == '' and state == ARGV[4] then found[3], found[4] = body, rstate end
    if found[1] ~= '' and found[3] ~= '' then break end
  end
end
return {now, hour, day, last[2] or '', owner, found[1], found[2], found[3], found[4]}
"""
)
