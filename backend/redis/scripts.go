package redis

import goredis "github.com/redis/go-redis/v9"

// Every script starts with luaLib. Calling convention:
//
//	KEYS[1] = <p>:parts (routes the call to the prefix's slot on a cluster)
//	ARGV[1] = <p> (the key prefix, "{name}")
//	ARGV[2] = wakeup channel ("" = no wakeups)
//	ARGV[3] = completions channel
//	ARGV[4…] = the script's own arguments (index A)
//
// Record hashes hold every non-null field as a string; times are integer
// microseconds since the Unix epoch; metadata is one JSON field, and
// metadata keys written later (heartbeat patches) are overlay fields
// "m:<key>" holding the JSON value. policy holds the task policy's JSON
// (absent = the zero policy) and interruptions the shutdown-interruption
// counter (absent = 0); the scripts never interpret the policy.
// dispatch_until (µs, absent = none) is the deadline of an external
// dispatch reservation: a record holding it is neither placed (claimed or
// listed as due), expired nor listed as stale. The reservation's marker
// text in execution_ref is opaque to the scripts. Internal
// fields: ix (placement: "r" ready, "f" future/scheduled set, absent =
// neither), forever ("1") and mo (overlay fields present).
const luaLib = `
local P = ARGV[1]
local WAKECH = ARGV[2]
local DONECH = ARGV[3]
local A = 4
local NOW
local function now()
  if not NOW then
    local t = redis.call('TIME')
    NOW = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return NOW
end
local function fmt(n) return string.format('%d', n) end
local function pad(n) return string.format('%016d', n) end
local function tkey(id) return P .. ':task:' .. id end
local function isopen(s) return s == 'pending' or s == 'scheduled' end
local function isterm(s) return s == 'completed' or s == 'failed' or s == 'cancelled' or s == 'expired' end
local STATUSES = {'pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled', 'expired'}
local function num(v) if v == nil then return nil end return tonumber(v) end
local function nz(v) if v == nil or v == '' then return nil end return v end
local PTC = {}
-- ptof names the partition of (execution backend, queue): "<len>:<backend>:<queue>".
local function ptof(backend, queue)
  local t = PTC[backend]
  if t == nil then t = {}; PTC[backend] = t end
  local pt = t[queue]
  if pt == nil then pt = #backend .. ':' .. backend .. ':' .. queue; t[queue] = pt end
  return pt
end
local KC = {}
-- key returns the memoized key P .. ':' .. kind .. ':' .. name.
local function key(kind, name)
  local t = KC[kind]
  if t == nil then t = {}; KC[kind] = t end
  local k = t[name]
  if k == nil then k = P .. ':' .. kind .. ':' .. name; t[name] = k end
  return k
end
local IDX = {}
local function idxk(s, q)
  local t = IDX[s]
  if t == nil then t = {}; IDX[s] = t end
  local k = t[q]
  if k == nil then k = P .. ':idx:' .. s .. ':' .. q; t[q] = k end
  return k
end
local NOWS
local function nows()
  if not NOWS then NOWS = fmt(now()) end
  return NOWS
end
local function splitpt(pt)
  local c = string.find(pt, ':', 1, true)
  local n = tonumber(string.sub(pt, 1, c - 1))
  return string.sub(pt, c + 1, c + n), string.sub(pt, c + n + 2)
end
-- bless is a byte-wise (locale-independent) string order.
local function bless(a, b)
  local n = #a
  if #b < n then n = #b end
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local REG = {}
local function registerpt(backend, queue)
  local pt = ptof(backend, queue)
  if not REG[pt] then
    REG[pt] = true
    redis.call('SADD', P .. ':parts', pt)
    redis.call('SADD', P .. ':queues', queue)
  end
  return pt
end
local function register(r) return registerpt(r.execution_backend, r.queue) end
-- app appends a changed field to a raw HGETALL reply; the reader applies
-- fields in order, and "" means null.
local function app(a, f, v)
  a[#a + 1] = f
  a[#a + 1] = v or ''
end

local WAKE = false
local DONE = {}
-- DONETASKS collects task names given completed records in this call; flush
-- registers them in <p>:donetasks, which cleanup walks.
local DONETASKS = {}
-- load reads a record into a table; a stored "" is null (hot paths clear
-- fields by writing "" in the same HSET instead of a separate HDEL).
local function load(id)
  local a = redis.call('HGETALL', tkey(id))
  if #a == 0 then return nil end
  local r = {}
  for i = 1, #a, 2 do
    local v = a[i + 1]
    if v ~= '' then r[a[i]] = v end
  end
  return r
end
-- A record travels back to Go as the values of FIELDS in order (false =
-- null), followed by (key, json) pairs of metadata overlay fields "m:<key>".
local FIELDS = {'id', 'task_name', 'args', 'queue', 'execution_backend', 'execution_profile', 'execution_ref',
  'worker_id', 'status', 'priority', 'max_retries', 'retry_count', 'scheduled_at', 'expires_at', 'created_at',
  'queued_at', 'started_at', 'completed_at', 'heartbeat_at', 'result', 'error', 'key', 'metadata', 'policy', 'interruptions',
  'dispatch_until', 'snooze_count', 'errors', 'tags', 'ix', 'forever', 'mo'}
local NF = #FIELDS
local function flat(r)
  local a = {}
  for i = 1, NF do a[i] = r[FIELDS[i]] or false end
  if r.mo ~= nil then
    for k, v in pairs(r) do
      if string.byte(k, 1) == 109 and string.byte(k, 2) == 58 then a[#a + 1] = k; a[#a + 1] = v end
    end
  end
  return a
end
-- hmget reads a record in FIELDS order (plus overlays); nil when missing.
local function hmget(k)
  local v = redis.call('HMGET', k, unpack(FIELDS))
  if not v[1] then return nil end
  for i = 1, NF do if v[i] == '' then v[i] = false end end
  if v[NF] then
    local a = redis.call('HGETALL', k)
    for i = 1, #a, 2 do
      local f = a[i]
      if string.byte(f, 1) == 109 and string.byte(f, 2) == 58 then v[#v + 1] = f; v[#v + 1] = a[i + 1] end
    end
  end
  return v
end
-- members lists the index entries a record belongs to: key -> {score, member}.
-- The hot paths (enqueue, claim, complete) maintain the same entries inline.
local function members(r)
  local m = {}
  local id = r.id
  local cid = pad(tonumber(r.created_at)) .. id
  local s = r.status
  m[idxk(s, r.queue)] = {0, cid}
  local pt = ptof(r.execution_backend, r.queue)
  local placed = isopen(s) and r.ix
  if placed == 'r' then
    m[key('ready', pt)] = {0 - tonumber(r.priority), pad(tonumber(r.queued_at)) .. cid}
  elseif placed == 'f' then
    m[key('sched', pt)] = {tonumber(r.scheduled_at), id}
  end
  if isopen(s) and r.execution_ref == nil and r.expires_at ~= nil then
    m[key('expiry', pt)] = {tonumber(r.expires_at), cid}
  end
  if s == 'completed' then
    -- Completed records are indexed by task only; cleanup walks those
    -- indexes too, so one insert per completion serves both.
    m[key('done', r.task_name)] = {tonumber(r.completed_at), id}
    DONETASKS[r.task_name] = true
  elseif isterm(s) then
    m[key('term', s)] = {tonumber(r.completed_at), id}
  elseif r.execution_ref ~= nil then
    m[P .. ':external'] = {tonumber(r.started_at or r.created_at), id}
  end
  return m
end
-- Index writes are deferred and grouped per key (one ZREM and one ZADD per
-- key per flush); the last write of a member wins. zflush applies them and
-- must run before a script reads an index it may have written.
local ZP, ZK = {}, {}
local function zput(k, m, s)
  local t = ZP[k]
  if t == nil then
    t = {}
    ZP[k] = t
    ZK[#ZK + 1] = k
  end
  t[m] = s
end
local function zflush()
  for _, k in ipairs(ZK) do
    local rem, add = {}, {}
    for m, s in pairs(ZP[k]) do
      if s == false then rem[#rem + 1] = m else add[#add + 1] = s; add[#add + 1] = m end
    end
    for i = 1, #rem, 500 do redis.call('ZREM', k, unpack(rem, i, math.min(i + 499, #rem))) end
    for i = 1, #add, 1000 do redis.call('ZADD', k, unpack(add, i, math.min(i + 999, #add))) end
  end
  ZP, ZK = {}, {}
end
local function reindex(old, new)
  for k, v in pairs(old) do
    local n = new[k]
    if n == nil or n[2] ~= v[2] then zput(k, v[2], false) end
  end
  for k, v in pairs(new) do
    local o = old[k]
    if o == nil or o[2] ~= v[2] or o[1] ~= v[1] then zput(k, v[2], v[1]) end
  end
end
local function set(r, ch, f, v)
  if r[f] ~= v then r[f] = v; ch[f] = true end
end
local function save(r, ch)
  local hs, hd = {}, {}
  for f in pairs(ch) do
    local v = r[f]
    if v == nil then hd[#hd + 1] = f else hs[#hs + 1] = f; hs[#hs + 1] = v end
  end
  local k = tkey(r.id)
  if #hs > 0 then redis.call('HSET', k, unpack(hs)) end
  if #hd > 0 then redis.call('HDEL', k, unpack(hd)) end
end
-- place decides where an open record waits: ready (due, unexpired), the
-- scheduled set (due later) or neither (reserved for dispatch or overdue). A
-- due scheduled record placed in ready becomes pending.
local function place(r, ch)
  local ix = 'n'
  if isopen(r.status) and r.dispatch_until == nil then
    local sa = num(r.scheduled_at)
    if sa ~= nil and sa > now() then
      ix = 'f'
    else
      local ea = num(r.expires_at)
      if not (ea ~= nil and ea <= now()) then
        ix = 'r'
        if r.status == 'scheduled' then set(r, ch, 'status', 'pending') end
      end
    end
  end
  set(r, ch, 'ix', ix)
end
local function commit(r, ch, old)
  place(r, ch)
  save(r, ch)
  reindex(old, members(r))
end
local function isdue(r)
  local sa = num(r.scheduled_at)
  return sa == nil or sa <= now()
end
local function isexpired(r)
  local ea = num(r.expires_at)
  return ea ~= nil and ea <= now()
end
-- writeref writes execution_ref; any other ref than a reservation's own
-- marker (written by the reserve op) ends the reservation.
local function writeref(r, ch, v)
  set(r, ch, 'execution_ref', v)
  set(r, ch, 'dispatch_until', nil)
end
local function finish(r, ch, s)
  set(r, ch, 'status', s)
  set(r, ch, 'completed_at', nows())
  set(r, ch, 'heartbeat_at', nil)
  -- A terminal record is reserved for nothing.
  set(r, ch, 'dispatch_until', nil)
  DONE[#DONE + 1] = r.id
end
local function requeue(r, ch, delay)
  set(r, ch, 'retry_count', fmt(tonumber(r.retry_count) + 1))
  set(r, ch, 'queued_at', nows())
  set(r, ch, 'started_at', nil)
  set(r, ch, 'heartbeat_at', nil)
  set(r, ch, 'completed_at', nil)
  set(r, ch, 'worker_id', nil)
  writeref(r, ch, nil)
  if delay <= 0 then
    set(r, ch, 'status', 'pending')
    set(r, ch, 'scheduled_at', nil)
    WAKE = true
  else
    set(r, ch, 'status', 'scheduled')
    set(r, ch, 'scheduled_at', fmt(now() + delay))
  end
end
local function claim(r, ch, worker)
  local n = nows()
  set(r, ch, 'status', 'running')
  set(r, ch, 'worker_id', nz(worker))
  set(r, ch, 'started_at', n)
  set(r, ch, 'heartbeat_at', n)
end
-- interruptions is the record's shutdown-interruption counter (the
-- interruptions field; absent = 0).
local function interruptions(r)
  return num(r.interruptions) or 0
end
local function flush()
  zflush()
  for t in pairs(DONETASKS) do redis.call('SADD', P .. ':donetasks', t) end
  if WAKE and WAKECH ~= '' then redis.call('PUBLISH', WAKECH, '{"event":"task_available"}') end
  if #DONE > 0 and DONECH ~= '' then redis.call('PUBLISH', DONECH, table.concat(DONE, ',')) end
end
-- promote moves due records of one partition from the scheduled set into
-- ready (or out of the way when already overdue).
local function promote(pt, budget)
  local sk = key('sched', pt)
  local ids = redis.call('ZRANGEBYSCORE', sk, '-inf', now(), 'LIMIT', 0, budget)
  for _, id in ipairs(ids) do
    local r = load(id)
    if r ~= nil and r.ix == 'f' and isopen(r.status) then
      local old = members(r)
      commit(r, {}, old)
    else
      redis.call('ZREM', sk, id)
    end
  end
end
-- parts returns the registered partitions matching a backend ("" = any) and
-- a queue set (nil = any): {pt=, b=, q=}.
local function parts(backend, qset)
  local out = {}
  for _, pt in ipairs(redis.call('SMEMBERS', P .. ':parts')) do
    local b, q = splitpt(pt)
    if (backend == '' or b == backend) and (qset == nil or qset[q]) then
      out[#out + 1] = {pt = pt, b = b, q = q}
    end
  end
  table.sort(out, function(x, y) return bless(x.pt, y.pt) end)
  return out
end
local function readqueues(j)
  local n = tonumber(ARGV[j])
  local qset = nil
  if n > 0 then
    qset = {}
    for k = 1, n do qset[ARGV[j + k]] = true end
  end
  return qset, j + n + 1
end
local function resjson(key, id, task, t)
  return '{"key":' .. cjson.encode(key) .. ',"task_id":"' .. id .. '","task_name":' .. cjson.encode(task) .. ',"created_us":' .. fmt(t) .. '}'
end
`

