"""The rate governor's two Lua scripts (``governor.py``), each run with EVALSHA as one atomic
round trip. State per dimension d in (r)equests, (i)nput, (o)utput tokens, in one hash:
``t:d`` tokens left (may dip below 0 by the grace), ``b:d`` the bulk lane's share bucket,
``ol:d``/``ou:d`` a limit the API reported below ours and until when, ``ts`` the last refill,
``pause`` a 429's retry-after, ``q:<lane>`` seconds of refused callers queued per lane,
``lw`` live work waiting until. Counters (grants, deferrals, tightenings) in a second hash.
"""

# KEYS: state, stats. ARGV: now, burst seconds, grace, bulk share, lane, max wait, then per
# dimension: limit, cost. Returns {granted (0/1), wait seconds (string)}.
ACQUIRE = """
local now = tonumber(ARGV[1]); local burst = tonumber(ARGV[2]); local grace = tonumber(ARGV[3])
local share = tonumber(ARGV[4]); local lane = ARGV[5]; local max_wait = tonumber(ARGV[6])
local raw = redis.call('HGETALL', KEYS[1])
local st = {}
for i = 1, #raw, 2 do st[raw[i]] = tonumber(raw[i + 1]) end
local function get(k, d) local v = st[k]; if v == nil then return d end; return v end
local elapsed = math.max(0, now - get('ts', now))
local limited = lane == 'bulk' and get('lw', 0) > now
local dims = {'r', 'i', 'o'}
local wait, cost_s, hard = 0, 0, 0
local t, b, c, rates = {}, {}, {}, {}
for j, d in ipairs(dims) do
  local limit = tonumber(ARGV[5 + 2 * j]); local cost = tonumber(ARGV[6 + 2 * j])
  if get('ou:' .. d, 0) > now then
    local adopted = get('ol:' .. d, 0)
    if limit == 0 or adopted < limit then limit = adopted end
  end
  if limit > 0 and cost > 0 then
    local rate = limit / 60
    local cap = math.max(rate * burst, cost)
    t[d] = math.min(cap, get('t:' .. d, cap) + elapsed * rate)
    local brate = rate * share
    local bcap = math.max(brate * burst, cost)
    b[d] = math.min(bcap, get('b:' .. d, bcap) + elapsed * brate)
    c[d] = cost
    local need = (cost - t[d]) / rate
    local per = cost / rate
    if lane == 'bulk' then
      -- Bulk never takes the live reserve (the burst above its share), grace or not: a
      -- visitor's call finds capacity at once, and bulk still gets the whole refill rate.
      local reserve = math.min(cap * (1 - share), cap - cost)
      hard = math.max(hard, (cost + reserve - t[d]) / rate)
    end
    if limited then
      need = math.max(need, (cost - b[d]) / brate)
      per = cost / brate
    end
    wait = math.max(wait, need); cost_s = math.max(cost_s, per)
  end
end
local paused = get('pause', 0) - now
local q = {live = math.max(0, get('q:live', 0) - elapsed), bulk = math.max(0, get('q:bulk', 0) - elapsed)}
local granted = 0
if paused <= 0 and wait <= grace and hard <= 0 then
  granted = 1
  for d, cost in pairs(c) do
    t[d] = t[d] - cost
    if lane == 'bulk' then
      if limited then b[d] = b[d] - cost else b[d] = math.max(0, b[d] - cost) end
    end
  end
  wait = 0
  redis.call('HINCRBY', KEYS[2], 'granted:' .. lane, 1)
else
  wait = math.max(wait, hard, paused) + q[lane]
  q[lane] = math.min(max_wait, q[lane] + cost_s)
  if lane == 'live' then
    redis.call('HSET', KEYS[1], 'lw', math.max(get('lw', 0), now + wait + 1))
  end
  redis.call('HINCRBY', KEYS[2], 'deferred:' .. lane, 1)
end
for d, v in pairs(t) do redis.call('HSET', KEYS[1], 't:' .. d, v, 'b:' .. d, b[d]) end
redis.call('HSET', KEYS[1], 'ts', now, 'q:live', q.live, 'q:bulk', q.bulk)
redis.call('EXPIRE', KEYS[1], 3600)
return {granted, tostring(math.min(wait, max_wait))}
"""

# KEYS: state, stats. ARGV: now, retry-after (-1: none), then per dimension: configured limit,
# refund (reserved minus used; negative charges more), reported limit, remaining, reset (-1: none).
# Returns 1 when the report tightened the governor.
SETTLE = """
local now = tonumber(ARGV[1]); local retry_after = tonumber(ARGV[2])
local dims = {'r', 'i', 'o'}
local tightened = 0
for j, d in ipairs(dims) do
  local base = 3 + (j - 1) * 5
  local limit = tonumber(ARGV[base]); local refund = tonumber(ARGV[base + 1])
  local reported = tonumber(ARGV[base + 2]); local remaining = tonumber(ARGV[base + 3])
  local reset = tonumber(ARGV[base + 4])
  local tk = 't:' .. d
  local level = tonumber(redis.call('HGET', KEYS[1], tk) or 'nil')
  if level ~= nil and refund ~= 0 then level = level + refund end
  if reset > now then
    if remaining >= 0 and level ~= nil and remaining < level then
      level = remaining; tightened = 1
    end
    if reported > 0 and (limit == 0 or reported < limit) then
      local had = tonumber(redis.call('HGET', KEYS[1], 'ou:' .. d) or '0')
      redis.call('HSET', KEYS[1], 'ol:' .. d, reported, 'ou:' .. d, reset)
      if had <= now then tightened = 1 end
    end
  end
  if level ~= nil then redis.call('HSET', KEYS[1], tk, level) end
end
if retry_after > 0 then
  local pause = tonumber(redis.call('HGET', KEYS[1], 'pause') or '0')
  redis.call('HSET', KEYS[1], 'pause', math.max(pause, now + retry_after))
  tightened = 1
end
if tightened == 1 then
  redis.call('HINCRBY', KEYS[2], 'tightened', 1)
  redis.call('HSET', KEYS[2], 'last_tightened', now)
end
redis.call('EXPIRE', KEYS[1], 3600)
return tightened
"""
