package memory

import (
	"container/heap"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// requeueEntry starts a new, unowned generation of e: retry_count+1,
// queued_at=now, started_at, heartbeat_at, worker_id and execution_ref
// cleared; scheduled at now+delay when delay > 0, else pending. It reports
// whether the record is due now.
func (b *Backend) requeueEntry(e *entry, delay time.Duration, now time.Time) bool {
	r := &e.rec
	r.RetryCount++
	r.QueuedAt = now
	r.StartedAt = time.Time{}
	r.HeartbeatAt = time.Time{}
	r.CompletedAt = time.Time{}
	r.WorkerID = ""
	r.ExecutionRef, r.DispatchUntil = "", time.Time{}
	due := delay <= 0
	if due {
		r.Status = queuestype.StatusPending
		r.ScheduledAt = time.Time{}
	} else {
		r.Status = queuestype.StatusScheduled
		r.ScheduledAt = now.Add(delay)
	}
	b.sync(e, now)
	return due
}

// finishEntry makes e terminal with status s at now (heartbeat cleared,
// worker_id kept).
func (b *Backend) finishEntry(e *entry, s queuestype.Status, now time.Time) {
	r := &e.rec
	r.Status = s
	r.CompletedAt = now
	r.HeartbeatAt = time.Time{}
	r.DispatchUntil = time.Time{} // a finished record is reserved for nothing
	b.sync(e, now)
}

// completeEntry makes e completed at now with result (which the store then
// owns): error and heartbeat cleared, worker_id kept. It is the write of
// Settle's completed transitions.
func (b *Backend) completeEntry(e *entry, result json.RawMessage, now time.Time) {
	e.rec.Result = result
	e.rec.Error = ""
	b.finishEntry(e, queuestype.StatusCompleted, now)
}

// Cancel cancels a pending or scheduled record, or a running one when
// p.IncludeRunning, fenced on the optional generation. worker_id is kept so
// control hints can reach the owner. Any other state returns an error
// matching queuestype.ErrFenceLost.
func (b *Backend) Cancel(ctx context.Context, p driver.CancelParams) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.records[p.ID]
	if e == nil {
		return nil, driver.MissingForWrite("cancel", p.ID)
	}
	r := &e.rec
	if !(isOpen(r.Status) || (p.IncludeRunning && r.Status == queuestype.StatusRunning)) ||
		(p.ExpectedRetryCount != nil && *p.ExpectedRetryCount != r.RetryCount) {
		return nil, driver.FenceLost("cancel", p.ID)
	}
	b.finishEntry(e, queuestype.StatusCancelled, b.now())
	return e.clone(), nil
}

// CancelMatching cancels every pending/scheduled record (and running, with
// f.IncludeRunning) that matches the filter and holds no execution_ref.
// TaskName and Queue match by equality when set; Args and Metadata match when
// each of their top-level keys is present in the record with an equal JSON
// value. The cancelled records are returned in claim order.
func (b *Backend) CancelMatching(ctx context.Context, f driver.CancelFilter) ([]*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Stored metadata is normalized; match against a normalized filter.
	filter := f
	filter.Args = queuestype.NormalizeMetadata(f.Args)
	filter.Metadata = queuestype.NormalizeMetadata(f.Metadata)
	b.mu.Lock()
	defer b.mu.Unlock()
	var hits []*entry
	for _, e := range b.records {
		r := &e.rec
		if !(isOpen(r.Status) || (f.IncludeRunning && r.Status == queuestype.StatusRunning)) || r.ExecutionRef != "" {
			continue
		}
		if driver.MatchesFilter(r, filter) {
			hits = append(hits, e)
		}
	}
	slices.SortFunc(hits, func(x, y *entry) int { return driver.ClaimOrder(&x.rec, &y.rec) })
	now := b.now()
	out := make([]*queuestype.Record, 0, len(hits))
	for _, e := range hits {
		b.finishEntry(e, queuestype.StatusCancelled, now)
		out = append(out, e.clone())
	}
	return out, nil
}