// luaIndexLists collects index writes that need no last-write bookkeeping
// (each member is met once per call): zl(key) returns the key's lists of
// removals and of additions (score, member, …), and zlflush sends them as
// one ZREM and one ZADD per key (in chunks), then calls after(key, lists)
// when given.
const luaIndexLists = `
local Z, ZL = {}, {}
local function zl(k)
  local z = Z[k]
  if z == nil then z = {{}, {}}; Z[k] = z; ZL[#ZL + 1] = k end
  return z
end
local function zlflush(after)
  for _, k in ipairs(ZL) do
    local z = Z[k]
    for j = 1, #z[1], 500 do redis.call('ZREM', k, unpack(z[1], j, math.min(j + 499, #z[1]))) end
    for j = 1, #z[2], 1000 do redis.call('ZADD', k, unpack(z[2], j, math.min(j + 999, #z[2]))) end
    if after then after(k, z) end
  end
  Z, ZL = {}, {}
end
`

// luaEnqueue inserts items atomically (two passes: plan, then write).
// ARGV[A] = n; per item: id, task, args, queue, backend, profile, priority,
// max_retries, scheduled_us, expires_us, key, forever, metadata JSON, policy
// JSON, key period (µs), key states, tags (comma-separated). "" means null. Returns {now, outcomes}: per item {'N'}
// new, {'S', j} same as item j, {'E', fields} existing, {'O', reservation},
// {'C', holder} identity conflict.
const luaEnqueue = luaLib + `
local n = tonumber(ARGV[A])
local items = {}
local j = A + 1
for k = 1, n do
  local it = {id = ARGV[j], task = ARGV[j + 1], args = ARGV[j + 2], queue = ARGV[j + 3], backend = ARGV[j + 4],
    profile = ARGV[j + 5], priority = ARGV[j + 6], maxr = ARGV[j + 7], sched = ARGV[j + 8], exp = ARGV[j + 9],
    key = ARGV[j + 10], forever = ARGV[j + 11] == '1', meta = ARGV[j + 12], policy = ARGV[j + 13],
    period = tonumber(ARGV[j + 14]), states = ',' .. ARGV[j + 15] .. ',', tags = ARGV[j + 16]}
  j = j + 17
  items[k] = it
end
local t = now()
local stagedKeys, stagedRes, stagedIDs, rules = {}, {}, {}, {}
local plans = {}
for k, it in ipairs(items) do
  local pl = {}
  plans[k] = pl
  local key = it.key
  local skip = false
  if key ~= '' then
    -- The key rule (driver.KeyRule.Holds) of the call's first item with
    -- the key decides whether its holder still holds it.
    local rule = rules[key]
    if not rule then
      rule = it
      rules[key] = it
    end
    local holder = redis.call('HGET', P .. ':keys', key)
    local hs = nil
    if holder then
      hs = redis.call('HMGET', tkey(holder), 'status', 'forever', 'policy', 'created_at')
      if not hs[1] then holder = nil end
    end
    local holds = holder and string.find(rule.states, ',' .. hs[1] .. ',', 1, true) ~= nil
      and (rule.period == 0 or (tonumber(hs[4]) or 0) + rule.period > t)
    if it.forever then
      local res = stagedRes[key] or redis.call('HGET', P .. ':reservations', key)
      if res then
        pl.owner = res; skip = true
      elseif stagedKeys[key] then
        pl.conflict = ''; skip = true
      elseif holds then
        -- A record inserted as forever says so in its forever field; one
        -- whose key became forever otherwise (a record of an earlier
        -- layout, migrated) says so in its policy.
        local fv = hs[2] == '1'
        if not fv and hs[3] and hs[3] ~= '' then
          local ok, m = pcall(cjson.decode, hs[3])
          fv = ok and type(m) == 'table' and m.unique_until == 'forever'
        end
        if fv then pl.existing = holder else pl.conflict = holder end
        skip = true
      else
        pl.reserve = true
      end
    else
      if stagedKeys[key] then
        pl.staged = stagedKeys[key]; skip = true
      elseif holds then
        pl.existing = holder; skip = true
      end
    end
    if not skip and holder then pl.clear = holder end
  end
  if not skip then
    if stagedIDs[it.id] then return redis.error_reply('QUEUES duplicate task id in one call: ' .. it.id) end
    if redis.call('EXISTS', tkey(it.id)) == 1 then return redis.error_reply('QUEUES task already exists: ' .. it.id) end
    stagedIDs[it.id] = true
    pl.insert = true
    if key ~= '' then
      stagedKeys[key] = k
      if pl.reserve then stagedRes[key] = resjson(key, it.id, it.task, t) end
    end
  end
end
local out = {}
local ts = nows()
local ts16 = pad(t)
for k, it in ipairs(items) do
  local pl = plans[k]
  if pl.insert then
    if pl.clear and redis.call('HGET', P .. ':keys', it.key) == pl.clear then
      redis.call('HDEL', tkey(pl.clear), 'key')
    end
    local status, ix = 'pending', 'r'
    local sched = nz(it.sched)
    if sched ~= nil and tonumber(sched) > t then
      status, ix = 'scheduled', 'f'
    elseif it.exp ~= '' and tonumber(it.exp) <= t then
      ix = 'n'
    end
    if status == 'pending' then WAKE = true end
    local hs = {'id', it.id, 'task_name', it.task, 'queue', it.queue, 'execution_backend', it.backend,
      'priority', it.priority, 'max_retries', it.maxr, 'retry_count', '0', 'created_at', ts, 'queued_at', ts,
      'status', status, 'ix', ix}
    if it.args ~= '' then app(hs, 'args', it.args) end
    if it.profile ~= '' then app(hs, 'execution_profile', it.profile) end
    if sched ~= nil then app(hs, 'scheduled_at', sched) end
    if it.exp ~= '' then app(hs, 'expires_at', it.exp) end
    if it.key ~= '' then
      app(hs, 'key', it.key)
      if it.forever then app(hs, 'forever', '1') end
    end
    if it.meta ~= '' then app(hs, 'metadata', it.meta) end
    if it.policy ~= '' then app(hs, 'policy', it.policy) end
    if it.tags ~= '' then app(hs, 'tags', it.tags) end
    redis.call('HSET', tkey(it.id), unpack(hs))
    local pt = registerpt(it.backend, it.queue)
    local cid = ts16 .. it.id
    zput(idxk(status, it.queue), cid, 0)
    for tag in string.gmatch(it.tags, '[^,]+') do zput(key('tag', tag), cid, 0) end
    if ix == 'r' then
      zput(key('ready', pt), ts16 .. cid, 0 - tonumber(it.priority))
    elseif ix == 'f' then
      zput(key('sched', pt), it.id, tonumber(sched))
    end
    if it.exp ~= '' then zput(key('expiry', pt), cid, tonumber(it.exp)) end
    if it.key ~= '' then redis.call('HSET', P .. ':keys', it.key, it.id) end
    if pl.reserve then redis.call('HSET', P .. ':reservations', it.key, stagedRes[it.key]) end
    out[k] = {'N'}
  elseif pl.staged then
    out[k] = {'S', tostring(pl.staged)}
  elseif pl.existing then
    out[k] = {'E', flat(load(pl.existing))}
  elseif pl.owner then
    out[k] = {'O', pl.owner}
  else
    out[k] = {'C', pl.conflict or ''}
  end
end
flush()
return {ts, out}
`

