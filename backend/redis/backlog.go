package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/queuesgo/queues/driver"

	goredis "github.com/redis/go-redis/v9"
)

var _ driver.BacklogCounter = (*Backend)(nil)

// luaBacklog counts the waiting records of every partition, by the
// server's TIME, without writing anything. The ready, scheduled and expiry
// sets are kept per (execution backend, queue), so the split by execution
// backend costs nothing:
//
//   - due = ZCARD(ready) + ZCOUNT(sched, -inf, now): the records placed as
//     claimable plus those whose scheduled_at arrived since (the claim
//     promotes them before it claims), minus the placed ones whose
//     deadline passed since they were placed, which the claim skips;
//   - later = ZCOUNT(sched, (now, +inf).
//
// A reserved record is in neither set. The placed overdue records are
// found without scanning the sets: those without an execution ref are the
// overdue range of the partition's expiry set, those with one are in
// <p>:external (open records holding a ref are rare: a ref set before a
// remote claim); one HMGET each.
//
// Returns {backend, queue, due, later, …} for the partitions holding
// waiting records.
const luaBacklog = luaLib + `
local n = now()
local ns = fmt(n)
local cnt = {}
local order = {}
for _, pt in ipairs(redis.call('SMEMBERS', P .. ':parts')) do
  local sk = key('sched', pt)
  local c = {pt = pt}
  c.due = redis.call('ZCARD', key('ready', pt)) + redis.call('ZCOUNT', sk, '-inf', ns)
  c.later = redis.call('ZCOUNT', sk, '(' .. ns, '+inf')
  cnt[pt] = c
  order[#order + 1] = c
end
-- overdue reports whether a record counted as due above (open, placed in
-- ready, or in the due range of the scheduled set) has passed its deadline.
local function overdue(f)
  local ix, st, sa, ea = f[1], f[2], nz(f[3] or nil), nz(f[4] or nil)
  if not st or not isopen(st) or ea == nil or tonumber(ea) > n then return false end
  return ix == 'r' or (ix == 'f' and sa ~= nil and tonumber(sa) <= n)
end
for _, c in ipairs(order) do
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', key('expiry', c.pt), '-inf', ns)) do
    if overdue(redis.call('HMGET', tkey(string.sub(m, 17)), 'ix', 'status', 'scheduled_at', 'expires_at')) then
      c.due = c.due - 1
    end
  end
end
local off = 0
while true do
  local ids = redis.call('ZRANGE', P .. ':external', off, off + 999)
  if #ids == 0 then break end
  off = off + #ids
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', tkey(id), 'ix', 'status', 'scheduled_at', 'expires_at', 'execution_ref',
      'execution_backend', 'queue')
    if nz(f[5] or nil) ~= nil and overdue(f) then
      local c = cnt[ptof(f[6], f[7])]
      if c ~= nil then c.due = c.due - 1 end
    end
  end
end
local out = {}
for _, c in ipairs(order) do
  if c.due > 0 or c.later > 0 then
    local b, q = splitpt(c.pt)
    out[#out + 1] = b
    out[#out + 1] = q
    out[#out + 1] = c.due
    out[#out + 1] = c.later
  end
end
return out
`

var scriptBacklog = goredis.NewScript(luaBacklog)

// CountBacklog counts the due and later records of every (queue, execution
// backend) in one script call (see luaBacklog).
//
// Cost: three O(log n) set counts per partition, plus one HMGET per
// overdue record the expiry sweep has not taken yet and per record of
// <p>:external (in-flight external executions): independent of how many
// records are due, later or terminal.
func (b *Backend) CountBacklog(ctx context.Context) ([]driver.BacklogCount, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, err := b.run(ctx, scriptBacklog).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis: count backlog: %w", err)
	}
	if len(res)%4 != 0 {
		return nil, fmt.Errorf("redis: count backlog: reply of %d items", len(res))
	}
	out := make([]driver.BacklogCount, 0, len(res)/4)
	for i := 0; i < len(res); i += 4 {
		eb, _ := res[i].(string)
		q, _ := res[i+1].(string)
		due, err1 := toInt(res[i+2])
		later, err2 := toInt(res[i+3])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("redis: count backlog: bad counts %v, %v", res[i+2], res[i+3])
		}
		out = append(out, driver.BacklogCount{Queue: q, ExecutionBackend: eb, Due: due, Later: later})
	}
	return out, nil
}

// toInt reads an integer script reply.
func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int64:
		return int(x), nil
	case string:
		return strconv.Atoi(x)
	}
	return 0, fmt.Errorf("unexpected %T", v)
}