// TouchHeartbeats sets heartbeat_at=now on each touched running record whose
// generation matches (a nil ExpectedRetryCount is unfenced) and merges the
// touch's MetadataPatch into its metadata. Each touch's ID is reported in
// Touched or Missed; an ID touched twice may appear in both.
func (b *Backend) TouchHeartbeats(ctx context.Context, touches []driver.HeartbeatTouch) (driver.HeartbeatResult, error) {
	var res driver.HeartbeatResult
	if none, err := driver.NoWork(ctx, len(touches)); none {
		return res, err
	}
	if err := driver.CheckHeartbeatLimits(touches); err != nil {
		return res, err
	}
	patches := make([]map[string]any, len(touches))
	for i, t := range touches {
		if len(t.MetadataPatch) > 0 {
			patches[i] = queuestype.NormalizeMetadata(t.MetadataPatch)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for i, t := range touches {
		e := b.records[t.ID]
		if e == nil || e.rec.Status != queuestype.StatusRunning ||
			(t.ExpectedRetryCount != nil && *t.ExpectedRetryCount != e.rec.RetryCount) {
			res.Missed = append(res.Missed, t.ID)
			continue
		}
		e.rec.HeartbeatAt = now
		if patches[i] != nil {
			if e.rec.Metadata == nil {
				e.rec.Metadata = make(map[string]any, len(patches[i]))
			}
			for k, v := range patches[i] {
				e.rec.Metadata[k] = v
			}
		}
		res.Touched = append(res.Touched, t.ID)
	}
	return res, nil
}

// NullHeartbeats clears heartbeat_at of each fenced running record whose
// generation matches, so stale recovery takes it at once. Other records are
// left alone.
func (b *Backend) NullHeartbeats(ctx context.Context, fences []queuestype.Fence) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range fences {
		if e := b.records[f.ID]; e != nil && e.rec.Status == queuestype.StatusRunning && e.rec.RetryCount == f.RetryCount {
			e.rec.HeartbeatAt = time.Time{}
		}
	}
	return nil
}

// coalesce returns a, or b when a is zero.
func coalesce(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return a
}

// ExpireOverdue expires up to limit (≤ 0 means 100) pending/scheduled records
// holding no execution_ref whose expires_at ≤ now, ordered by expires_at,
// created_at, and returns them.
func (b *Backend) ExpireOverdue(ctx context.Context, limit int) ([]*queuestype.Record, error) {
	limit, err := driver.CallLimit(ctx, limit, driver.DefaultExpireLimit)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var out []*queuestype.Record
	for len(out) < limit {
		var best *entry
		for _, pt := range b.partList {
			e := pt.expiry.peek()
			if e == nil || e.rec.ExpiresAt.After(now) {
				continue
			}
			if best == nil || timeIDLess(e.rec.ExpiresAt, best.rec.ExpiresAt, &e.rec, &best.rec) {
				best = e
			}
		}
		if best == nil {
			break
		}
		b.expireEntry(best, now)
		out = append(out, best.clone())
	}
	return out, nil
}

// CleanupTerminal deletes up to p.Limit (≤ 0 means 100) terminal records
// of the statuses p.Before names, each completed before its status's
// cutoff, oldest completed_at (then id) first, and returns how many it
// deleted. Each status has a heap of its own, so a status whose records
// are kept longer never hides another's older ones. Identity reservations
// are never deleted.
func (b *Backend) CleanupTerminal(ctx context.Context, p driver.CleanupParams) (int, error) {
	cuts, limit, err := driver.CheckCleanup(ctx, p)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p.ByTask) > 0 {
		return b.cleanupByTask(p, cuts, limit), nil
	}
	n := 0
	for n < limit {
		var best *entry
		for _, c := range cuts {
			e := b.terminal[terminalSlot(c.Status)].peek()
			if e == nil || !e.rec.CompletedAt.Before(c.Before) {
				continue
			}
			if best == nil || timeIDLess(e.rec.CompletedAt, best.rec.CompletedAt, &e.rec, &best.rec) {
				best = e
			}
		}
		if best == nil {
			break
		}
		b.deleteEntry(best)
		n++
	}
	return n, nil
}

