package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// GetTask returns the record, or an error matching queuestype.ErrTaskNotFound.
func (b *Backend) GetTask(ctx context.Context, id uuid.UUID) (*queuestype.Record, error) {
	rec, err := collectOne(b.pool.Query(ctx, b.q.getTask, id))
	if err != nil {
		return nil, b.wrap("get task", err)
	}
	if rec == nil {
		return nil, driver.NotFound(id)
	}
	return rec, nil
}

// GetTasks returns the records that exist, in the order of ids; missing IDs
// are omitted.
func (b *Backend) GetTasks(ctx context.Context, ids []uuid.UUID) ([]*queuestype.Record, error) {
	if len(ids) == 0 {
		return []*queuestype.Record{}, ctx.Err()
	}
	raw := make([][16]byte, len(ids))
	for i, id := range ids {
		raw[i] = [16]byte(id)
	}
	recs, err := collectRecords(b.pool.Query(ctx, b.q.getTasks, raw))
	if err != nil {
		return nil, b.wrap("get tasks", err)
	}
	byID := make(map[uuid.UUID]*queuestype.Record, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	out := make([]*queuestype.Record, 0, len(recs))
	for _, id := range ids {
		if r := byID[id]; r != nil {
			out = append(out, r)
			delete(byID, id)
		}
	}
	return out, nil
}

// GetTaskByKey returns the record holding the identity key, or an error
// matching queuestype.ErrTaskNotFound.
func (b *Backend) GetTaskByKey(ctx context.Context, key string) (*queuestype.Record, error) {
	if key == "" {
		return nil, queuestype.ErrTaskNotFound
	}
	rec, err := collectOne(b.pool.Query(ctx, b.q.getByKey, key))
	if err != nil {
		return nil, b.wrap("get task by key", err)
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: key %q", queuestype.ErrTaskNotFound, key)
	}
	return rec, nil
}

// tableEstimate returns pg_class.reltuples of the task table (-1 when never
// analysed).
func (b *Backend) tableEstimate(ctx context.Context) (float64, error) {
	var n float64
	err := b.pool.QueryRow(ctx, `SELECT coalesce((SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass($1)), -1)`, b.n.task).Scan(&n)
	return n, err
}

// large reports whether statistics should estimate terminal counts.
func (b *Backend) large(ctx context.Context) (bool, error) {
	if b.exactLim < 0 {
		return false, nil
	}
	n, err := b.tableEstimate(ctx)
	if err != nil {
		return false, b.wrap("statistics", err)
	}
	return n > float64(b.exactLim), nil
}

// Statistics counts records per status in queue, or in every queue when
// queue is "".
//
// While the table is small (pg_class.reltuples ≤ Options.ExactStatisticsLimit,
// default 1,000,000) every count is exact (one GROUP BY status). On a larger
// table the whole table is never scanned: pending and scheduled are counted
// exactly through the claim partial index and running through the heartbeat
// partial index (both hold only active records, however long the history),
// while completed, failed, cancelled and expired are the planner's row
// estimates (EXPLAIN of the per-status count; they track ANALYZE statistics)
// and the result has Estimated set; ExactStatistics counts them exactly.
func (b *Backend) Statistics(ctx context.Context, queue string) (queuestype.Statistics, error) {
	var st queuestype.Statistics
	if err := ctx.Err(); err != nil {
		return st, err
	}
	big, err := b.large(ctx)
	if err != nil {
		return st, err
	}
	if !big {
		return b.ExactStatistics(ctx, queue)
	}
	per, err := b.largeCounts(ctx, []string{queue})
	if err != nil {
		return st, err
	}
	return per[queue], nil
}

var _ driver.ExactCounter = (*Backend)(nil)

// ExactStatistics counts every status of queue ("" = all queues) with one
// GROUP BY, whatever the table's size: on a large table it reads the whole
// table (or the queue's part of it), which Statistics avoids.
func (b *Backend) ExactStatistics(ctx context.Context, queue string) (queuestype.Statistics, error) {
	var st queuestype.Statistics
	if err := ctx.Err(); err != nil {
		return st, err
	}
	where, args := "", []any{}
	if queue != "" {
		where, args = " WHERE queue = $1", []any{queue}
	}
	rows, err := b.pool.Query(ctx, `SELECT status, count(*) FROM `+b.n.task+where+` GROUP BY status`, args...)
	if err != nil {
		return st, b.wrap("statistics", err)
	}
	err = addCounts(rows, func(_ string, s queuestype.Status, n int) { st.Add(s, n) }, false)
	return st, b.wrap("statistics", err)
}

// addCounts reads (status, count) or (queue, status, count) rows.
func addCounts(rows pgx.Rows, add func(queue string, s queuestype.Status, n int), withQueue bool) error {
	defer rows.Close()
	for rows.Next() {
		var q, s string
		var n int64
		var err error
		if withQueue {
			err = rows.Scan(&q, &s, &n)
		} else {
			err = rows.Scan(&s, &n)
		}
		if err != nil {
			return err
		}
		add(q, queuestype.Status(s), int(n))
	}
	return rows.Err()
}

// largeCounts computes statistics on a large table for each queue of qs
// ("" = all queues): exact active counts through the partial indexes,
// estimated terminal counts.
func (b *Backend) largeCounts(ctx context.Context, qs []string) (map[string]queuestype.Statistics, error) {
	out := make(map[string]queuestype.Statistics, len(qs))
	t := b.n.task
	batch := &pgx.Batch{}
	for _, q := range qs {
		filter := ""
		args := []any{}
		if q != "" {
			filter, args = " AND queue = $1", []any{q}
		}
		batch.Queue(`SELECT status, count(*) FROM `+t+` WHERE status IN `+openStatuses+filter+` GROUP BY status`, args...)
		batch.Queue(`SELECT 'running', count(*) FROM `+t+` WHERE status = 'running'`+filter, args...)
		lit := ""
		if q != "" {
			lit = " AND queue = " + quoteLiteral(q)
		}
		for _, s := range []string{"completed", "failed", "cancelled", "expired"} {
			batch.Queue(`EXPLAIN (FORMAT JSON) SELECT 1 FROM ` + t + ` WHERE status = '` + s + `'` + lit)
		}
	}
	br := b.pool.SendBatch(ctx, batch)
	defer br.Close()
	for _, q := range qs {
		var st queuestype.Statistics
		for range 2 {
			rows, err := br.Query()
			if err != nil {
				return nil, b.wrap("statistics", err)
			}
			if err := addCounts(rows, func(_ string, s queuestype.Status, n int) { st.Add(s, n) }, false); err != nil {
				return nil, b.wrap("statistics", err)
			}
		}
		for _, s := range []queuestype.Status{queuestype.StatusCompleted, queuestype.StatusFailed, queuestype.StatusCancelled, queuestype.StatusExpired} {
			var plan []map[string]map[string]any
			if err := br.QueryRow().Scan(&plan); err != nil {
				return nil, b.wrap("statistics estimate", err)
			}
			n := 0
			if len(plan) > 0 {
				if f, ok := plan[0]["Plan"]["Plan Rows"].(float64); ok && f > 1 {
					n = int(f)
				}
			}
			st.Add(s, n)
		}
		st.Estimated = true
		out[q] = st
	}
	return out, nil
}

// quoteLiteral renders s as a SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

var _ driver.Inspector = (*Backend)(nil)

// QueueStatistics returns the statistics of every queue that holds records,
// exact while the table is small; on a large table (see Statistics) the
// queues are those holding active records or listed in the planner's
// most-common values of the queue column, with estimated terminal counts.
func (b *Backend) QueueStatistics(ctx context.Context) (map[string]queuestype.Statistics, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	big, err := b.large(ctx)
	if err != nil {
		return nil, err
	}
	if !big {
		out := map[string]queuestype.Statistics{}
		rows, err := b.pool.Query(ctx, `SELECT queue, status, count(*) FROM `+b.n.task+` GROUP BY queue, status`)
		if err != nil {
			return nil, b.wrap("queue statistics", err)
		}
		err = addCounts(rows, func(q string, s queuestype.Status, n int) {
			st := out[q]
			st.Add(s, n)
			out[q] = st
		}, true)
		return out, b.wrap("queue statistics", err)
	}
	rows, err := b.pool.Query(ctx, `SELECT DISTINCT queue FROM `+b.n.task+` WHERE status IN `+activeStatuses+`
UNION SELECT unnest(most_common_vals::text::text[]) FROM pg_stats
WHERE schemaname = coalesce(nullif($1, ''), current_schema()) AND tablename = $2 AND attname = 'queue'`, b.n.schema, b.n.taskRaw)
	if err != nil {
		return nil, b.wrap("queue statistics", err)
	}
	qs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, b.wrap("queue statistics", err)
	}
	per, err := b.largeCounts(ctx, qs)
	if err != nil {
		return nil, err
	}
	return driver.QueuesWithRecords(per), nil
}