// luaClaim claims a batch. ARGV[A…]: limit, worker, expire ("1"), backend
// ("" = any), nqueues, queues…, ncaps, (queue, cap)… Returns a list of
// 'C' .. id claimed and 'X' .. id expired; the caller reads the records
// (native HGETALL is several times cheaper than reading and returning them
// through Lua). The common claim (a due, unexpired record of a live worker)
// appends its index writes straight to per-key lists, one ZREM and one
// ZADD per key at the end, instead of going through zput's member maps.
const luaClaim = luaLib + luaIndexLists + `
local limit = tonumber(ARGV[A])
local worker = ARGV[A + 1]
local doexp = ARGV[A + 2] == '1'
local backend = ARGV[A + 3]
local qset, j = readqueues(A + 4)
local ncap = tonumber(ARGV[j])
j = j + 1
local caps = {}
for k = 1, ncap do
  caps[ARGV[j]] = tonumber(ARGV[j + 1])
  j = j + 2
end
local ps = parts(backend, qset)
local out = {}
for _, p in ipairs(ps) do promote(p.pt, 1000) end
if doexp then
  local budget = 1000
  for _, p in ipairs(ps) do
    if budget <= 0 then break end
    local ek = P .. ':expiry:' .. p.pt
    local ms = redis.call('ZRANGEBYSCORE', ek, '-inf', now(), 'LIMIT', 0, budget)
    for _, m in ipairs(ms) do
      local r = load(string.sub(m, 17))
      if r ~= nil and isopen(r.status) and r.execution_ref == nil then
        local old = members(r)
        local ch = {}
        finish(r, ch, 'expired')
        commit(r, ch, old)
        out[#out + 1] = 'X' .. r.id
      else
        redis.call('ZREM', ek, m)
      end
      budget = budget - 1
    end
  end
end
zflush()
local W = limit
if W < 8 then W = 8 end
local act = {}
for _, p in ipairs(ps) do
  local c = caps[p.q]
  if c == nil or c > 0 then
    p.rk = P .. ':ready:' .. p.pt
    p.off = 0
    act[#act + 1] = p
  end
end
local runadd, lastq = nil, nil
-- Longer than any zset-max-listpack-value in use; never left in an index.
local SKIPLIST = string.rep('~', 256)
local claimed = 0
while claimed < limit do
  local best, bm, bs = nil, nil, nil
  for _, p in ipairs(act) do
    if not p.done then
      if p.buf == nil or p.i > #p.buf then
        -- Removals are deferred, so the window moves by offset.
        p.buf = redis.call('ZRANGE', p.rk, p.off, p.off + W - 1, 'WITHSCORES')
        p.off = p.off + #p.buf / 2
        p.i = 1
        if #p.buf == 0 then p.done = true end
      end
      if not p.done then
        local m, s = p.buf[p.i], tonumber(p.buf[p.i + 1])
        if best == nil or s < bs or (s == bs and bless(m, bm)) then best, bm, bs = p, m, s end
      end
    end
  end
  if best == nil then break end
  best.i = best.i + 2
  local id = string.sub(bm, 33)
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'ix', 'status', 'expires_at', 'execution_ref', 'queue')
  local ix, st, ea, ref, q
  -- HMGET gives false for a missing field; a stored '' is null too.
  if f[2] then ix, st, ea, ref, q = f[1], f[2], nz(f[3] or nil), nz(f[4] or nil), f[5] end
  if ix ~= 'r' or not isopen(st) then
    zput(best.rk, bm, false)
  elseif (ea ~= nil and tonumber(ea) <= now()) or worker == '' then
    local r = load(id)
    local old = members(r)
    local ch = {}
    if ea ~= nil and tonumber(ea) <= now() then
      if doexp and ref == nil then
        finish(r, ch, 'expired')
        commit(r, ch, old)
        out[#out + 1] = 'X' .. id
      else
        commit(r, ch, old)
      end
    else
      claim(r, ch, worker)
      commit(r, ch, old)
      out[#out + 1] = 'C' .. id
      claimed = claimed + 1
    end
  else
    -- Each record is met once per call, so its members need no last-write
    -- bookkeeping: removals and additions go straight to their lists.
    local cid = string.sub(bm, 17)
    if best.rem == nil then best.rem = zl(best.rk)[1] end
    best.rem[#best.rem + 1] = bm
    local sr = zl(idxk(st, q))[1]
    sr[#sr + 1] = cid
    if q ~= lastq then
      lastq = q
      local z = zl(idxk('running', q))
      if not z.skiplist then
        -- The running index holds only in-flight records and churns on
        -- every claim and completion. Small, it would be a listpack, where
        -- each insert and removal is a linear scan and a memmove; a member
        -- longer than zset-max-listpack-value (64 by default) converts it
        -- to a skiplist, which stays one after the member is removed again
        -- below, in this same call.
        z.skiplist = true
        table.insert(z[2], 1, SKIPLIST)
        table.insert(z[2], 1, '0')
      end
      runadd = z[2]
    end
    runadd[#runadd + 1] = '0'
    runadd[#runadd + 1] = cid
    local n = nows()
    if ref == nil then
      if ea ~= nil then local er = zl(key('expiry', best.pt))[1]; er[#er + 1] = cid end
    else
      local ex = zl(P .. ':external')[2]
      ex[#ex + 1] = n
      ex[#ex + 1] = id
    end
    -- ix stays 'r': placement only counts for open records.
    redis.call('HSET', k, 'status', 'running', 'worker_id', worker, 'started_at', n, 'heartbeat_at', n)
    out[#out + 1] = 'C' .. id
    claimed = claimed + 1
    local c = caps[q]
    if c ~= nil then
      c = c - 1
      caps[q] = c
      if c <= 0 then
        for _, p in ipairs(act) do if p.q == q then p.done = true end end
      end
    end
  end
end
zlflush(function(k, z) if z.skiplist then redis.call('ZREM', k, SKIPLIST) end end)
flush()
return out
`

