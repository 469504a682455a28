/**
 * The one Lua script a clustered breaker runs per sync round, on one hash per breaker (one key:
 * Redis Cluster routes it to one node). Time comes from Redis (`TIME`), so instances with skewed
 * clocks agree on when a report expires.
 *
 * shared: ARGV = "shared", instance, publish ("Open" | "Closed" | ""), -, -, -, keyTtlMs.
 *   A publish bumps `gen` and sets `state`; returns { gen, state }.
 * quorum: ARGV = "quorum", instance, -, failing ("1" | "0"), reportTtlMs, n, keyTtlMs.
 *   Sets or removes this instance's report `r:<instance>` (expiring at now + reportTtlMs), drops
 *   expired reports, and bumps `epoch` each time the live reports reach n from below; returns
 *   { epoch, active (1 | 0), live reports }.
 */
export const script = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
if ARGV[1] == 'shared' then
  if ARGV[3] ~= '' then
    redis.call('HINCRBY', key, 'gen', 1)
    redis.call('HSET', key, 'state', ARGV[3])
  end
  redis.call('PEXPIRE', key, ARGV[7])
  local v = redis.call('HMGET', key, 'gen', 'state')
  return { tonumber(v[1] or '0'), v[2] or 'Closed' }
end
local field = 'r:' .. ARGV[2]
if ARGV[4] == '1' then
  redis.call('HSET', key, field, now + tonumber(ARGV[5]))
else
  redis.call('HDEL', key, field)
end
local all = redis.call('HGETALL', key)
local live = 0
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 2) == 'r:' then
    if tonumber(all[i + 1]) > now then live = live + 1 else redis.call('HDEL', key, f) end
  end
end
local active = redis.call('HGET', key, 'active') == '1'
local epoch = tonumber(redis.call('HGET', key, 'epoch') or '0')
if live >= tonumber(ARGV[6]) then
  if not active then
    epoch = redis.call('HINCRBY', key, 'epoch', 1)
    redis.call('HSET', key, 'active', '1')
  end
  active = true
elseif active then
  redis.call('HSET', key, 'active', '0')
  active = false
end
redis.call('PEXPIRE', key, ARGV[7])
return { epoch, active and 1 or 0, live }
`