// ListCompletedByTask lists up to limit (0 means 10) completed records of
// task, newest completed_at first (then id descending), restricted to
// completed_at ≥ since when since is set.
func (b *Backend) ListCompletedByTask(ctx context.Context, task string, since time.Time, limit int) ([]*queuestype.Record, error) {
	limit = driver.Limit(limit, driver.DefaultCompletedLimit)
	recs, err := collectRecords(b.pool.Query(ctx, b.q.completedBy, task, ts(since), limit))
	if err != nil {
		return nil, b.wrap("list completed", err)
	}
	if recs == nil {
		recs = []*queuestype.Record{}
	}
	return recs, nil
}

// ListTasks lists records newest first (created_at DESC, id DESC) with a
// keyset cursor, filtered by status, queue, task name and tag. f.Cursor is the ID
// of the last record of the previous page (a deleted UUIDv7 cursor still
// positions by its timestamp). Limit 0 means 50. NextCursor is set when more
// records remain.
func (b *Backend) ListTasks(ctx context.Context, f driver.TaskFilter) (driver.TaskPage, error) {
	page := driver.TaskPage{Items: []*queuestype.Record{}}
	limit, err := driver.CallLimit(ctx, f.Limit, driver.DefaultPageLimit)
	if err != nil {
		return page, err
	}
	var a sqlArgs
	var where []string
	if f.Cursor != uuid.Nil {
		var at pgtype.Timestamptz
		err := b.pool.QueryRow(ctx, `SELECT created_at FROM `+b.n.task+` WHERE id = $1`, f.Cursor).Scan(&at)
		switch {
		case err == nil:
		case errors.Is(err, pgx.ErrNoRows):
			t, ok := driver.CursorTime(f.Cursor)
			if !ok {
				return page, nil
			}
			at = pgtype.Timestamptz{Time: t, Valid: true}
		default:
			return page, b.wrap("list tasks", err)
		}
		where = append(where, "(created_at, id) < ("+a.add(at)+"::timestamptz, "+a.add(f.Cursor)+"::uuid)")
	}
	if f.Status != "" {
		where = append(where, "status = "+a.add(string(f.Status)))
	}
	if f.Queue != "" {
		where = append(where, "queue = "+a.add(f.Queue))
	}
	if f.TaskName != "" {
		where = append(where, "task_name = "+a.add(f.TaskName))
	}
	if f.Tag != "" {
		// Containment is the operator the GIN index of migration 0007 serves.
		where = append(where, "tags @> ARRAY["+a.add(f.Tag)+"::text]")
	}
	sql := `SELECT ` + cols("") + ` FROM ` + b.n.task
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY created_at DESC, id DESC LIMIT ` + a.add(limit+1)
	recs, err := collectRecords(b.pool.Query(ctx, sql, a...))
	if err != nil {
		return page, b.wrap("list tasks", err)
	}
	return driver.NewTaskPage(recs, limit), nil
}

// ReserveIdentity reserves r.Key for r.TaskID. It returns nil when the
// caller won, else the existing owner. A zero CreatedAt is stamped with the
// database's now().
func (b *Backend) ReserveIdentity(ctx context.Context, r queuestype.Reservation) (*queuestype.Reservation, error) {
	for attempt := 0; attempt < 10; attempt++ {
		var key string
		err := b.pool.QueryRow(ctx, b.q.reserveID, r.Key, r.TaskID, r.TaskName, ts(r.CreatedAt)).Scan(&key)
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, b.wrap("reserve identity", err)
		}
		owner, err := b.GetIdentity(ctx, r.Key)
		if err != nil {
			return nil, err
		}
		if owner != nil {
			return owner, nil
		}
		// The owner was reset between the two statements: try again.
	}
	return nil, fmt.Errorf("postgres: reserve identity %q: the reservation kept changing", r.Key)
}

// GetIdentity returns the reservation for key, or nil, nil.
func (b *Backend) GetIdentity(ctx context.Context, key string) (*queuestype.Reservation, error) {
	var r queuestype.Reservation
	err := b.pool.QueryRow(ctx, b.q.getID, key).Scan(&r.Key, &r.TaskID, &r.TaskName, &r.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, b.wrap("get identity", err)
	}
	r.CreatedAt = r.CreatedAt.UTC()
	return &r, nil
}

// ResetIdentity deletes the reservation for key. A non-zero expectedTaskID
// must equal the owner. It reports whether a reservation was deleted.
func (b *Backend) ResetIdentity(ctx context.Context, key string, expectedTaskID uuid.UUID) (bool, error) {
	var expect pgtype.UUID
	if expectedTaskID != uuid.Nil {
		expect = pgtype.UUID{Bytes: expectedTaskID, Valid: true}
	}
	tag, err := b.pool.Exec(ctx, b.q.resetID, key, expect)
	if err != nil {
		return false, b.wrap("reset identity", err)
	}
	return tag.RowsAffected() > 0, nil
}

var _ driver.Locker = (*Backend)(nil)

// AcquireLock takes the named maintenance lock for token until now()+ttl
// (database clock). It succeeds when the lock is free, expired, or already
// held by token (which refreshes the expiry). It fails closed: an error
// means not acquired.
func (b *Backend) AcquireLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	if err := driver.CheckLockArgs(ctx, ttl, token); err != nil {
		return false, err
	}
	var got string
	err := b.pool.QueryRow(ctx, b.q.lockAcquire, name, token, ttl.Microseconds()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, b.wrap("acquire lock", err)
	}
	return true, nil
}

// ReleaseLock releases the named lock if token holds it; it reports whether
// it did.
func (b *Backend) ReleaseLock(ctx context.Context, name, token string) (bool, error) {
	tag, err := b.pool.Exec(ctx, b.q.lockRelease, name, token)
	if err != nil {
		return false, b.wrap("release lock", err)
	}
	return tag.RowsAffected() > 0, nil
}