// luaOps applies a batch of single-record writes, each fenced on its own.
// ARGV[A…]: repeated (op, id, nargs, args…). Returns one reply per op:
// {'K', fields} applied (or {'K'} for heartbeat ops), {'F'} fence lost,
// {'M'} missing, and for claim: {'C', fields}, {'X', fields}, {'N'}.
const luaOps = luaLib + `
local OPS = {}
local function start(id)
  local r = load(id)
  if r == nil then return nil end
  return r, members(r), {}
end
local CF = {'status', 'retry_count', 'queue', 'created_at', 'task_name', 'execution_ref'}
-- complete: args gen, hasResult, result. Settle's completion fenced only on
-- the generation that cannot go through luaComplete: the record is wanted
-- back and the claimed record is not at hand, or the record is named more
-- than once in the call.
OPS.complete = function(id, g, inline)
  local k = tkey(id)
  local f = redis.call('HMGET', k, unpack(CF))
  if not f[1] then return {'M'} end
  if f[1] ~= 'running' or f[2] ~= g[1] then return {'F'} end
  local n = nows()
  local q = f[3]
  local c = f[4]
  if #c ~= 16 then c = pad(tonumber(c)) end
  local cid = c .. id
  zput(idxk('running', q), cid, false)
  zput(idxk('completed', q), cid, 0)
  zput(key('done', f[5]), id, n)
  DONETASKS[f[5]] = true
  if f[6] then zput(P .. ':external', id, false) end
  local res = ''
  if g[2] == '1' then res = g[3] end
  redis.call('HSET', k, 'status', 'completed', 'completed_at', n, 'result', res, 'heartbeat_at', '', 'error', '')
  DONE[#DONE + 1] = id
  if inline then return {'K', hmget(k)} end
  return {'K'}
end
OPS.cancel = function(id, a) -- includeRunning, hasGen, gen
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if not (isopen(r.status) or (a[1] == '1' and r.status == 'running')) then return {'F'} end
  if a[2] == '1' and r.retry_count ~= a[3] then return {'F'} end
  finish(r, ch, 'cancelled')
  commit(r, ch, old)
  return {'K', flat(r)}
end
OPS.mcancel = function(id, a) -- includeRunning; cancel-matching: no execution ref
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if not (isopen(r.status) or (a[1] == '1' and r.status == 'running')) or r.execution_ref ~= nil then return {'F'} end
  finish(r, ch, 'cancelled')
  commit(r, ch, old)
  return {'K', flat(r)}
end
-- settle applies a transition the engine decided. Args: gen, to, hasRef,
-- ref, worker ("" = any), staleAfter_us ("" = not fenced, negative = any
-- heartbeat), hasResult, result, error, delay_us, interrupted, hasPriority,
-- priority, snoozed, hasErrors, errors (the error history's JSON, written
-- by failed and pending only when hasErrors). The fence: generation gen and status running, or with hasRef
-- the ref and status running, pending or scheduled; the worker when given;
-- a heartbeat that is null or older than now − staleAfter when given.
OPS.settle = function(id, a, inline)
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if r.retry_count ~= a[1] then return {'F'} end
  if a[3] == '1' then
    if (r.execution_ref or '') ~= a[4] or not (isopen(r.status) or r.status == 'running') then return {'F'} end
  elseif r.status ~= 'running' then
    return {'F'}
  end
  if a[5] ~= '' and (r.worker_id or '') ~= a[5] then return {'F'} end
  if a[6] ~= '' then
    local sa = tonumber(a[6])
    local hb = num(r.heartbeat_at)
    if sa >= 0 and hb ~= nil and hb >= now() - sa then return {'F'} end
  end
  local to = a[2]
  if to == 'completed' then
    if a[7] == '1' then set(r, ch, 'result', nz(a[8])) else set(r, ch, 'result', nil) end
    set(r, ch, 'error', nil)
    finish(r, ch, 'completed')
  elseif to == 'failed' then
    set(r, ch, 'error', nz(a[9]))
    if a[15] == '1' then set(r, ch, 'errors', nz(a[16])) end
    finish(r, ch, to)
  elseif to == 'cancelled' then
    if nz(a[9]) then set(r, ch, 'error', a[9]) end
    finish(r, ch, to)
  else
    set(r, ch, 'error', nz(a[9]))
    if a[11] == '1' then set(r, ch, 'interruptions', fmt(interruptions(r) + 1)) end
    if a[12] == '1' then set(r, ch, 'priority', a[13]) end
    if a[14] == '1' then set(r, ch, 'snooze_count', fmt((num(r.snooze_count) or 0) + 1)) end
    if a[15] == '1' then set(r, ch, 'errors', nz(a[16])) end
    requeue(r, ch, tonumber(a[10]))
  end
  commit(r, ch, old)
  if inline then return {'K', flat(r)} end
  return {'K'}
end
OPS.touch = function(id, a) -- hasGen, gen, (key, json)…
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'status', 'retry_count')
  if not f[1] then return {'M'} end
  if f[1] ~= 'running' or (a[1] == '1' and f[2] ~= a[2]) then return {'F'} end
  if #a > 2 then
    local hs = {'heartbeat_at', nows(), 'mo', '1'}
    for j = 3, #a, 2 do
      hs[#hs + 1] = 'm:' .. a[j]
      hs[#hs + 1] = a[j + 1]
    end
    redis.call('HSET', k, unpack(hs))
  else
    redis.call('HSET', k, 'heartbeat_at', nows())
  end
  return {'K'}
end
OPS.null = function(id, a) -- gen
  local k = tkey(id)
  local f = redis.call('HMGET', k, 'status', 'retry_count')
  if not f[1] then return {'M'} end
  if f[1] ~= 'running' or f[2] ~= a[1] then return {'F'} end
  redis.call('HDEL', k, 'heartbeat_at')
  return {'K'}
end
OPS.reserve = function(id, a) -- marker, hasGen, gen, until_us
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if not isopen(r.status) or not isdue(r) or isexpired(r) or r.execution_ref ~= nil or (a[2] == '1' and r.retry_count ~= a[3]) then return {'F'} end
  set(r, ch, 'execution_ref', a[1])
  set(r, ch, 'dispatch_until', nz(a[4]))
  commit(r, ch, old)
  return {'K', flat(r)}
end
OPS.release = function(id, a) -- marker, backend, profile
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if r.execution_ref == nil or r.execution_ref ~= a[1] then return {'F'} end
  writeref(r, ch, nil)
  if a[2] ~= '' then
    set(r, ch, 'execution_backend', a[2])
    set(r, ch, 'execution_profile', nz(a[3]))
    register(r)
  end
  commit(r, ch, old)
  if isopen(r.status) and isdue(r) then WAKE = true end
  return {'K', flat(r)}
end
OPS.finalize = function(id, a) -- marker, ref
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if not isopen(r.status) or r.execution_ref == nil or r.execution_ref ~= a[1] then return {'F'} end
  writeref(r, ch, nz(a[2]))
  commit(r, ch, old)
  return {'K', flat(r)}
end
OPS.setref = function(id, a) -- ref
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if isterm(r.status) then return {'F'} end
  writeref(r, ch, nz(a[1]))
  commit(r, ch, old)
  return {'K', flat(r)}
end
OPS.clearref = function(id, a) -- gen, ref
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if not isopen(r.status) or r.retry_count ~= a[1] or (r.execution_ref or '') ~= a[2] then return {'F'} end
  writeref(r, ch, nil)
  commit(r, ch, old)
  if isdue(r) then WAKE = true end
  return {'K', flat(r)}
end
OPS.replaceref = function(id, a) -- gen, ref, newref
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if isterm(r.status) or r.retry_count ~= a[1] or (r.execution_ref or '') ~= a[2] then return {'F'} end
  writeref(r, ch, nz(a[3]))
  commit(r, ch, old)
  return {'K', flat(r)}
end
OPS.setbackend = function(id, a) -- backend, profile
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if not isopen(r.status) then return {'F'} end
  set(r, ch, 'execution_backend', a[1])
  set(r, ch, 'execution_profile', nz(a[2]))
  writeref(r, ch, nil)
  register(r)
  commit(r, ch, old)
  if isdue(r) then WAKE = true end
  return {'K', flat(r)}
end
OPS.claim = function(id, a) -- worker, hasGen, gen, hasRef, ref
  local r, old, ch = start(id)
  if r == nil then return {'M'} end
  if not isopen(r.status) or r.dispatch_until ~= nil then return {'N'} end
  if a[2] == '1' and r.retry_count ~= a[3] then return {'N'} end
  if a[4] == '1' and (r.execution_ref or '') ~= a[5] then return {'N'} end
  if isexpired(r) and r.execution_ref == nil then
    finish(r, ch, 'expired')
    commit(r, ch, old)
    return {'X', flat(r)}
  end
  if not isdue(r) then return {'N'} end
  claim(r, ch, a[1])
  commit(r, ch, old)
  return {'C', flat(r)}
end
local res = {}
local i = A
while i <= #ARGV do
  local code, id, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local a = {}
  for k = 1, n do a[k] = ARGV[i + 2 + k] end
  i = i + 3 + n
  -- A trailing '+' asks for the record in the reply; otherwise the caller
  -- reads it with HGETALL in the same MULTI, after this script.
  local inline = string.byte(code, #code) == 43
  if inline then code = string.sub(code, 1, -2) end
  local f = OPS[code]
  if f == nil then return redis.error_reply('QUEUES unknown op ' .. code) end
  local rep = f(id, a, inline)
  if not inline and rep[2] ~= nil then rep = {rep[1]} end
  res[#res + 1] = rep
end
flush()
return res
`

