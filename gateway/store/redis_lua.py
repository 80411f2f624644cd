"""The Lua scripts of the Redis store (gateway/store/redis*.py): each runs atomically in Redis."""

from __future__ import annotations

from gateway.seedance import FINISHED_STATUSES, UNFINISHED_STATUSES, lua_set
from gateway.store.base import MAX_COUNT

# Lua table literals: `ENDED[status]` is true for a finished task, `PENDING[status]` for one
# still queued or running (gateway.seedance.regresses is `ENDED[current] and PENDING[new]`).
ENDED, PENDING = lua_set(FINISHED_STATUSES), lua_set(UNFINISHED_STATUSES)

# A Lua function writing one open usage entry (a reservation). k: reservation hash, in-flight
# set, day tokens, month tokens, day usage hash, usage days, day cost, month cost; a: ref,
# key, model, day, month, tokens, day ttl, month ttl, price and cost ('' both: unpriced) (the
# layout is in gateway/store/redis_limits.py).
_WRITE_ENTRY = r"""
local function write_entry(k, a)
  redis.call('HSET', k[1], 'key', a[2], 'model', a[3], 'day', a[4], 'month', a[5],
             'tokens', a[6], 'open', '1', 'price', a[9], 'cost', a[10])
  if a[9] ~= '' then
    redis.call('INCRBY', k[7], a[10])
    redis.call('EXPIRE', k[7], a[7])
    redis.call('INCRBY', k[8], a[10])
    redis.call('EXPIRE', k[8], a[8])
    redis.call('HINCRBY', k[5], a[2] .. '\t' .. a[3] .. '\tc', a[10])
  end
  redis.call('SADD', k[2], a[1])
  redis.call('INCRBY', k[3], a[6])
  redis.call('EXPIRE', k[3], a[7])
  redis.call('INCRBY', k[4], a[6])
  redis.call('EXPIRE', k[4], a[8])
  local group = a[2] .. '\t' .. a[3] .. '\t'
  redis.call('HINCRBY', k[5], group .. 'n', 1)
  redis.call('HINCRBY', k[5], group .. 't', a[6])
  redis.call('ZADD', k[6], 0, a[4])
end
"""
# KEYS: task hash, owner set, seq counter, due set[, held reservation, the task's usage entry
# keys (see _WRITE_ENTRY)]. ARGV: created_at, task_id, next_poll_at or '' (a finished or
# deleted record is not due), n, n field/value items, usage mode ('' none, 'held': the held
# reservation takes the task id, 'new': an entry is written), held ref, the entry's args.
# 1 stored, 0 the task exists, -1 a usage entry already has the task id (nothing written).
ADD_TASK = _WRITE_ENTRY + r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[4])
local mode, held = ARGV[5 + n], ARGV[6 + n]
if mode ~= '' and KEYS[5] ~= KEYS[6] and redis.call('EXISTS', KEYS[6]) == 1 then return -1 end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(ARGV, 5, 4 + n))
redis.call('ZADD', KEYS[2], ARGV[1], string.format('%016d:', seq) .. ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'next_poll_at', ARGV[3])
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
end
if mode == 'held' and KEYS[5] ~= KEYS[6] then
  local open = redis.call('HGET', KEYS[5], 'open')
  if open then
    redis.call('RENAME', KEYS[5], KEYS[6])
    if open == '1' then
      redis.call('SREM', KEYS[7], held)
      redis.call('SADD', KEYS[7], ARGV[2])
    end
  end
elseif mode == 'new' then
  write_entry({unpack(KEYS, 6, 13)}, {unpack(ARGV, 7 + n, 16 + n)})
