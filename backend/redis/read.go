package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
)

func isNil(err error) bool { return errors.Is(err, goredis.Nil) }

func (b *Backend) taskKey(id uuid.UUID) string { return b.prefix + ":task:" + id.String() }

// hmgetRecord queues an HMGET of every record field, in recordFields order.
func (b *Backend) hmgetRecord(ctx context.Context, p goredis.Pipeliner, id string) *goredis.SliceCmd {
	return p.HMGet(ctx, b.prefix+":task:"+id, recordFields...)
}

// recordFrom decodes an HMGET reply; nil when the record does not exist.
// A record with metadata overlay fields is read again whole.
func (b *Backend) recordFrom(ctx context.Context, id string, vals []any) (*queuestype.Record, error) {
	if len(vals) == 0 || vals[0] == nil {
		return nil, nil
	}
	if vals[len(recordFields)-1] != nil { // "mo": overlay fields exist
		m, err := b.client.HGetAll(ctx, b.prefix+":task:"+id).Result()
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, nil
		}
		return decodeFields(m)
	}
	return decodeRecord(vals)
}

// readRecords reads records in one pipelined round trip; missing IDs are
// nil entries.
func (b *Backend) readRecords(ctx context.Context, ids []string) ([]*queuestype.Record, error) {
	out := make([]*queuestype.Record, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pipe := b.client.Pipeline()
	cmds := make([]*goredis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = b.hmgetRecord(ctx, pipe, id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	for i, c := range cmds {
		r, err := b.recordFrom(ctx, ids[i], c.Val())
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// GetTask returns the record, or an error matching queuestype.ErrTaskNotFound.
func (b *Backend) GetTask(ctx context.Context, id uuid.UUID) (*queuestype.Record, error) {
	m, err := b.client.HGetAll(ctx, b.taskKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: get task: %w", err)
	}
	if len(m) == 0 {
		return nil, driver.NotFound(id)
	}
	return decodeFields(m)
}

// GetTasks returns the records that exist, in the order of ids (one
// pipelined round trip); missing IDs are omitted.
func (b *Backend) GetTasks(ctx context.Context, ids []uuid.UUID) ([]*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	recs, err := b.readRecords(ctx, strs)
	if err != nil {
		return nil, fmt.Errorf("redis: get tasks: %w", err)
	}
	out := make([]*queuestype.Record, 0, len(ids))
	for _, r := range recs {
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// GetTaskByKey returns the record holding the identity key (the last record
// inserted with it, until a new record takes the key over), or an error
// matching queuestype.ErrTaskNotFound.
func (b *Backend) GetTaskByKey(ctx context.Context, key string) (*queuestype.Record, error) {
	if key == "" {
		return nil, queuestype.ErrTaskNotFound
	}
	v, err := b.run(ctx, scriptRecords, "key", key).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: get task by key: %w", err)
	}
	recs, err := decodeRecords(v)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: key %q", queuestype.ErrTaskNotFound, key)
	}
	return recs[0], nil
}

// stats runs the statistics script for queue ("" = every queue).
func (b *Backend) stats(ctx context.Context, queue string) (map[string]queuestype.Statistics, error) {
	v, err := b.run(ctx, scriptStats, queue).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis: statistics: %w", err)
	}
	out := make(map[string]queuestype.Statistics, len(v))
	for _, row := range v {
		a, _ := row.([]any)
		if len(a) != 1+len(queuestype.AllStatuses) {
			return nil, fmt.Errorf("redis: statistics row of %d values", len(a))
		}
		q, _ := a[0].(string)
		var st queuestype.Statistics
		for i, s := range queuestype.AllStatuses {
			n, _ := a[i+1].(int64)
			st.Add(s, int(n))
		}
		out[q] = st
	}
	return out, nil
}

// Statistics counts records per status in queue, or in every queue when
// queue is "" (ZCARD of the status indexes; no scan).
func (b *Backend) Statistics(ctx context.Context, queue string) (queuestype.Statistics, error) {
	m, err := b.stats(ctx, queue)
	if err != nil {
		return queuestype.Statistics{}, err
	}
	var total queuestype.Statistics
	for _, st := range m {
		total.Merge(st)
	}
	return total, nil
}

var _ driver.Inspector = (*Backend)(nil)

// QueueStatistics returns the statistics of every queue that holds records.
func (b *Backend) QueueStatistics(ctx context.Context) (map[string]queuestype.Statistics, error) {
	m, err := b.stats(ctx, "")
	if err != nil {
		return nil, err
	}
	return driver.QueuesWithRecords(m), nil
}

// ListCompletedByTask lists up to limit (0 means 10) completed records of
// task, newest completed_at first (then id descending), restricted to
// completed_at ≥ since when since is set.
func (b *Backend) ListCompletedByTask(ctx context.Context, task string, since time.Time, limit int) ([]*queuestype.Record, error) {
	limit = driver.Limit(limit, driver.DefaultCompletedLimit)
	v, err := b.run(ctx, scriptRecords, "done", task, micros(since), limit).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: list completed: %w", err)
	}
	return decodeRecords(v)
}

// ListRunningExternal lists up to limit non-terminal records holding an
// execution_ref, ordered by coalesce(started_at, created_at), then id.
// limit ≤ 0 returns nothing.
func (b *Backend) ListRunningExternal(ctx context.Context, limit int) ([]*queuestype.Record, error) {
	if limit <= 0 {
		return []*queuestype.Record{}, ctx.Err()
	}
	v, err := b.run(ctx, scriptRecords, "external", limit).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: list running external: %w", err)
	}
	return decodeRecords(v)
}

// ListTasks lists records newest first (created_at DESC, id DESC), filtered
// by status, queue and task name. f.Cursor is the ID of the last record of
// the previous page. Limit 0 means 50. NextCursor is set when more remain.
// Status and queue filters read one index each; the task-name filter is
// applied while walking them. A tag filter reads the tag's index alone
// (<p>:tag:<tag>) and applies the others while walking it.
func (b *Backend) ListTasks(ctx context.Context, f driver.TaskFilter) (driver.TaskPage, error) {
	var page driver.TaskPage
	limit := driver.Limit(f.Limit, driver.DefaultPageLimit)
	cur, fb := "", ""
	if f.Cursor != uuid.Nil {
		cur = f.Cursor.String()
		if t, ok := driver.CursorTime(f.Cursor); ok {
			fb = fmt.Sprintf("%016d", t.UnixMicro()) + cur
		}
	}
	v, err := b.run(ctx, scriptListTasks, string(f.Status), f.Queue, f.TaskName, limit+1, cur, fb, f.Tag).Result()
	if err != nil {
		return page, fmt.Errorf("redis: list tasks: %w", err)
	}
	items, err := decodeRecords(v)
	if err != nil {
		return page, err
	}
	return driver.NewTaskPage(items, limit), nil
}

// ReserveIdentity reserves r.Key for r.TaskID. It returns nil when the
// caller won, else the existing owner. A zero CreatedAt is stamped with
// Redis time.
func (b *Backend) ReserveIdentity(ctx context.Context, r queuestype.Reservation) (*queuestype.Reservation, error) {
	v, err := b.run(ctx, scriptIdentity, "reserve", r.Key, r.TaskID.String(), r.TaskName, micros(r.CreatedAt)).Text()
	if err != nil {
		if isNil(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("redis: reserve identity: %w", err)
	}
	return decodeReservation(v)
}

// GetIdentity returns the reservation for key, or nil, nil.
func (b *Backend) GetIdentity(ctx context.Context, key string) (*queuestype.Reservation, error) {
	v, err := b.client.HGet(ctx, b.prefix+":reservations", key).Result()
	if err != nil {
		if isNil(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("redis: get identity: %w", err)
	}
	return decodeReservation(v)
}

// ResetIdentity deletes the reservation for key; a non-zero expectedTaskID
// must equal the owner. It reports whether a reservation was deleted.
func (b *Backend) ResetIdentity(ctx context.Context, key string, expectedTaskID uuid.UUID) (bool, error) {
	exp := ""
	if expectedTaskID != uuid.Nil {
		exp = expectedTaskID.String()
	}
	n, err := b.run(ctx, scriptIdentity, "reset", key, exp).Int()
	if err != nil {
		return false, fmt.Errorf("redis: reset identity: %w", err)
	}
	return n == 1, nil
}

var _ driver.Locker = (*Backend)(nil)

// AcquireLock takes the named lock (key <p>:lock:<name>, SET NX PX) for
// token until ttl passes. It succeeds when the lock is free, expired, or
// already held by token (which refreshes the expiry). ttl must be positive.
func (b *Backend) AcquireLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	if err := driver.CheckLockArgs(ctx, ttl, token); err != nil {
		return false, err
	}
	ms := max(ttl.Milliseconds(), 1)
	n, err := b.run(ctx, scriptLock, "acquire", name, token, strconv.FormatInt(ms, 10)).Int()
	if err != nil {
		return false, fmt.Errorf("redis: acquire lock: %w", err)
	}
	return n == 1, nil
}

// ReleaseLock deletes the named lock if token holds it (compare-and-delete)
// and reports whether it did.
func (b *Backend) ReleaseLock(ctx context.Context, name, token string) (bool, error) {
	n, err := b.run(ctx, scriptLock, "release", name, token).Int()
	if err != nil {
		return false, fmt.Errorf("redis: release lock: %w", err)
	}
	return n == 1, nil
}