// luaListPending lists due, unexpired ready records in claim order after
// promoting due scheduled ones. ARGV[A…]: limit, backend, nqueues, queues…
const luaListPending = luaLib + `
local limit = tonumber(ARGV[A])
local backend = ARGV[A + 1]
local qset = readqueues(A + 2)
local ps = parts(backend, qset)
for _, p in ipairs(ps) do
  promote(p.pt, 1000)
  p.rk = P .. ':ready:' .. p.pt
  p.off = 0
end
zflush()
local W = limit
if W < 16 then W = 16 end
local out = {}
while #out < limit do
  local best, bm, bs = nil, nil, nil
  for _, p in ipairs(ps) do
    if not p.done then
      if p.buf == nil or p.i > #p.buf then
        p.buf = redis.call('ZRANGE', p.rk, p.off, p.off + W - 1, 'WITHSCORES')
        p.off = p.off + #p.buf / 2
        p.i = 1
        if #p.buf == 0 then p.done = true end
      end
      if not p.done then
        local m, s = p.buf[p.i], tonumber(p.buf[p.i + 1])
        if best == nil or s < bs or (s == bs and bless(m, bm)) then best, bm, bs = p, m, s end
      end
    end
  end
  if best == nil then break end
  best.i = best.i + 2
  local r = load(string.sub(bm, 33))
  if r ~= nil and not isexpired(r) then out[#out + 1] = flat(r) end
end
return out
`

// luaNextDue promotes due records, then returns the earliest future
// scheduled_at (µs) of the given queues, or false. ARGV[A…]: nqueues, queues…
const luaNextDue = luaLib + `
local qset = readqueues(A)
local best = nil
for _, p in ipairs(parts('', qset)) do
  promote(p.pt, 1000)
  zflush()
  local a = redis.call('ZRANGE', P .. ':sched:' .. p.pt, 0, 0, 'WITHSCORES')
  if #a > 0 then
    local s = tonumber(a[2])
    if best == nil or s < best then best = s end
  end
end
if best == nil then return false end
return fmt(best)
`

// luaExpire expires up to limit overdue unreserved open records, oldest
// deadline first. ARGV[A] = limit.
const luaExpire = luaLib + `
local limit = tonumber(ARGV[A])
local cands = {}
for _, p in ipairs(parts('', nil)) do
  local k = P .. ':expiry:' .. p.pt
  local a = redis.call('ZRANGEBYSCORE', k, '-inf', now(), 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #a, 2 do cands[#cands + 1] = {tonumber(a[i + 1]), a[i], k} end
end
table.sort(cands, function(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  return bless(x[2], y[2])
end)
local out = {}
for i = 1, math.min(limit, #cands) do
  local c = cands[i]
  local r = load(string.sub(c[2], 17))
  if r ~= nil and isopen(r.status) and r.execution_ref == nil then
    local old = members(r)
    local ch = {}
    finish(r, ch, 'expired')
    commit(r, ch, old)
    out[#out + 1] = flat(r)
  else
    redis.call('ZREM', c[3], c[2])
  end
end
flush()
return out
`

