"""The reservation script: dedupe, per-service and per-target safety, the record, in one step.

Times are Redis's own clock (`TIME`), never the caller's: replicas with skewed clocks agree.
A safety target is an Argo CD app (`argocd:<app>`, exact) or a manifest folder
(`git:<repo>@<branch>:<path>`); folders of one repo+branch conflict when one equals or
contains the other, checked here against every folder that branch ever had a rollback of
(`gitpaths:<repo>@<branch>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from receiver.state.lease_scripts import (
    MARK_TRANSITION_SCRIPT,
    PRELUDE,
    REAP_SCRIPT,
    RELEASE_SCRIPT,
    RENEW_SCRIPT,
    TRANSITION_SCRIPT,
)
from receiver.state.status_script import SERVICE_STATUS_SCRIPT

# KEYS: 1 episode, 2 service lock, 3 locks zset (service -> lease deadline ms), 4 starts zset
#       of the service (id -> start ms), 5 running hash (service -> id), 6 record-state key,
#       7 record key, 8 history zset, 9 history zset of the service, 10 transitions hash of
#       the service, 11 services set, 12 global starts zset (id -> start ms), 13 pending
#       zset, 14 veto zset, 15 locktargets hash (service -> target ids, one a line)
# ARGV: 1 rollback id (lock owner), 2 lease ms, 3 cooldown ms, 4 max per hour, 5 max per day,
#       6 max concurrent, 7 episode ttl s, 8 service, 9 mode: reserve | hold | peek,
#       10 check episode 1/0, 11 skip cooldown+rate limits 1/0, 12 expected record state
#       ("" = none), 13 record state to set on success ("" = none), 14 key prefix,
#       15 global limit window ms, 16 record JSON to create ("" = none), 17 retention s,
#       18 max records, 19 approval expiry s from now ("" = none), 20 veto s ("" = none),
#       21.. safety targets, three each: id, repo@branch ("" = exact id), path
# returns: {reason, detail, target}; reason "ok" or the first that blocks, in the contract's
#          order: not_pending, duplicate, locked, cooldown, rate_limit_hour, rate_limit_day,
#          global_limit; target is the shared safety target that blocked ("" = the service)
RESERVE_SCRIPT = (
    PRELUDE
    + """
local now = now_ms()
local prefix, id, service = ARGV[14], ARGV[1], ARGV[8]
local DAY = 86400000
if ARGV[12] ~= '' then
  local state = redis.call('GET', KEYS[6])
  if state ~= ARGV[12] then return {'not_pending', state or 'unknown', ''} end
end
if ARGV[10] == '1' then
  local prev = redis.call('GET', KEYS[1])
  if prev and redis.call('EXISTS', prefix .. 'record:' .. prev) == 1 then
    return {'duplicate', prev, ''}
  end
end
local function conflicts(a, b)
  if a == b or a == '' or b == '' then return true end
  if #a < #b then a, b = b, a end
  return string.sub(a, 1, #b + 1) == b .. '/'
end
-- every safety target with the ids it conflicts with (itself, and containing folders)
local targets = {}
for i = 21, #ARGV, 3 do
  local t = {id = ARGV[i], scope = ARGV[i + 1], path = ARGV[i + 2], ids = {ARGV[i]}}
  if t.scope ~= '' then
    for _, p in ipairs(redis.call('SMEMBERS', prefix .. 'gitpaths:' .. t.scope)) do
      if p ~= t.path and conflicts(p, t.path) then
        t.ids[#t.ids + 1] = 'git:' .. t.scope .. ':' .. p
      end
    end
  end
  targets[#targets + 1] = t
end
local owner = redis.call('GET', KEYS[2])
if owner then return {'locked', owner, ''} end
for _, t in ipairs(targets) do
  for _, other in ipairs(t.ids) do
    local held = redis.call('GET', prefix .. 'tlock:' .. other)
    if held then return {'locked', held, other} end
  end
end
-- the starts of the service, then of each target (union over conflicting folders)
local windows = {{zsets = {KEYS[4]}, name = ''}}
for _, t in ipairs(targets) do
  local zsets = {}
  for _, other in ipairs(t.ids) do zsets[#zsets + 1] = prefix .. 'tstarts:' .. other end
  windows[#windows + 1] = {zsets = zsets, name = t.id}
end
local function starts(w)
  local seen, last, hour, day = {}, nil, 0, 0
  for _, z in ipairs(w.zsets) do
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - DAY)
    local all = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
    for j = 1, #all, 2 do
      local at = tonumber(all[j + 1])
      if not seen[all[j]] then
        seen[all[j]] = true
        day = day + 1
        if at >= now - 3600000 then hour = hour + 1 end
        if not last or at > last then last = at end
      end
    end
  end
  return last, hour, day
end
if ARGV[11] ~= '1' then
  local counted = {}
  for k, w in ipairs(windows) do counted[k] = {starts(w)} end
  for k, w in ipairs(windows) do
    local last = counted[k][1]
    if last then
      local left = last + tonumber(ARGV[3]) - now
      if left > 0 then return {'cooldown', tostring(left), w.name} end
    end
  end
  for k, w in ipairs(windows) do
    if counted[k][2] >= tonumber(ARGV[4]) then
      return {'rate_limit_hour', tostring(counted[k][2]), w.name}
    end
  end
  for k, w in ipairs(windows) do
    if counted[k][3] >= tonumber(ARGV[5]) then
      return {'rate_limit_day', tostring(counted[k][3]), w.name}
    end
  end
end
-- the global limit: rollbacks holding a lock, or started within the window
local window = tonumber(ARGV[15])
redis.call('ZREMRANGEBYSCORE', KEYS[12], '-inf', now - window)
local busy, count = {}, 0
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[12], '(' .. (now - window), '+inf')) do
  if not busy[rid] then busy[rid] = true; count = count + 1 end
end
for _, svc in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. now, '+inf')) do
  local rid = redis.call('HGET', KEYS[5], svc) or ('service:' .. svc)
  if not busy[rid] then busy[rid] = true; count = count + 1 end
