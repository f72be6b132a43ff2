package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
)

// ClaimMany claims up to p.Limit due records in claim order (priority DESC,
// queued_at, created_at, id) in one script call, honouring the queue and
// execution-backend filters and the per-queue caps of p.QueueLimits. The
// same call first promotes due scheduled records of the selected partitions
// into their ready sets and, with p.ExpireOverdue, expires overdue
// unreserved records of those partitions (at most 1000), returned in
// Expired. Each claimed record becomes running with worker_id, started_at
// and heartbeat_at set. Limit ≤ 0 returns an empty result.
func (b *Backend) ClaimMany(ctx context.Context, p driver.ClaimParams) (driver.ClaimResult, error) {
	var res driver.ClaimResult
	if none, err := driver.NoWork(ctx, p.Limit); none {
		return res, err
	}
	// The script returns IDs; the records are then read with native
	// HGETALLs in one pipelined round trip. Reading and returning a whole
	// record through Lua costs the server about three times as much
	// (field-by-field lookups in the small-hash encoding plus Lua value
	// conversion), and the server's single thread is what bounds
	// throughput; the extra round trip per batch costs latency only.
	args := make([]any, 0, 8+len(p.Queues)+2*len(p.QueueLimits))
	args = append(args, p.Limit, p.WorkerID, flag(p.ExpireOverdue), p.ExecutionBackend, len(p.Queues))
	for _, q := range p.Queues {
		args = append(args, q)
	}
	args = append(args, len(p.QueueLimits))
	for q, c := range p.QueueLimits {
		args = append(args, q, strconv.Itoa(max(c, 0)))
	}
	v, err := b.run(ctx, scriptClaim, args...).Slice()
	if err != nil {
		return res, fmt.Errorf("redis: claim: %w", err)
	}
	if len(v) == 0 {
		return res, nil
	}
	codes := make([]string, len(v))
	keys := make([]string, len(v))
	for i, x := range v {
		s, _ := x.(string)
		if len(s) < 2 {
			return res, fmt.Errorf("redis: bad claim reply %v", x)
		}
		codes[i] = s[:1]
		keys[i] = b.prefix + ":task:" + s[1:]
	}
	// The claim is already written: read the records even if ctx ended
	// meanwhile, so the caller gets what it owns, and retry a failed read a
	// few times (it is idempotent) before giving up. Records whose read
	// never succeeds stay running under this worker, as with a claim whose
	// reply was lost: stale recovery (StaleAfter) takes them back.
	var cmds []*goredis.MapStringStringCmd
	for attempt := 0; ; attempt++ {
		pipe := b.client.Pipeline()
		cmds = make([]*goredis.MapStringStringCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.HGetAll(ctx, k)
		}
		_, err := pipe.Exec(context.WithoutCancel(ctx))
		if err == nil {
			break
		}
		if attempt == 2 {
			return res, fmt.Errorf("redis: read claimed records: %w", err)
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	for i, c := range cmds {
		fields := c.Val()
		if len(fields) == 0 {
			continue // settled and cleaned up in between: nothing left to own
		}
		rec, err := decodeFields(fields)
		if err != nil {
			return res, err
		}
		if codes[i] == "C" {
			res.Claimed = append(res.Claimed, rec)
		} else {
			res.Expired = append(res.Expired, rec)
		}
	}
	return res, nil
}

// ListPending lists due, unexpired, not reservation-marked pending/scheduled
// records in claim order, with the queue and execution-backend filters.
// Limit ≤ 0 means 100. Due scheduled records are promoted on the way.
func (b *Backend) ListPending(ctx context.Context, p driver.ListPendingParams) ([]*queuestype.Record, error) {
	limit, err := driver.CallLimit(ctx, p.Limit, driver.DefaultPendingLimit)
	if err != nil {
		return nil, err
	}
	args := []any{limit, p.ExecutionBackend, len(p.Queues)}
	for _, q := range p.Queues {
		args = append(args, q)
	}
	v, err := b.run(ctx, scriptListPending, args...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: list pending: %w", err)
	}
	return decodeRecords(v)
}

var _ driver.DueTimer = (*Backend)(nil)

// NextDue returns the earliest future scheduled_at among pending/scheduled
// records of the given queues (all when empty), after promoting due ones;
// ok is false when there is none.
func (b *Backend) NextDue(ctx context.Context, queueNames []string) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	args := []any{len(queueNames)}
	for _, q := range queueNames {
		args = append(args, q)
	}
	v, err := b.run(ctx, scriptNextDue, args...).Result()
	if err != nil {
		if isNil(err) {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, fmt.Errorf("redis: next due: %w", err)
	}
	s, _ := v.(string)
	t, err := fromMicros(s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("redis: next due: %w", err)
	}
	return t, true, nil
}

// ExpireOverdue expires up to limit (≤ 0 means 100) pending/scheduled records
// holding no execution_ref whose expires_at ≤ Redis time, oldest deadline
// (then created_at, id) first, and returns them.
func (b *Backend) ExpireOverdue(ctx context.Context, limit int) ([]*queuestype.Record, error) {
	limit, err := driver.CallLimit(ctx, limit, driver.DefaultExpireLimit)
	if err != nil {
		return nil, err
	}
	v, err := b.run(ctx, scriptExpire, limit).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: expire overdue: %w", err)
	}
	return decodeRecords(v)
}

// CleanupTerminal deletes up to p.Limit (≤ 0 means 100) terminal records
// of the statuses their cutoffs name (p.ByTask's for the tasks it lists,
// p.Before for the others), each completed before its cutoff, oldest
// completed_at (then id) first, and returns how many it deleted. Identity
// reservations are never deleted. Completed records are indexed per task,
// so one call reads up to limit entries from each status's index and from
// each task's completed index: its cost grows with the number of task
// names that have completed records. A task's own completed cutoff reads
// its own index; its failed, cancelled and expired records share the
// per-status indexes with every task's, so with per-task cutoffs those
// scans read each record and pass over the ones their task keeps: a call
// costs, per status, the records kept longer than the default that
// completed before the latest cutoff, read at most 1000 per script.
func (b *Backend) CleanupTerminal(ctx context.Context, p driver.CleanupParams) (int, error) {
	cuts, limit, err := driver.CheckCleanup(ctx, p)
	if err != nil || len(cuts) == 0 {
		return 0, err
	}
	args := []any{"", "", "", "", "", 0, int64(0), int64(0), int64(0), 0}
	var latest int64
	tasks := driver.CleanupOverridden(p)
	own := make(map[string][]any, len(tasks))
	for _, task := range tasks {
		own[task] = []any{task, "", "", "", ""}
	}
	for _, c := range cuts {
		us := c.Before.UnixMicro()
		for i, s := range driver.TerminalStatuses {
			if s != c.Status {
				continue
			}
			if c.Task == "" {
				args[i] = strconv.FormatInt(us, 10)
			} else {
				own[c.Task][1+i] = strconv.FormatInt(us, 10)
			}
		}
		latest = max(latest, us)
	}
	args[4], args[9] = strconv.FormatInt(latest, 10), len(tasks)
	for _, task := range tasks {
		args = append(args, own[task]...)
	}
	// A script blocks the server while it runs, so the batch is deleted in
	// chunks, one script each: a claim waits for one chunk at most. The
	// kept records a scan passed at the front of a per-status index are
	// skipped by the next chunk's scan, and a scan that stopped at its
	// bound goes on in the next chunk.
	total := 0
	for total < limit {
		k := min(cleanupChunk, limit-total)
		args[5] = k
		v, err := b.run(ctx, scriptCleanup, args...).Int64Slice()
		if err != nil {
			return total, fmt.Errorf("redis: cleanup: %w", err)
		}
		if len(v) != 5 {
			return total, fmt.Errorf("redis: cleanup: the script returned %d values, want 5", len(v))
		}
		n := int(v[0])
		total += n
		for i := range 3 {
			args[6+i] = args[6+i].(int64) + v[1+i]
		}
		if n < k && v[4] == 0 {
			break
		}
	}
	return total, nil
}

// cleanupChunk bounds the records one cleanup script deletes (a few
// milliseconds of the server).
const cleanupChunk = 100

// CancelMatching cancels every pending/scheduled record (and running, with
// f.IncludeRunning) that matches the filter and holds no execution_ref.
// TaskName and Queue match by equality when set; Args and Metadata match
// when each of their top-level keys is present in the record with an equal
// JSON value. Candidates are read from the status indexes in chunks and
// matched here; each cancel is then fenced on status and the ref. The
// cancelled records are returned in claim order.
func (b *Backend) CancelMatching(ctx context.Context, f driver.CancelFilter) ([]*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	statuses := []queuestype.Status{queuestype.StatusPending, queuestype.StatusScheduled}
	if f.IncludeRunning {
		statuses = append(statuses, queuestype.StatusRunning)
	}
	qs := []string{f.Queue}
	if f.Queue == "" {
		var err error
		if qs, err = b.client.SMembers(ctx, b.prefix+":queues").Result(); err != nil {
			return nil, fmt.Errorf("redis: cancel matching: %w", err)
		}
	}
	var ids []uuid.UUID
	for _, s := range statuses {
		for _, q := range qs {
			key := b.prefix + ":idx:" + string(s) + ":" + q
			after := ""
			for {
				v, err := b.run(ctx, scriptScan, key, after, 1000, f.TaskName).Slice()
				if err != nil {
					return nil, fmt.Errorf("redis: cancel matching scan: %w", err)
				}
				after, _ = v[0].(string)
				recs, err := decodeRecords(v[1])
				if err != nil {
					return nil, err
				}
				for _, r := range recs {
					if driver.MatchesFilter(r, f) {
						ids = append(ids, r.ID)
					}
				}
				if after == "" {
					break
				}
			}
		}
	}
	out, err := b.cancelOps(ctx, ids, f.IncludeRunning)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, driver.ClaimOrder)
	if out == nil {
		out = []*queuestype.Record{}
	}
	return out, nil
}