end
return 1
"""
# KEYS: task hash, due set. ARGV: status, updated_at, task_json, usage_tokens or '', task_id.
# Never creates the record, never takes a finished task back to queued/running (an older poll
# answer landing last), and a finished task leaves the due set. An answer forgets a first 404.
UPDATE_STATUS = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 0 end
local ended = $ENDED
local pending = $PENDING
if ended[current] and pending[ARGV[1]] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated_at', ARGV[2], 'task_json', ARGV[3])
redis.call('HDEL', KEYS[1], 'gone_suspected_at')
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'usage_tokens', ARGV[4]) end
if ended[ARGV[1]] then redis.call('ZREM', KEYS[2], ARGV[5]) end
return 1
""".replace("$ENDED", ENDED).replace("$PENDING", PENDING)
# KEYS: task hash, due set, the task's reservation. ARGV: prefix, task_id, verdict ('suspect'
# or 'gone', decided by gateway.store.base.upstream_404_verdict), the status and
# gone_suspected_at ('' none) it was decided on, now. -1: the record changed since (decide
# again); 1 gone: hidden as mark_deleted does, out of the due set, an open reservation settled
# at its estimate and its in-flight slot freed; 0 suspect: now is remembered.
UPSTREAM_404 = r"""
local p, id = ARGV[1], ARGV[2]
local v = redis.call('HMGET', KEYS[1], 'owner', 'seq', 'status', 'gone_suspected_at', 'deleted')
if not v[1] or v[5] == '1' or v[3] ~= ARGV[4] or (v[4] or '') ~= ARGV[5] then return -1 end
if ARGV[3] == 'suspect' then
  redis.call('HSET', KEYS[1], 'gone_suspected_at', ARGV[6])
  return 0
end
redis.call('HSET', KEYS[1], 'deleted', 1)
redis.call('ZREM', p .. 'o:' .. v[1], string.format('%016d:', tonumber(v[2])) .. id)
redis.call('ZREM', KEYS[2], id)
local r = redis.call('HMGET', KEYS[3], 'key', 'open')
if r[2] == '1' then
  redis.call('HSET', KEYS[3], 'open', '0')
  redis.call('SREM', p .. 'inflight:' .. r[1], id)
end
return 1
"""
# KEYS: task hash. ARGV: now, fresh_after. 1: `now` is the task's fetched_at (the caller asks
# the upstream); 0: a fetch after fresh_after is recorded, or the task is gone or deleted.
CLAIM_FETCH = r"""
local v = redis.call('HMGET', KEYS[1], 'status', 'deleted', 'fetched_at')
if not v[1] or v[2] == '1' then return 0 end
if v[3] and tonumber(v[3]) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'fetched_at', ARGV[1])
return 1
"""
# KEYS: owner set. ARGV: prefix, owner, query JSON. Reply: total, then the page's records.
LIST = """
local p, owner, q = ARGV[1], ARGV[2], cjson.decode(ARGV[3])
local rows
if q.newest then rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', q.low, 'WITHSCORES')
else rows = redis.call('ZRANGEBYSCORE', KEYS[1], q.low, '+inf', 'WITHSCORES') end
local function set(list)
  if not list then return nil end
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end
local statuses, ids = set(q.statuses), set(q.task_ids)
local by_fields = q.statuses or q.model or q.service_tier or q.surface
local matched = {}
for i = 1, #rows, 2 do
  local id = string.sub(rows[i], 18)
  local ok = not ids or ids[id]
  if ok and by_fields then
    local v = redis.call('HMGET', p .. 't:' .. id, 'status', 'model', 'upstream_model',
                         'service_tier', 'surface')
    ok = v[1] and (not statuses or statuses[v[1]])
      and (not q.model or v[2] == q.model or v[3] == q.model)
      and (not q.service_tier or v[4] == q.service_tier) and (not q.surface or v[5] == q.surface)
  end
  if ok then
    matched[#matched + 1] = {tonumber(rows[i + 1]), tonumber(string.sub(rows[i], 1, 16)), id}
  end
end
local out, first = {#matched}, 1
if q.after then
  local a = redis.call('HMGET', p .. 't:' .. q.after, 'owner', 'created_at', 'seq')
  if a[1] ~= owner then return out end
  local at, seq = tonumber(a[2]), tonumber(a[3])
  first = #matched + 1
  for i, m in ipairs(matched) do
    local sign = q.newest and -1 or 1
    if (m[1] - at) * sign > 0 or (m[1] == at and (m[2] - seq) * sign > 0) then
      first = i
      break
    end
  end
end
for i = first + q.offset, math.min(first + q.offset + q.limit - 1, #matched) do
  out[#out + 1] = redis.call('HMGET', p .. 't:' .. matched[i][3], unpack(q.fields))
end
return out
"""
# KEYS: key hash, digest index, name set[, old digest index]. ARGV: add|put, name, pairs.
# 0: the name is taken (add) or unknown (put); -1: the digest is another key's.
PUT_KEY = """
if (ARGV[1] == 'add') == (redis.call('EXISTS', KEYS[1]) == 1) then return 0 end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
if KEYS[4] and KEYS[4] ~= KEYS[2] and redis.call('GET', KEYS[4]) == ARGV[2] then
  redis.call('DEL', KEYS[4])
end
return 1
"""


# Limits (layout in gateway/store/redis_limits.py).

# KEYS: one minute's request count. ARGV: its time to live. Reply: the count so far.
COUNT_REQUEST = r"""
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

# KEYS and ARGV 1-10: the entry (see _WRITE_ENTRY); ARGV 11-15: max_in_flight, daily and
# monthly tokens, daily and monthly cost ('' = no limit). Reply: {} when held, else {limit,
# allowed, used}.
RESERVE = _WRITE_ENTRY + r"""
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('reservation ' .. ARGV[1] .. ' is already held')
end
if ARGV[11] ~= '' then
  local held = redis.call('SCARD', KEYS[2])
  if held >= tonumber(ARGV[11]) then return {'max_in_flight', ARGV[11], tostring(held)} end