end
if count >= tonumber(ARGV[6]) then return {'global_limit', tostring(count), ''} end
if ARGV[9] == 'peek' then return {'ok', '', ''} end
if ARGV[10] == '1' then redis.call('SET', KEYS[1], id, 'EX', tonumber(ARGV[7])) end
local retention = tonumber(ARGV[17])
local now_s = now / 1000
if ARGV[16] ~= '' then
  redis.call('SET', KEYS[7], ARGV[16], 'EX', retention)
  redis.call('SET', KEYS[6], ARGV[13], 'EX', retention)
  for _, index in ipairs({KEYS[8], KEYS[9]}) do
    redis.call('ZADD', index, now_s, id)
    redis.call('ZREMRANGEBYSCORE', index, '-inf', now_s - retention)
    redis.call('ZREMRANGEBYRANK', index, 0, -tonumber(ARGV[18]) - 1)
  end
  if ARGV[19] ~= '' then redis.call('ZADD', KEYS[13], now_s + tonumber(ARGV[19]), id) end
  if ARGV[20] ~= '' then redis.call('ZADD', KEYS[14], now_s + tonumber(ARGV[20]), id) end
elseif ARGV[13] ~= '' then
  redis.call('SET', KEYS[6], ARGV[13], 'KEEPTTL')
end
redis.call('SADD', KEYS[11], service)
if ARGV[9] == 'hold' then return {'ok', '', ''} end
local lease = tonumber(ARGV[2])
redis.call('SET', KEYS[2], id, 'PX', lease)
redis.call('ZADD', KEYS[3], now + lease, service)
redis.call('HSET', KEYS[5], service, id)
redis.call('ZADD', KEYS[4], now, id)
redis.call('ZADD', KEYS[12], now, id)
local names = {}
for _, t in ipairs(targets) do
  redis.call('SET', prefix .. 'tlock:' .. t.id, id, 'PX', lease)
  redis.call('ZADD', prefix .. 'tstarts:' .. t.id, now, id)
  redis.call('PEXPIRE', prefix .. 'tstarts:' .. t.id, DAY)
  if t.scope ~= '' then redis.call('SADD', prefix .. 'gitpaths:' .. t.scope, t.path) end
  names[#names + 1] = t.id
end
if #names > 0 then redis.call('HSET', KEYS[15], service, table.concat(names, '\\n')) end
redis.call('DEL', KEYS[10])
redis.call('HSET', KEYS[10], 'running', string.format('%.3f', now_s))
return {'ok', '', ''}
"""
)

# KEYS: 1 episode, then per name of the revision memory: badrevs, restored, memory (marker)
# ARGV: 1 key prefix
# returns: {owner, its record's state} when a rollback claimed the episode and its record
#          still exists (the reservation's own duplicate test); else {'', bad revisions,
#          restored revisions, marker present (1/0) per name}: a first delivery reads its
#          memory in the same trip
EPISODE_SCRIPT = """
local owner = redis.call('GET', KEYS[1])
if owner and redis.call('EXISTS', ARGV[1] .. 'record:' .. owner) == 1 then
  return {owner, redis.call('GET', ARGV[1] .. 'rstate:' .. owner) or ''}
end
local bad, restored, present = {}, {}, {}
for i = 2, #KEYS, 3 do
  bad[#bad + 1] = KEYS[i]
  restored[#restored + 1] = KEYS[i + 1]
  present[#present + 1] = redis.call('EXISTS', KEYS[i + 2])
end
if #bad == 0 then return {''} end
return {'', redis.call('SUNION', unpack(bad)), redis.call('SUNION', unpack(restored)), present}
"""


@dataclass(frozen=True)
class ReserveResult:
    reason: str  # ok | not_pending | duplicate | locked | cooldown | ...
    detail: str
    target: str = ""  # the shared safety target that blocked; "" = the service itself

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
        self.mark_transition = client.register_script(MARK_TRANSITION_SCRIPT)
        self.service_status = client.register_script(SERVICE_STATUS_SCRIPT)
        self.episode = client.register_script(EPISODE_SCRIPT)


def decode(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