// luaStale returns up to limit stale running records for ListStale.
// ARGV[A…]: staleAfter_us (negative = every running record), limit. Null
// heartbeats come first (by created_at, then id), then the oldest heartbeat
// first (then id); records holding a dispatch reservation (dispatch_until)
// are left out. It changes nothing.
const luaStale = luaLib + `
local sa = tonumber(ARGV[A])
local limit = tonumber(ARGV[A + 1])
local cut = nil
if sa >= 0 then cut = now() - sa end
local cands = {}
for _, q in ipairs(redis.call('SMEMBERS', P .. ':queues')) do
  for _, m in ipairs(redis.call('ZRANGE', P .. ':idx:running:' .. q, 0, -1)) do
    local id = string.sub(m, 17)
    local f = redis.call('HMGET', tkey(id), 'heartbeat_at', 'created_at', 'status', 'dispatch_until')
    if f[3] == 'running' and not nz(f[4] or nil) then
      local hb = nz(f[1] or nil)
      hb = hb and tonumber(hb)
      if cut == nil or not hb or hb < cut then
        -- Null heartbeats sort first: group 0 by created_at, group 1 by heartbeat.
        if hb then cands[#cands + 1] = {1, hb, id} else cands[#cands + 1] = {0, tonumber(f[2]), id} end
      end
    end
  end
end
table.sort(cands, function(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  if x[2] ~= y[2] then return x[2] < y[2] end
  return bless(x[3], y[3])
end)
local out = {}
for i = 1, math.min(limit, #cands) do
  local r = load(cands[i][3])
  if r ~= nil then out[#out + 1] = flat(r) end
end
return out
`

// luaCleanup deletes up to limit terminal records, each completed before
// its cutoff, oldest completed_at (then ID) first. ARGV[A…]: the default
// cutoffs (µs) of completed, failed, cancelled and expired records ("" =
// keep that status), the latest cutoff of all, limit, the offsets at which
// the scans of <p>:term:failed, cancelled and expired start, then the
// number of tasks with cutoffs of their own and, per task, its name and
// its four cutoffs (as the defaults). A listed task's records follow only
// its own cutoffs. Candidates come from <p>:term:<status> of each status
// with a cutoff, from the completed index of every task in <p>:donetasks
// (with that task's completed cutoff), up to limit from each, and from
// <p>:terminal, the index of earlier builds (all terminal statuses, one
// zset): an entry met there whose record is kept moves to its record's own
// index, so that index drains and a kept status never hides the records of
// another behind it. With per-task cutoffs a <p>:term:<status> scan reads
// each record and passes over those their task keeps, up to TERMSCAN
// entries per key and call. Returns {deleted, the kept entries each term
// scan passed before its first candidate (failed, cancelled, expired),
// 1 when a scan stopped at TERMSCAN}.
const luaCleanup = luaLib + `
local TERMSCAN = 1000
local order = {'completed', 'failed', 'cancelled', 'expired'}
local cutS, cutN = {}, {}
for i, s in ipairs(order) do
  local v = ARGV[A + i - 1]
  if v ~= '' then cutS[s] = '(' .. v; cutN[s] = tonumber(v) end
end
local latest = ARGV[A + 4]
local limit = tonumber(ARGV[A + 5])
local skip = {tonumber(ARGV[A + 6]), tonumber(ARGV[A + 7]), tonumber(ARGV[A + 8])}
local ovr, novr = {}, tonumber(ARGV[A + 9])
local bound = {}
for s, v in pairs(cutN) do bound[s] = v end
for j = 0, novr - 1 do
  local base = A + 10 + j * 5
  local m = {}
  for i, s in ipairs(order) do
    local v = ARGV[base + i]
    if v ~= '' then
      m[s] = tonumber(v)
      if bound[s] == nil or m[s] > bound[s] then bound[s] = m[s] end
    end
  end
  ovr[ARGV[base]] = m
end
local function cutfor(r)
  local m = ovr[r.task_name]
  if m ~= nil then return m[r.status] end
  return cutN[r.status]
end
local cands = {}
local function collect(k, before)
  local a = redis.call('ZRANGEBYSCORE', k, '-inf', before, 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #a, 2 do cands[#cands + 1] = {tonumber(a[i + 1]), a[i], k} end
end
local lead, more = {0, 0, 0}, 0
for i = 2, 4 do
  local s = order[i]
  if novr == 0 then
    if cutS[s] then collect(key('term', s), cutS[s]) end
  elseif bound[s] then
    local k, off, found, scanned = key('term', s), skip[i - 1], 0, 0
    while found < limit and scanned < TERMSCAN do
      local a = redis.call('ZRANGEBYSCORE', k, '-inf', '(' .. bound[s], 'WITHSCORES', 'LIMIT', off, math.min(100, TERMSCAN - scanned))
      if #a == 0 then break end
      for x = 1, #a, 2 do
        local f = redis.call('HMGET', tkey(a[x]), 'task_name', 'status', 'completed_at')
        local c = (f[1] and f[2] and f[3]) and cutfor({task_name = f[1], status = f[2]}) or nil
        if f[1] == false or (c ~= nil and tonumber(f[3]) < c) then
          -- Eligible, or a dangling entry the deletion loop drops.
          cands[#cands + 1] = {tonumber(a[x + 1]), a[x], k}
          found = found + 1
        elseif found == 0 then
          lead[i - 1] = lead[i - 1] + 1
        end
      end
      scanned, off = scanned + #a / 2, off + #a / 2
    end
    if scanned >= TERMSCAN and found < limit then more = 1 end
  end
end
local tasks = {}
if cutS['completed'] or novr > 0 then tasks = redis.call('SMEMBERS', P .. ':donetasks') end
for _, t in ipairs(tasks) do
  local c = cutS['completed']
  if ovr[t] ~= nil then c = ovr[t]['completed'] and ('(' .. ovr[t]['completed']) or nil end
  if c then collect(key('done', t), c) end
end
local legacy = P .. ':terminal'
collect(legacy, '(' .. latest)
table.sort(cands, function(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  return bless(x[2], y[2])
end)
local n = 0
for _, c in ipairs(cands) do
  if n >= limit then break end
  local id = c[2]
  local r = load(id)
  local cut = nil
  if r ~= nil then cut = cutfor(r) end
  if r == nil or not isterm(r.status) then
    -- A record met twice is gone the second time: only its entry is dropped.
    zput(c[3], id, false)
  elseif cut ~= nil and tonumber(r.completed_at) < cut then
    reindex(members(r), {})
    zput(legacy, id, false)
    if r.key ~= nil and redis.call('HGET', P .. ':keys', r.key) == id then redis.call('HDEL', P .. ':keys', r.key) end
    if r.tags ~= nil then
      local cid = pad(tonumber(r.created_at)) .. id
      for tag in string.gmatch(r.tags, '[^,]+') do zput(key('tag', tag), cid, false) end
    end
    redis.call('DEL', tkey(id))
    n = n + 1
  elseif c[3] == legacy then
    zput(legacy, id, false)
    for k, v in pairs(members(r)) do zput(k, v[2], v[1]) end
  end
end
zflush()
for _, t in ipairs(tasks) do
  if redis.call('EXISTS', key('done', t)) == 0 then redis.call('SREM', P .. ':donetasks', t) end
end
return {n, lead[1], lead[2], lead[3], more}
`