end
local tokens, cost = tonumber(ARGV[6]), tonumber(ARGV[10]) or 0
for i, limit in ipairs({'daily_tokens', 'monthly_tokens'}) do
  local allowed = ARGV[11 + i]
  if allowed ~= '' then
    local used = redis.call('GET', KEYS[2 + i]) or '0'
    if tonumber(used) + tokens > tonumber(allowed) then return {limit, allowed, used} end
  end
end
for i, limit in ipairs({'daily_cost', 'monthly_cost'}) do
  local allowed = ARGV[13 + i]
  if allowed ~= '' then
    local used = redis.call('GET', KEYS[6 + i]) or '0'
    if tonumber(used) + cost > tonumber(allowed) then return {limit, allowed, used} end
  end
end
write_entry(KEYS, ARGV)
return {}
"""
# Shared by settle and release: the reservation's fields, and a change of its tokens (kind
# 'tok', usage field t) or cost ('cost', field c) applied to the day and month figures (and
# to the day's usage unless the group just went). `priced`: the entry has a price.
_ADJUST = r"""
local p = ARGV[1]
local r = redis.call('HMGET', KEYS[1], 'key', 'model', 'day', 'month', 'tokens', 'open',
                     'price', 'cost')
local priced = r[7] and r[7] ~= ''
local function adjust(delta, usage, kind, field)
  if delta == 0 then return end
  local by = string.format('%d', delta)
  for _, spec in ipairs({{':d:', r[3], ARGV[4]}, {':m:', r[4], ARGV[5]}}) do
    local name = p .. (kind or 'tok') .. spec[1] .. r[1] .. ':' .. spec[2]
    redis.call('INCRBY', name, by)
    redis.call('EXPIRE', name, spec[3])
  end
  if usage then
    redis.call('HINCRBY', p .. 'u:' .. r[3], r[1] .. '\t' .. r[2] .. '\t' .. (field or 't'), by)
  end
end
"""
# KEYS: reservation. ARGV: prefix, ref, tokens, day ttl, month ttl. Only an open one settles;
# a priced one is priced again at its price (gateway.keys.prices.cost_micros, in Lua).
# Reply: {1, settled cost or ''} when settled, {0} otherwise.
SETTLE = _ADJUST + r"""
if r[6] ~= '1' then return {0} end
adjust(tonumber(ARGV[3]) - tonumber(r[5]), true)
local cost = ''
if priced then
  local settled = math.min(math.floor(tonumber(ARGV[3]) * tonumber(r[7]) + 0.5), $MAX)
  adjust(settled - tonumber(r[8]), true, 'cost', 'c')
  cost = string.format('%d', settled)
end
redis.call('HSET', KEYS[1], 'tokens', ARGV[3], 'open', '0', 'cost', cost)
redis.call('SREM', p .. 'inflight:' .. r[1], ARGV[2])
return {1, cost}
""".replace("$MAX", str(MAX_COUNT))
# KEYS: reservation. ARGV: prefix, ref, unused, day ttl, month ttl. Open or settled, it goes.
RELEASE = _ADJUST + r"""
if not r[1] then return 0 end
if r[6] == '1' then redis.call('SREM', p .. 'inflight:' .. r[1], ARGV[2]) end
local usage, group = p .. 'u:' .. r[3], r[1] .. '\t' .. r[2] .. '\t'
local gone = redis.call('HINCRBY', usage, group .. 'n', -1) <= 0
if gone then
  redis.call('HDEL', usage, group .. 'n', group .. 't', group .. 'c')
  if redis.call('EXISTS', usage) == 0 then redis.call('ZREM', p .. 'udays', r[3]) end
end
adjust(-tonumber(r[5]), not gone)
if priced then adjust(-tonumber(r[8]), not gone, 'cost', 'c') end
redis.call('DEL', KEYS[1])
return 1
"""
# KEYS: usage days. ARGV: prefix, first day, last day (both included). Reply: day, its fields.
USAGE = r"""
local out = {}
for _, day in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '[' .. ARGV[2], '[' .. ARGV[3])) do
  out[#out + 1] = day
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. 'u:' .. day)
end
return out
"""

# Tracker (layout in gateway/store/redis_tracker.py).

# KEYS: due set. ARGV: prefix, now, limit, the record fields to return. Walks the due tasks in
# score order, dropping finished or deleted ones, until `limit` free ones are found.
DUE = r"""
local p, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ended, pending, out, offset = $ENDED, $PENDING, {}, 0
while #out < limit do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', offset,
                         limit - #out)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local task = p .. 't:' .. id
    local v = redis.call('HMGET', task, 'status', 'deleted', 'lease_until')
    if not v[1] or v[2] == '1' or ended[v[1]] then
      redis.call('ZREM', KEYS[1], id)
    else
      offset = offset + 1
      if pending[v[1]] and tonumber(v[3] or '0') <= now then
        out[#out + 1] = redis.call('HMGET', task, unpack(ARGV, 4))
      end
    end
  end
end
return out
""".replace("$ENDED", ENDED).replace("$PENDING", PENDING)
# KEYS: task hash. ARGV: holder, until, now. 1 when the lease is taken (or renewed).
CLAIM = r"""
local v = redis.call('HMGET', KEYS[1], 'owner', 'lease_holder', 'lease_until', 'next_poll_at')
if not v[1] then return 0 end
if v[2] ~= ARGV[1] then
  -- Not ours: free, and still due (another replica may have polled it since it was listed).
  if tonumber(v[3] or '0') > tonumber(ARGV[3]) then return 0 end
  if tonumber(v[4] or '0') > tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], 'lease_holder', ARGV[1], 'lease_until', ARGV[2])
