package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// readStmt returns the reader pool's prepared statement for query.
func (b *Backend) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	_, rdb, err := b.handles() // before rmu: disconnect takes b.mu, then rmu
	if err != nil {
		return nil, err
	}
	b.rmu.Lock()
	defer b.rmu.Unlock()
	if s := b.rstmts[query]; s != nil {
		return s, nil
	}
	s, err := rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if b.rstmts == nil || len(b.rstmts) >= 256 {
		for _, old := range b.rstmts {
			_ = old.Close()
		}
		b.rstmts = make(map[string]*sql.Stmt)
	}
	b.rstmts[query] = s
	return s, nil
}

// closeReadStmts finalizes the cached reader statements.
func (b *Backend) closeReadStmts() {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	for _, s := range b.rstmts {
		_ = s.Close()
	}
	b.rstmts = nil
}

// readRaw runs a record query on the reader pool.
func (b *Backend) readRaw(ctx context.Context, query string, args ...any) ([]rawRec, error) {
	if _, _, err := b.handles(); err != nil {
		return nil, err
	}
	var out []rawRec
	err := retryBusy(ctx, func() error {
		s, err := b.readStmt(ctx, query)
		if err != nil {
			return err
		}
		rows, err := s.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		out, err = scanRecords(rows, out[:0])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: read: %w", err)
	}
	return out, nil
}

// readRecords runs a record query on the reader pool and decodes the rows.
func (b *Backend) readRecords(ctx context.Context, query string, args ...any) ([]*queuestype.Record, error) {
	rows, err := b.readRaw(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return decodeAll(rows)
}

// readRow runs a query returning at most one row on the reader pool.
func (b *Backend) readRow(ctx context.Context, query string, args []any, dest ...any) (bool, error) {
	if _, _, err := b.handles(); err != nil {
		return false, err
	}
	found := false
	err := retryBusy(ctx, func() error {
		s, err := b.readStmt(ctx, query)
		if err != nil {
			return err
		}
		err = s.QueryRowContext(ctx, args...).Scan(dest...)
		if errors.Is(err, sql.ErrNoRows) {
			found = false
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: read: %w", err)
	}
	return found, nil
}

// readRows runs a query on the reader pool, calling scan for each row.
func (b *Backend) readRows(ctx context.Context, query string, args []any, scan func(rows *sql.Rows) error) error {
	if _, _, err := b.handles(); err != nil {
		return err
	}
	err := retryBusy(ctx, func() error {
		s, err := b.readStmt(ctx, query)
		if err != nil {
			return err
		}
		rows, err := s.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("sqlite: read: %w", err)
	}
	return nil
}

// GetTask returns the record, or an error matching queuestype.ErrTaskNotFound.
func (b *Backend) GetTask(ctx context.Context, id uuid.UUID) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := b.readRaw(ctx, sqlSelectByID, id.String())
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, driver.NotFound(id)
	}
	return rows[0].record()
}

// GetTasks returns the records that exist, in the order of ids; missing IDs
// are omitted.
func (b *Backend) GetTasks(ctx context.Context, ids []uuid.UUID) ([]*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []*queuestype.Record{}, nil
	}
	text := make([]string, len(ids))
	for i, id := range ids {
		text[i] = id.String()
	}
	list, _ := json.Marshal(text)
	rows, err := b.readRaw(ctx, `SELECT `+recordColumns+` FROM queue_task WHERE id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*rawRec, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	out := make([]*queuestype.Record, 0, len(rows))
	for _, id := range text {
		if r := byID[id]; r != nil {
			rec, err := r.record()
			if err != nil {
				return nil, err
			}
			out = append(out, rec)
		}
	}
	return out, nil
}

// GetTaskByKey returns the record holding the identity key, or an error
// matching queuestype.ErrTaskNotFound.
func (b *Backend) GetTaskByKey(ctx context.Context, key string) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, queuestype.ErrTaskNotFound
	}
	rows, err := b.readRaw(ctx, `SELECT `+recordColumns+` FROM queue_task WHERE task_key = ?`, key)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: key %q", queuestype.ErrTaskNotFound, key)
	}
	return rows[0].record()
}

// Statistics counts records per status in queue, or in every queue when
// queue is "". It scans the table (one covering pass), so it costs time
// proportional to the number of stored records.
func (b *Backend) Statistics(ctx context.Context, queue string) (queuestype.Statistics, error) {
	var st queuestype.Statistics
	if err := ctx.Err(); err != nil {
		return st, err
	}
	q := `SELECT status, count(*) FROM queue_task GROUP BY status`
	var args []any
	if queue != "" {
		q = `SELECT status, count(*) FROM queue_task WHERE queue = ? GROUP BY status`
		args = []any{queue}
	}
	err := b.readRows(ctx, q, args, func(rows *sql.Rows) error {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return err
		}
		st.Add(queuestype.Status(status), n)
		return nil
	})
	return st, err
}

var _ driver.Inspector = (*Backend)(nil)

// QueueStatistics returns the statistics of every queue that holds records.
func (b *Backend) QueueStatistics(ctx context.Context) (map[string]queuestype.Statistics, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[string]queuestype.Statistics{}
	err := b.readRows(ctx, `SELECT queue, status, count(*) FROM queue_task GROUP BY queue, status`, nil, func(rows *sql.Rows) error {
		var queue, status string
		var n int
		if err := rows.Scan(&queue, &status, &n); err != nil {
			return err
		}
		st := out[queue]
		st.Add(queuestype.Status(status), n)
		out[queue] = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ceilMicros is t in Unix microseconds, rounded up, so comparisons with
// stored (microsecond) times agree with comparisons at full precision.
func ceilMicros(t time.Time) int64 {
	v := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		v++
	}
	return v
}

// ListCompletedByTask lists up to limit (0 means 10) completed records of
// task, newest completed_at first (then id descending), restricted to
// completed_at ≥ since when since is set.
func (b *Backend) ListCompletedByTask(ctx context.Context, task string, since time.Time, limit int) ([]*queuestype.Record, error) {
	limit, err := driver.CallLimit(ctx, limit, driver.DefaultCompletedLimit)
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + recordColumns + ` FROM queue_task WHERE status = 'completed' AND task_name = ?1`
	args := []any{task}
	if !since.IsZero() {
		q += ` AND completed_at >= CAST(?3 AS INTEGER)`
		args = append(args, limit, ceilMicros(since))
	} else {
		args = append(args, limit)
	}
	q += ` ORDER BY completed_at DESC, id DESC LIMIT CAST(?2 AS INTEGER)`
	return b.readRecords(ctx, q, args...)
}

// ListRunningExternal lists up to limit non-terminal records holding an
// execution_ref, ordered by coalesce(started_at, created_at), then id.
// limit ≤ 0 returns nothing.
func (b *Backend) ListRunningExternal(ctx context.Context, limit int) ([]*queuestype.Record, error) {
	if empty, done, err := driver.NoItems[*queuestype.Record](ctx, limit); done {
		return empty, err
	}
	return b.readRecords(ctx, `SELECT `+recordColumns+` FROM queue_task
WHERE execution_ref IS NOT NULL AND `+sqlNotTerminal+`
ORDER BY coalesce(started_at, created_at), id LIMIT CAST(? AS INTEGER)`, limit)
}

// ListTasks lists records newest first (created_at DESC, id DESC), filtered by
// status, queue, task name and tag. f.Cursor is the ID of the last record of the
// previous page; the page holds the records after it (a deleted cursor record
// is placed by its UUIDv7 time). Limit 0 means 50. NextCursor is set when
// more records remain.
func (b *Backend) ListTasks(ctx context.Context, f driver.TaskFilter) (driver.TaskPage, error) {
	var page driver.TaskPage
	limit, err := driver.CallLimit(ctx, f.Limit, driver.DefaultPageLimit)
	if err != nil {
		return page, err
	}
	var ps params
	var conds []string
	if f.Status != "" {
		conds = append(conds, "status = CAST("+ps.add(string(f.Status))+" AS TEXT)")
	}
	if f.Queue != "" {
		conds = append(conds, "queue = "+ps.add(f.Queue))
	}
	if f.TaskName != "" {
		conds = append(conds, "task_name = "+ps.add(f.TaskName))
	}
	if f.Tag != "" {
		// The tag index (migration 0007) names the tag's records.
		conds = append(conds, "id IN (SELECT task_id FROM queue_task_tag WHERE tag = CAST("+ps.add(f.Tag)+" AS TEXT))")
	}
	if f.Cursor != uuid.Nil {
		var at int64
		found, err := b.readRow(ctx, `SELECT created_at FROM queue_task WHERE id = ?`, []any{f.Cursor.String()}, &at)
		if err != nil {
			return page, err
		}
		if !found {
			t, ok := driver.CursorTime(f.Cursor)
			if !ok {
				return driver.NewTaskPage(nil, limit), nil
			}
			at = t.UnixMicro()
		}
		conds = append(conds, "(created_at, id) < (CAST("+ps.add(at)+" AS INTEGER), CAST("+ps.add(f.Cursor.String())+" AS TEXT))")
	}
	q := `SELECT ` + recordColumns + ` FROM queue_task`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ` + limitParam(&ps, limit+1)
	recs, err := b.readRecords(ctx, q, ps.args...)
	if err != nil {
		return page, err
	}
	return driver.NewTaskPage(recs, limit), nil
}

// GetIdentity returns the reservation for key, or nil, nil.
func (b *Backend) GetIdentity(ctx context.Context, key string) (*queuestype.Reservation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		taskID, taskName string
		created          int64
	)
	found, err := b.readRow(ctx, `SELECT task_id, task_name, created_at FROM queue_task_reservation WHERE identity_key = ?`,
		[]any{key}, &taskID, &taskName, &created)
	if err != nil || !found {
		return nil, err
	}
	id, err := uuid.Parse(taskID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reservation %q task id: %w", key, err)
	}
	return &queuestype.Reservation{Key: key, TaskID: id, TaskName: taskName, CreatedAt: fromMicros(created)}, nil
}