// luaStats counts records per queue and status. ARGV[A] = queue ("" = all).
// Returns {{queue, c1..c7}…} in STATUSES order.
const luaStats = luaLib + `
local qs
if ARGV[A] ~= '' then qs = {ARGV[A]} else qs = redis.call('SMEMBERS', P .. ':queues') end
local out = {}
for _, q in ipairs(qs) do
  local row = {q}
  for _, s in ipairs(STATUSES) do row[#row + 1] = redis.call('ZCARD', P .. ':idx:' .. s .. ':' .. q) end
  out[#out + 1] = row
end
return out
`

// luaListTasks lists records newest first (created_at DESC, id DESC).
// ARGV[A…]: status, queue, task, limit, cursor id, fallback bound, tag.
// With a tag it walks that tag's index alone and checks status and queue
// on each record.
const luaListTasks = luaLib + `
local status, queue, task = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local tag = ARGV[A + 6]
local limit = tonumber(ARGV[A + 3])
local cur, fb = ARGV[A + 4], ARGV[A + 5]
local bound = '+'
if cur ~= '' then
  local c = redis.call('HGET', tkey(cur), 'created_at')
  if c then
    bound = '(' .. pad(tonumber(c)) .. cur
  elseif fb ~= '' then
    bound = '(' .. fb
  else
    return {}
  end
end
local sts = STATUSES
if status ~= '' then sts = {status} end
local qs
if queue ~= '' then qs = {queue} else qs = redis.call('SMEMBERS', P .. ':queues') end
local zs = {}
if tag ~= '' then
  zs[1] = {k = key('tag', tag), off = 0}
else
  for _, s in ipairs(sts) do
    for _, q in ipairs(qs) do zs[#zs + 1] = {k = P .. ':idx:' .. s .. ':' .. q, off = 0} end
  end
end
local W = limit
if W < 16 then W = 16 end
local out = {}
while #out < limit do
  local best, bm = nil, nil
  for _, z in ipairs(zs) do
    if not z.done then
      if z.buf == nil or z.i > #z.buf then
        z.buf = redis.call('ZREVRANGEBYLEX', z.k, bound, '-', 'LIMIT', z.off, W)
        z.off = z.off + #z.buf
        z.i = 1
        if #z.buf == 0 then z.done = true end
      end
      if not z.done then
        local m = z.buf[z.i]
        if best == nil or bless(bm, m) then best, bm = z, m end
      end
    end
  end
  if best == nil then break end
  best.i = best.i + 1
  local r = load(string.sub(bm, 17))
  if r ~= nil and (task == '' or r.task_name == task)
    and (tag == '' or ((status == '' or r.status == status) and (queue == '' or r.queue == queue))) then
    out[#out + 1] = flat(r)
  end
end
return out
`

// luaScan reads one chunk of a status index for CancelMatching: records
// after member 'after' (exclusive) whose task name matches and that hold no
// execution ref. ARGV[A…]: index key, after ("" = start), count, task.
// Returns {last member or "", {fields}…}.
const luaScan = luaLib + `
local k, after, count, task = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2]), ARGV[A + 3]
local lo = '-'
if after ~= '' then lo = '(' .. after end
local ms = redis.call('ZRANGEBYLEX', k, lo, '+', 'LIMIT', 0, count)
local out = {}
for _, m in ipairs(ms) do
  local r = load(string.sub(m, 17))
  if r ~= nil and r.execution_ref == nil and (task == '' or r.task_name == task) then out[#out + 1] = flat(r) end
end
local last = ''
if #ms == count then last = ms[#ms] end
return {last, out}
`

// luaRecords reads records by index: external (ARGV[A] = "external", limit),
// completed by task ("done", task, since_us or "", limit), by key ("key", key).
const luaRecords = luaLib + `
local kind = ARGV[A]
local ids
if kind == 'external' then
  ids = redis.call('ZRANGE', P .. ':external', 0, tonumber(ARGV[A + 1]) - 1)
elseif kind == 'done' then
  local lo = '-inf'
  if ARGV[A + 2] ~= '' then lo = ARGV[A + 2] end
  ids = redis.call('ZREVRANGEBYSCORE', P .. ':done:' .. ARGV[A + 1], '+inf', lo, 'LIMIT', 0, tonumber(ARGV[A + 3]))
else
  ids = {}
  local id = redis.call('HGET', P .. ':keys', ARGV[A + 1])
  if id then ids[1] = id end
end
local out = {}
for _, id in ipairs(ids) do
  local r = load(id)
  if r ~= nil then out[#out + 1] = flat(r) end
end
return out
`

// luaIdentity handles forever reservations. ARGV[A…]: "reserve", key,
// task id, task name, created_us ("" = now) → existing JSON or false;
// "reset", key, expected id ("" = any) → 1 or 0.
const luaIdentity = luaLib + `
local rk = P .. ':reservations'
local key = ARGV[A + 1]
local cur = redis.call('HGET', rk, key)
if ARGV[A] == 'reserve' then
  if cur then return cur end
  local t = ARGV[A + 4]
  if t == '' then t = now() else t = tonumber(t) end
  redis.call('HSET', rk, key, resjson(key, ARGV[A + 2], ARGV[A + 3], t))
  return false
end
if not cur then return 0 end
if ARGV[A + 2] ~= '' and cjson.decode(cur).task_id ~= ARGV[A + 2] then return 0 end
redis.call('HDEL', rk, key)
return 1
`

// luaLock acquires (ARGV[A] = "acquire", name, token, ttl_ms) or releases
// ("release", name, token) a maintenance lock.
const luaLock = luaLib + `
local k = P .. ':lock:' .. ARGV[A + 1]
local tok = ARGV[A + 2]
local cur = redis.call('GET', k)
if ARGV[A] == 'acquire' then
  if cur == tok then
    redis.call('PEXPIRE', k, ARGV[A + 3])
    return 1
  end
  if redis.call('SET', k, tok, 'NX', 'PX', ARGV[A + 3]) then return 1 end
  return 0
end
if cur == tok then
  redis.call('DEL', k)
  return 1
end
return 0
`

// luaVersion reads and writes the layout version. ARGV[A…]: "read";
// "init", version (written when absent); or "cas", from, to (written when
// the version is from). Returns {version before, version after}.
const luaVersion = luaLib + `
local k = P .. ':version'
local v = redis.call('GET', k)
local mode = ARGV[A]
if mode == 'init' and not v then
  redis.call('SET', k, ARGV[A + 1])
  return {'', ARGV[A + 1]}
end
if mode == 'cas' and v == ARGV[A + 1] then
  redis.call('SET', k, ARGV[A + 2])
  return {v, ARGV[A + 2]}
end
return {v or '', v or ''}
`