return 1
"""
# KEYS: task hash, due set. ARGV: task_id, holder, next poll. Only the holder may schedule.
SCHEDULE = r"""
if redis.call('HGET', KEYS[1], 'lease_holder') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'next_poll_at', ARGV[3], 'lease_until', '0')
redis.call('HDEL', KEYS[1], 'lease_holder')
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
return 1
"""

# Idempotency-Key claims (layout in gateway/store/redis_idempotency.py).

_CLAIM_FIELDS = ("'fingerprint', 'state', 'holder', 'lease_until', 'started_at', 'expires_at', "
                 "'failed_at', 'task_id', 'upstream_key'")
# KEYS: the claim hash. ARGV: fingerprint, holder, now, lease until, expires at, ttl (whole
# seconds). Reply: {1} for a new claim, else {taken 1/0, the fields as they were}.
CLAIM_IDEMPOTENCY = r"""
local v = redis.call('HMGET', KEYS[1], $FIELDS)
local now = tonumber(ARGV[3])
if not v[1] or tonumber(v[6]) <= now then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'state', 'pending', 'holder', ARGV[2],
             'lease_until', ARGV[4], 'started_at', ARGV[3], 'expires_at', ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  return {1}
end
local taken = 0
if v[1] == ARGV[1] and (v[2] == 'lost' or (v[2] == 'pending' and tonumber(v[4]) <= now)) then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'holder', ARGV[2], 'lease_until', ARGV[4])
  -- A lapsed lease is an attempt that may have reached the upstream.
  if not v[7] then redis.call('HSET', KEYS[1], 'failed_at', v[4]) end
  taken = 1
end
return {taken, unpack(v)}
""".replace("$FIELDS", _CLAIM_FIELDS)
# KEYS: the claim hash. ARGV: holder, lease until, task id, upstream key ('' = unchanged).
HOLD_IDEMPOTENCY = r"""
local v = redis.call('HMGET', KEYS[1], 'holder', 'state')
if v[1] ~= ARGV[1] or v[2] ~= 'pending' then return 0 end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'lease_until', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'task_id', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'upstream_key', ARGV[4]) end
return 1
"""
# KEYS: the claim hash. ARGV: holder, end ('done', 'lost' or 'released'), now.
END_IDEMPOTENCY = r"""
local v = redis.call('HMGET', KEYS[1], 'holder', 'state', 'failed_at', 'task_id')
if v[1] ~= ARGV[1] or v[2] ~= 'pending' then return 0 end
if ARGV[2] == 'done' then
  if not v[4] then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'done')
elseif ARGV[2] == 'lost' then
  redis.call('HSET', KEYS[1], 'state', 'lost', 'failed_at', ARGV[3])
elseif not v[3] and not v[4] then
  redis.call('DEL', KEYS[1])
  return 1
else
  -- An earlier attempt was lost (or named its task): it stays so.
  redis.call('HSET', KEYS[1], 'state', 'lost')
  if not v[3] then redis.call('HSET', KEYS[1], 'failed_at', ARGV[3]) end
end
redis.call('HDEL', KEYS[1], 'holder')
return 1
"""

SCRIPTS = {
    "add_task": ADD_TASK, "update_status": UPDATE_STATUS, "list": LIST, "put_key": PUT_KEY,
    "upstream_404": UPSTREAM_404, "claim_fetch": CLAIM_FETCH,
    "count_request": COUNT_REQUEST, "reserve": RESERVE, "settle": SETTLE, "release": RELEASE,
    "usage": USAGE, "due": DUE, "claim": CLAIM, "schedule": SCHEDULE,
    "claim_idempotency": CLAIM_IDEMPOTENCY, "hold_idempotency": HOLD_IDEMPOTENCY,
    "end_idempotency": END_IDEMPOTENCY,
}
