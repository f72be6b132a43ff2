package memory

import (
	"context"
	"slices"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// GetTask returns a copy of the record, or an error matching queuestype.ErrTaskNotFound.
func (b *Backend) GetTask(ctx context.Context, id uuid.UUID) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.records[id]
	if e == nil {
		return nil, driver.NotFound(id)
	}
	return e.clone(), nil
}

// GetTasks returns copies of the records that exist, in the order of ids;
// missing IDs are omitted.
func (b *Backend) GetTasks(ctx context.Context, ids []uuid.UUID) ([]*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*queuestype.Record, 0, len(ids))
	for _, id := range ids {
		if e := b.records[id]; e != nil {
			out = append(out, e.clone())
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
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.byKey[key]
	if e == nil || key == "" {
		return nil, queuestype.ErrTaskNotFound
	}
	return e.clone(), nil
}

// Statistics counts records per status in queue, or in every queue when
// queue is "". It reads maintained counters and does not scan.
func (b *Backend) Statistics(ctx context.Context, queue string) (queuestype.Statistics, error) {
	if err := ctx.Err(); err != nil {
		return queuestype.Statistics{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if queue != "" {
		if st := b.stats[queue]; st != nil {
			return *st, nil
		}
		return queuestype.Statistics{}, nil
	}
	var total queuestype.Statistics
	for _, st := range b.stats {
		total.Merge(*st)
	}
	return total, nil
}

var _ driver.Inspector = (*Backend)(nil)

// QueueStatistics returns the statistics of every queue that holds records.
func (b *Backend) QueueStatistics(ctx context.Context) (map[string]queuestype.Statistics, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]queuestype.Statistics, len(b.stats))
	for q, st := range b.stats {
		if st.Total > 0 {
			out[q] = *st
		}
	}
	return out, nil
}

// ListCompletedByTask lists up to limit (0 means 10) completed records of
// task, newest completed_at first (then id descending), restricted to
// completed_at ≥ since when since is set.
func (b *Backend) ListCompletedByTask(ctx context.Context, task string, since time.Time, limit int) ([]*queuestype.Record, error) {
	limit, err := driver.CallLimit(ctx, limit, driver.DefaultCompletedLimit)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var list []*entry
	for _, e := range b.records {
		r := &e.rec
		if r.Status != queuestype.StatusCompleted || r.TaskName != task {
			continue
		}
		if !since.IsZero() && r.CompletedAt.Before(since) {
			continue
		}
		list = append(list, e)
	}
	slices.SortFunc(list, func(x, y *entry) int {
		if c := y.rec.CompletedAt.Compare(x.rec.CompletedAt); c != 0 {
			return c
		}
		return driver.CompareID(y.rec.ID, x.rec.ID)
	})
	if len(list) > limit {
		list = list[:limit]
	}
	out := make([]*queuestype.Record, len(list))
	for i, e := range list {
		out[i] = e.clone()
	}
	return out, nil
}

// newestFirst is the ListTasks order: created_at DESC, id DESC. It returns a
// negative number when x comes before y.
func newestFirst(xc time.Time, xid uuid.UUID, yc time.Time, yid uuid.UUID) int {
	if c := yc.Compare(xc); c != 0 {
		return c
	}
	return driver.CompareID(yid, xid)
}

// ListTasks lists records newest first (created_at DESC, id DESC), filtered by
// status, queue, task name and tag. f.Cursor is the ID of the last record of the
// previous page; the page holds the records after it. Limit 0 means 50.
// NextCursor is set when more records remain.
func (b *Backend) ListTasks(ctx context.Context, f driver.TaskFilter) (driver.TaskPage, error) {
	limit, err := driver.CallLimit(ctx, f.Limit, driver.DefaultPageLimit)
	if err != nil {
		return driver.TaskPage{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var (
		curAt   time.Time
		hasCur  = f.Cursor != uuid.Nil
		curID   = f.Cursor
		matches []*entry
	)
	if hasCur {
		if e := b.records[f.Cursor]; e != nil {
			curAt = e.rec.CreatedAt
		} else if at, ok := driver.CursorTime(f.Cursor); ok {
			curAt = at
		} else {
			return driver.NewTaskPage(nil, limit), nil
		}
	}
	candidates := b.records
	if f.Tag != "" {
		candidates = b.byTag[f.Tag]
	}
	for _, e := range candidates {
		r := &e.rec
		if (f.Status != "" && r.Status != f.Status) || (f.Queue != "" && r.Queue != f.Queue) ||
			(f.TaskName != "" && r.TaskName != f.TaskName) {
			continue
		}
		if hasCur && newestFirst(r.CreatedAt, r.ID, curAt, curID) <= 0 {
			continue
		}
		matches = append(matches, e)
	}
	slices.SortFunc(matches, func(x, y *entry) int {
		return newestFirst(x.rec.CreatedAt, x.rec.ID, y.rec.CreatedAt, y.rec.ID)
	})
	if len(matches) > limit+1 {
		matches = matches[:limit+1] // one more than the page tells whether more remain
	}
	recs := make([]*queuestype.Record, len(matches))
	for i, e := range matches {
		recs[i] = e.clone()
	}
	return driver.NewTaskPage(recs, limit), nil
}

// ReserveIdentity reserves r.Key for r.TaskID. It returns nil when the caller
// won, else a copy of the existing owner. A zero CreatedAt is stamped with now.
func (b *Backend) ReserveIdentity(ctx context.Context, r queuestype.Reservation) (*queuestype.Reservation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.reservations[r.Key]; ok {
		return &old, nil
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = b.now()
	} else {
		r.CreatedAt = r.CreatedAt.UTC()
	}
	b.reservations[r.Key] = r
	return nil, nil
}

// GetIdentity returns a copy of the reservation for key, or nil, nil.
func (b *Backend) GetIdentity(ctx context.Context, key string) (*queuestype.Reservation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.reservations[key]; ok {
		return &r, nil
	}
	return nil, nil
}

// ResetIdentity deletes the reservation for key. A non-zero expectedTaskID
// must equal the owner. It reports whether a reservation was deleted.
func (b *Backend) ResetIdentity(ctx context.Context, key string, expectedTaskID uuid.UUID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.reservations[key]
	if !ok || (expectedTaskID != uuid.Nil && r.TaskID != expectedTaskID) {
		return false, nil
	}
	delete(b.reservations, key)
	return true, nil
}