// luaMigrate serves the layout migrations (migrate.go). The 1 → 2 one
// decides each record's new fields in Go.
//
// ARGV[A…] = "dispatch", cursor, pattern, count: one SCAN step of the 2 → 3
// migration. Every non-terminal record whose execution_ref is a reservation
// marker "__queues_dispatching__:<unix seconds>:<uuid>" and that has no
// dispatch_until gets dispatch_until = that deadline (now, when the marker
// carries no readable deadline, so a reconcile releases it at once);
// returns {next cursor, records written}.
//
// ARGV[A…] = "scan", cursor, pattern, count: one SCAN step over the
// record keys; returns {next cursor, {id, {field, value, …}}…}.
//
// ARGV[A…] = "apply", n, then per record: id, the metadata field as read
// ("" = absent), the number of overlay fields as read and their (field,
// value) pairs, the new metadata ("" = none), policy JSON ("" = none),
// interruptions ("" = none), the number of fields to delete and their
// names. A record is rewritten only while it is exactly as read (metadata
// and overlay fields) and has no policy field yet. Returns one code per
// record: 'A' applied, 'C' changed since it was read, 'S' already has a
// policy, 'G' gone.
const luaMigrate = luaLib + `
if ARGV[A] == 'dispatch' then
  local r = redis.call('SCAN', ARGV[A + 1], 'MATCH', ARGV[A + 2], 'COUNT', tonumber(ARGV[A + 3]))
  local n = 0
  local mark = '__queues_dispatching__:'
  for _, k in ipairs(r[2]) do
    local f = redis.call('HMGET', k, 'status', 'execution_ref', 'dispatch_until')
    local ref = nz(f[2] or nil)
    if f[1] and not isterm(f[1]) and not nz(f[3] or nil) and ref ~= nil and string.sub(ref, 1, #mark) == mark then
      local secs = tonumber(string.match(ref, '^__queues_dispatching__:([%+%-]?%d+):'))
      local us = now()
      if secs ~= nil then us = secs * 1000000 end
      redis.call('HSET', k, 'dispatch_until', fmt(us))
      n = n + 1
    end
  end
  return {r[1], n}
end
if ARGV[A] == 'scan' then
  local r = redis.call('SCAN', ARGV[A + 1], 'MATCH', ARGV[A + 2], 'COUNT', tonumber(ARGV[A + 3]))
  local out = {}
  local pre = #P + 7
  for _, k in ipairs(r[2]) do
    local a = redis.call('HGETALL', k)
    if #a > 0 then out[#out + 1] = {string.sub(k, pre), a} end
  end
  return {r[1], out}
end
local n = tonumber(ARGV[A + 1])
local j = A + 2
local res = {}
for x = 1, n do
  local id, em, nov = ARGV[j], ARGV[j + 1], tonumber(ARGV[j + 2])
  j = j + 3
  local ov = {}
  for _ = 1, nov do
    ov[ARGV[j]] = ARGV[j + 1]
    j = j + 2
  end
  local nm, pol, intr, nd = ARGV[j], ARGV[j + 1], ARGV[j + 2], tonumber(ARGV[j + 3])
  j = j + 4
  local dels = {}
  for _ = 1, nd do
    dels[#dels + 1] = ARGV[j]
    j = j + 1
  end
  local k = tkey(id)
  local a = redis.call('HGETALL', k)
  if #a == 0 then
    res[x] = 'G'
  else
    local cur, cov, same, haspol = '', 0, true, false
    for i = 1, #a, 2 do
      local f, v = a[i], a[i + 1]
      if f == 'metadata' then
        cur = v
      elseif f == 'policy' then
        haspol = true
      elseif string.byte(f, 1) == 109 and string.byte(f, 2) == 58 then
        cov = cov + 1
        if ov[f] ~= v then same = false end
      end
    end
    if haspol then
      res[x] = 'S'
    elseif not same or cov ~= nov or cur ~= em then
      res[x] = 'C'
    else
      local hs = {}
      if nm ~= '' then hs[#hs + 1] = 'metadata'; hs[#hs + 1] = nm else dels[#dels + 1] = 'metadata' end
      if pol ~= '' then hs[#hs + 1] = 'policy'; hs[#hs + 1] = pol end
      if intr ~= '' then hs[#hs + 1] = 'interruptions'; hs[#hs + 1] = intr end
      if #hs > 0 then redis.call('HSET', k, unpack(hs)) end
      if #dels > 0 then redis.call('HDEL', k, unpack(dels)) end
      res[x] = 'A'
    end
  end
end
return res
`

// luaComplete is the hot-path Complete, kept apart from luaOps so a batch
// of completions runs no general machinery: no luaLib prelude, no per-op
// dispatch, no record tables, and index writes appended straight to one
// ZREM and one ZADD per key. ARGV[1] = <p>, ARGV[3] = completions channel,
// then per record (id, generation, result, worker; "" = null, and a worker
// "" is not fenced). Returns {now, reply…} with one reply per record: 'M'
// missing, 'F' fence lost, or 'K' .. execution_ref when applied; a record
// with metadata overlay fields replies {'K' .. ref, key, json, …} instead.
const luaComplete = luaIndexLists + `
local P, DONECH = ARGV[1], ARGV[3]
local t = redis.call('TIME')
local n = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
local res, done, tasks = {n}, {}, {}
local lastq, runrem, compadd, lasttask, doneadd
for i = 4, #ARGV, 4 do
  local id = ARGV[i]
  local k = P .. ':task:' .. id
  local w = ARGV[i + 3]
  local f
  if w == '' then
    f = redis.call('HMGET', k, 'status', 'retry_count', 'queue', 'created_at', 'task_name', 'execution_ref', 'mo')
  else
    f = redis.call('HMGET', k, 'status', 'retry_count', 'queue', 'created_at', 'task_name', 'execution_ref', 'mo', 'worker_id')
  end
  if not f[1] then
    res[#res + 1] = 'M'
  elseif f[1] ~= 'running' or f[2] ~= ARGV[i + 1] or (w ~= '' and f[8] ~= w) then
    res[#res + 1] = 'F'
  else
    if f[3] ~= lastq then
      lastq = f[3]
      runrem = zl(P .. ':idx:running:' .. lastq)[1]
      compadd = zl(P .. ':idx:completed:' .. lastq)[2]
    end
    if f[5] ~= lasttask then
      lasttask = f[5]
      doneadd = zl(P .. ':done:' .. lasttask)[2]
      tasks[lasttask] = true
    end
    local c = f[4]
    if #c ~= 16 then c = string.format('%016d', tonumber(c)) end
    local cid = c .. id
    runrem[#runrem + 1] = cid
    compadd[#compadd + 1] = '0'
    compadd[#compadd + 1] = cid
    doneadd[#doneadd + 1] = n
    doneadd[#doneadd + 1] = id
    local ref = f[6] or ''
    if ref ~= '' then
      local ext = zl(P .. ':external')[1]
      ext[#ext + 1] = id
    end
    redis.call('HSET', k, 'status', 'completed', 'completed_at', n, 'result', ARGV[i + 2], 'heartbeat_at', '', 'error', '')
    done[#done + 1] = id
    if f[7] then
      local out = {'K' .. ref}
      local a = redis.call('HGETALL', k)
      for j = 1, #a, 2 do
        local x = a[j]
        if string.byte(x, 1) == 109 and string.byte(x, 2) == 58 then out[#out + 1] = x; out[#out + 1] = a[j + 1] end
      end
      res[#res + 1] = out
    else
      res[#res + 1] = 'K' .. ref
    end
  end
end
zlflush()
for t in pairs(tasks) do redis.call('SADD', P .. ':donetasks', t) end
if #done > 0 and DONECH ~= '' then redis.call('PUBLISH', DONECH, table.concat(done, ',')) end
return res
`

var (
	scriptEnqueue     = goredis.NewScript(luaEnqueue)
	scriptClaim       = goredis.NewScript(luaClaim)
	scriptOps         = goredis.NewScript(luaOps)
	scriptComplete    = goredis.NewScript(luaComplete)
	scriptListPending = goredis.NewScript(luaListPending)
	scriptNextDue     = goredis.NewScript(luaNextDue)
	scriptExpire      = goredis.NewScript(luaExpire)
	scriptStale       = goredis.NewScript(luaStale)
	scriptCleanup     = goredis.NewScript(luaCleanup)
	scriptStats       = goredis.NewScript(luaStats)
	scriptListTasks   = goredis.NewScript(luaListTasks)
	scriptScan        = goredis.NewScript(luaScan)
	scriptRecords     = goredis.NewScript(luaRecords)
	scriptIdentity    = goredis.NewScript(luaIdentity)
	scriptLock        = goredis.NewScript(luaLock)
	scriptVersion     = goredis.NewScript(luaVersion)
	scriptMigrate     = goredis.NewScript(luaMigrate)

	allScripts = []*goredis.Script{
		scriptEnqueue, scriptClaim, scriptOps, scriptComplete, scriptListPending, scriptNextDue, scriptExpire,
		scriptStale, scriptCleanup, scriptStats, scriptListTasks, scriptScan, scriptRecords,
		scriptIdentity, scriptLock, scriptVersion, scriptMigrate, scriptWorkers, scriptBacklog,
	}
)
