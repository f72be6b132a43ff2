package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/queuesgo/queues/driver"

	goredis "github.com/redis/go-redis/v9"
)

var _ driver.WorkerRegistry = (*Backend)(nil)

// maxWorkerPurge bounds how many expired entries one ListWorkers deletes,
// so one call never blocks the server for long.
const maxWorkerPurge = 1000

// luaWorkers serves the registry of live workers. Keys: <p>:worker:<id>
// (hash, PEXPIRE ttl), <p>:workers (zset: id by expires_at µs) and
// <p>:workerids (zset: id, score 0, so ZRANGEBYLEX lists in byte order
// whatever the server's locale).
//
// ARGV[A…] = "register", id, ttl µs, then (field, value) pairs of the
// worker's own fields: replaces the hash with those fields plus seen_at =
// now and expires_at = now + ttl (µs, from TIME), and indexes the entry.
//
// ARGV[A…] = "remove", id: deletes the hash and both index entries.
//
// ARGV[A…] = "list", limit, purge: deletes up to purge entries whose
// expires_at ≤ now, then returns up to limit live entries in id order,
// each {id, {field, value, …}}.
const luaWorkers = luaLib + `
local ek = P .. ':workers'
local ik = P .. ':workerids'
local function wkey(id) return P .. ':worker:' .. id end
local mode = ARGV[A]
if mode == 'register' then
  local id = ARGV[A + 1]
  local ttl = tonumber(ARGV[A + 2])
  local k = wkey(id)
  local exp = now() + ttl
  redis.call('DEL', k)
  redis.call('HSET', k, 'seen_at', nows(), 'expires_at', fmt(exp), unpack(ARGV, A + 3))
  -- The hash outlives its index entry by under a millisecond: the listing
  -- reads the index first.
  redis.call('PEXPIRE', k, math.floor((ttl + 999) / 1000))
  redis.call('ZADD', ek, fmt(exp), id)
  redis.call('ZADD', ik, 0, id)
  return 1
end
if mode == 'remove' then
  local id = ARGV[A + 1]
  redis.call('DEL', wkey(id))
  redis.call('ZREM', ek, id)
  redis.call('ZREM', ik, id)
  return 1
end
local limit = tonumber(ARGV[A + 1])
local n = now()
local dead = redis.call('ZRANGEBYSCORE', ek, '-inf', fmt(n), 'LIMIT', 0, tonumber(ARGV[A + 2]))
for _, id in ipairs(dead) do
  redis.call('DEL', wkey(id))
  redis.call('ZREM', ek, id)
  redis.call('ZREM', ik, id)
end
local out = {}
local off = 0
while #out < limit do
  local ids = redis.call('ZRANGEBYLEX', ik, '-', '+', 'LIMIT', off, limit)
  if #ids == 0 then break end
  off = off + #ids
  for _, id in ipairs(ids) do
    local s = redis.call('ZSCORE', ek, id)
    if s and tonumber(s) > n then
      local h = redis.call('HGETALL', wkey(id))
      if #h > 0 then
        out[#out + 1] = {id, h}
        if #out == limit then break end
      end
    end
  end
end
return out
`

var scriptWorkers = goredis.NewScript(luaWorkers)

// RegisterWorker replaces the entry of w.ID (hash <p>:worker:<id>) and its
// index entries in one script call; seen_at and expires_at come from the
// server's TIME.
func (b *Backend) RegisterWorker(ctx context.Context, w driver.WorkerInfo, ttl time.Duration) error {
	if err := driver.CheckRegisterWorker(ctx, w, ttl); err != nil {
		return err
	}
	queues := w.Queues
	if queues == nil {
		queues = []string{}
	}
	qs, err := json.Marshal(queues)
	if err != nil {
		return fmt.Errorf("redis: register worker: %w", err)
	}
	us := max(ttl.Microseconds(), 1)
	err = b.run(ctx, scriptWorkers, "register", w.ID, strconv.FormatInt(us, 10),
		"host", w.Host,
		"pid", strconv.Itoa(w.PID),
		"queues", string(qs),
		"execution_backend", w.ExecutionBackend,
		"concurrency", strconv.Itoa(w.Concurrency),
		"running", strconv.Itoa(w.Running),
		"started_at", strconv.FormatInt(w.StartedAt.UnixMicro(), 10),
		"version", w.Version,
	).Err()
	if err != nil {
		return fmt.Errorf("redis: register worker: %w", err)
	}
	return nil
}

// RemoveWorker deletes the entry of id, if any.
func (b *Backend) RemoveWorker(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.run(ctx, scriptWorkers, "remove", id).Err(); err != nil {
		return fmt.Errorf("redis: remove worker: %w", err)
	}
	return nil
}

// ListWorkers returns up to limit entries whose expires_at is after the
// server's TIME, in id order (byte-wise), and deletes up to maxWorkerPurge
// expired ones, in one script call.
func (b *Backend) ListWorkers(ctx context.Context, limit int) ([]driver.WorkerInfo, error) {
	limit, err := driver.WorkerListLimit(ctx, limit)
	if err != nil {
		return nil, err
	}
	res, err := b.run(ctx, scriptWorkers, "list", strconv.Itoa(limit), strconv.Itoa(maxWorkerPurge)).Slice()
	if err != nil && err != goredis.Nil {
		return nil, fmt.Errorf("redis: list workers: %w", err)
	}
	out := make([]driver.WorkerInfo, 0, len(res))
	for _, e := range res {
		w, err := decodeWorker(e)
		if err != nil {
			return nil, fmt.Errorf("redis: list workers: %w", err)
		}
		out = append(out, w)
	}
	return out, nil
}

// decodeWorker reads one {id, {field, value, …}} entry of the list reply.
func decodeWorker(e any) (driver.WorkerInfo, error) {
	var w driver.WorkerInfo
	pair, ok := e.([]any)
	if !ok || len(pair) != 2 {
		return w, fmt.Errorf("unexpected worker entry %T", e)
	}
	id, _ := pair[0].(string)
	fv, ok := pair[1].([]any)
	if !ok || len(fv)%2 != 0 {
		return w, fmt.Errorf("worker %q: unexpected fields %T", id, pair[1])
	}
	w.ID = id
	var err error
	num := func(s string) int64 {
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("worker %q: %w", id, perr)
		}
		return n
	}
	for i := 0; i < len(fv); i += 2 {
		f, _ := fv[i].(string)
		v, _ := fv[i+1].(string)
		switch f {
		case "host":
			w.Host = v
		case "pid":
			w.PID = int(num(v))
		case "queues":
			if jerr := json.Unmarshal([]byte(v), &w.Queues); jerr != nil && err == nil {
				err = fmt.Errorf("worker %q queues: %w", id, jerr)
			}
		case "execution_backend":
			w.ExecutionBackend = v
		case "concurrency":
			w.Concurrency = int(num(v))
		case "running":
			w.Running = int(num(v))
		case "started_at":
			w.StartedAt = time.UnixMicro(num(v)).UTC()
		case "version":
			w.Version = v
		case "seen_at":
			w.SeenAt = time.UnixMicro(num(v)).UTC()
		case "expires_at":
			w.ExpiresAt = time.UnixMicro(num(v)).UTC()
		}
	}
	if w.Queues == nil {
		w.Queues = []string{}
	}
	return w, err
}