// cleanupByTask is CleanupTerminal with per-task cutoffs: a best-first
// walk over the status heaps, oldest first, up to the latest cutoff, that
// deletes the first limit records past their own cutoff. A record its own
// cutoff keeps is walked past, never deleted: the walk
// costs the kept records older than the latest cutoff plus the limit.
func (b *Backend) cleanupByTask(p driver.CleanupParams, cuts []driver.CleanupCutoff, limit int) int {
	var latest time.Time
	slots := map[int]bool{}
	for _, c := range cuts {
		if c.Before.After(latest) {
			latest = c.Before
		}
		slots[terminalSlot(c.Status)] = true
	}
	fr := make(terminalFrontier, 0, 4+2*limit)
	for i := range b.terminal {
		if slots[i] && b.terminal[i].Len() > 0 {
			fr = append(fr, cursor{h: &b.terminal[i], i: 0})
		}
	}
	heap.Init(&fr)
	var del []*entry
	for fr.Len() > 0 && len(del) < limit {
		c := heap.Pop(&fr).(cursor)
		e := c.h.items[c.i]
		if !e.rec.CompletedAt.Before(latest) {
			continue // its children completed no earlier
		}
		if cut, ok := driver.CleanupCutoffFor(p, e.rec.TaskName, e.rec.Status); ok && e.rec.CompletedAt.Before(cut) {
			del = append(del, e)
		}
		for _, k := range [2]int{2*c.i + 1, 2*c.i + 2} {
			if k < c.h.Len() {
				heap.Push(&fr, cursor{h: c.h, i: k})
			}
		}
	}
	for _, e := range del {
		b.deleteEntry(e)
	}
	return len(del)
}

// terminalFrontier is a container/heap of terminal heap positions, oldest
// completed_at (then id) first.
type terminalFrontier []cursor

func (f terminalFrontier) Len() int { return len(f) }
func (f terminalFrontier) Less(i, j int) bool {
	a, b := &f[i].h.items[f[i].i].rec, &f[j].h.items[f[j].i].rec
	if c := a.CompletedAt.Compare(b.CompletedAt); c != 0 {
		return c < 0
	}
	return driver.CompareID(a.ID, b.ID) < 0
}
func (f terminalFrontier) Swap(i, j int) { f[i], f[j] = f[j], f[i] }
func (f *terminalFrontier) Push(x any)   { *f = append(*f, x.(cursor)) }
func (f *terminalFrontier) Pop() any {
	old := *f
	x := old[len(old)-1]
	*f = old[:len(old)-1]
	return x
}

// terminalSlot is the index in Backend.terminal of a terminal status's heap.
func terminalSlot(s queuestype.Status) int {
	switch s {
	case queuestype.StatusCompleted:
		return 0
	case queuestype.StatusFailed:
		return 1
	case queuestype.StatusCancelled:
		return 2
	default:
		return 3
	}
}

// deleteEntry removes a terminal record from the store and every index.
func (b *Backend) deleteEntry(e *entry) {
	r := &e.rec
	if e.idx[kTerminal] >= 0 {
		b.terminal[terminalSlot(r.Status)].remove(e)
	}
	if e.cStatus != "" {
		st := b.stats[e.cQueue]
		st.Add(e.cStatus, -1)
		if st.Total == 0 {
			delete(b.stats, e.cQueue)
		}
		e.cStatus = ""
	}
	if r.Key != "" && b.byKey[r.Key] == e {
		delete(b.byKey, r.Key)
	}
	delete(b.running, r.ID)
	delete(b.withRef, r.ID)
	delete(b.records, r.ID)
	for _, tag := range r.Tags {
		if set := b.byTag[tag]; set != nil {
			delete(set, r.ID)
			if len(set) == 0 {
				delete(b.byTag, tag)
			}
		}
	}
}
