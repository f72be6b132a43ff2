package memory

import (
	"container/heap"
	"context"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// maxClaimExpire bounds how many overdue records one ClaimMany expires.
const maxClaimExpire = 1000

// claimEntry moves e to running for worker at now.
func (b *Backend) claimEntry(e *entry, worker string, now time.Time) {
	r := &e.rec
	r.Status = queuestype.StatusRunning
	r.WorkerID = worker
	r.StartedAt = now
	r.HeartbeatAt = now
	b.sync(e, now)
}

// expireEntry moves a pending/scheduled e to expired at now.
func (b *Backend) expireEntry(e *entry, now time.Time) {
	r := &e.rec
	r.Status = queuestype.StatusExpired
	r.CompletedAt = now
	r.HeartbeatAt = time.Time{}
	b.sync(e, now)
}

// ClaimMany claims up to p.Limit due records in claim order (priority DESC,
// queued_at, created_at, id), honouring the queue and execution-backend
// filters and the per-queue caps of p.QueueLimits. Each claimed record becomes
// running with worker_id, started_at and heartbeat_at set in the same step.
// With p.ExpireOverdue, overdue unreferenced records of the selected queues
// are expired and returned in Expired. Limit ≤ 0 returns an empty result.
func (b *Backend) ClaimMany(ctx context.Context, p driver.ClaimParams) (driver.ClaimResult, error) {
	var res driver.ClaimResult
	if none, err := driver.NoWork(ctx, p.Limit); none {
		return res, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	parts := b.matchParts(p.Queues, p.ExecutionBackend)
	b.promote(parts, now)

	if p.ExpireOverdue {
		n := 0
		for _, pt := range parts {
			for n < maxClaimExpire {
				e := pt.expiry.peek()
				if e == nil || e.rec.ExpiresAt.After(now) {
					break
				}
				b.expireEntry(e, now)
				res.Expired = append(res.Expired, e.clone())
				n++
			}
		}
	}

	// Per-queue caps: drop partitions whose queue may not be claimed at all.
	var taken map[string]int
	if len(p.QueueLimits) > 0 {
		taken = make(map[string]int, len(p.QueueLimits))
		parts = dropCapped(parts, p.QueueLimits, taken)
	}

	for len(res.Claimed) < p.Limit {
		var best *entry
		for _, pt := range parts {
			h := pt.ready.peek()
			if h != nil && (best == nil || claimLess(&h.rec, &best.rec)) {
				best = h
			}
		}
		if best == nil {
			break
		}
		if best.rec.IsExpired(now) {
			if p.ExpireOverdue && best.rec.ExecutionRef == "" {
				b.expireEntry(best, now)
				res.Expired = append(res.Expired, best.clone())
			} else {
				b.reindex(best, now) // leaves the ready heap; the expiry sweep owns it now
			}
			continue
		}
		b.claimEntry(best, p.WorkerID, now)
		res.Claimed = append(res.Claimed, best.clone())
		if taken != nil {
			if _, capped := p.QueueLimits[best.rec.Queue]; capped {
				taken[best.rec.Queue]++
				parts = dropCapped(parts, p.QueueLimits, taken)
			}
		}
	}
	return res, nil
}

// dropCapped removes (in place) the partitions whose queue reached its cap.
func dropCapped(parts []*partition, limits map[string]int, taken map[string]int) []*partition {
	out := parts[:0]
	for _, pt := range parts {
		if c, ok := limits[pt.key.queue]; ok && taken[pt.key.queue] >= c {
			continue
		}
		out = append(out, pt)
	}
	return out
}

// ClaimByID claims one record by ID. The record must be pending or scheduled,
// not reservation-marked, due, and match the optional generation and
// execution-ref fences (ExpectedRef "" means no ref). An overdue record with
// no execution_ref is expired instead and returned in Expired; a record
// holding a finalized ref is claimable after its deadline. A record that
// cannot be claimed yields an empty result; a missing ID yields
// queuestype.ErrTaskNotFound.
func (b *Backend) ClaimByID(ctx context.Context, p driver.ClaimByIDParams) (driver.ClaimResult, error) {
	var res driver.ClaimResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.records[p.ID]
	if e == nil {
		return res, driver.NotFound(p.ID)
	}
	now := b.now()
	r := &e.rec
	if !isOpen(r.Status) || !r.DispatchUntil.IsZero() {
		return res, nil
	}
	if p.ExpectedRetryCount != nil && *p.ExpectedRetryCount != r.RetryCount {
		return res, nil
	}
	if p.ExpectedRef != nil && *p.ExpectedRef != r.ExecutionRef {
		return res, nil
	}
	if r.IsExpired(now) && r.ExecutionRef == "" {
		b.expireEntry(e, now)
		res.Expired = append(res.Expired, e.clone())
		return res, nil
	}
	if !r.IsDue(now) {
		return res, nil
	}
	b.claimEntry(e, p.WorkerID, now)
	res.Claimed = append(res.Claimed, e.clone())
	return res, nil
}

// ListPending lists due, unexpired, not reservation-marked pending/scheduled
// records in claim order, with the queue and execution-backend filters.
// Limit ≤ 0 means 100. It changes nothing.
func (b *Backend) ListPending(ctx context.Context, p driver.ListPendingParams) ([]*queuestype.Record, error) {
	limit, err := driver.CallLimit(ctx, p.Limit, driver.DefaultPendingLimit)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	parts := b.matchParts(p.Queues, p.ExecutionBackend)
	b.promote(parts, now)
	// Best-first walk over the ready heaps: a heap's children are never
	// better than their parent, so the frontier holds the next candidates.
	fr := make(frontier, 0, len(parts)+2*limit)
	for _, pt := range parts {
		if pt.ready.Len() > 0 {
			fr = append(fr, cursor{h: &pt.ready, i: 0})
		}
	}
	heap.Init(&fr)
	out := make([]*queuestype.Record, 0, min(limit, 64))
	for fr.Len() > 0 && len(out) < limit {
		c := heap.Pop(&fr).(cursor)
		e := c.h.items[c.i]
		if !e.rec.IsExpired(now) {
			out = append(out, e.clone())
		}
		for _, k := range [2]int{2*c.i + 1, 2*c.i + 2} {
			if k < c.h.Len() {
				heap.Push(&fr, cursor{h: c.h, i: k})
			}
		}
	}
	return out, nil
}

// cursor is one position in a ready heap.
type cursor struct {
	h *entryHeap
	i int
}

// frontier is a container/heap of heap positions in claim order.
type frontier []cursor

func (f frontier) Len() int { return len(f) }
func (f frontier) Less(i, j int) bool {
	return claimLess(&f[i].h.items[f[i].i].rec, &f[j].h.items[f[j].i].rec)
}
func (f frontier) Swap(i, j int) { f[i], f[j] = f[j], f[i] }
func (f *frontier) Push(x any)   { *f = append(*f, x.(cursor)) }
func (f *frontier) Pop() any {
	old := *f
	x := old[len(old)-1]
	*f = old[:len(old)-1]
	return x
}

var _ driver.DueTimer = (*Backend)(nil)

// NextDue returns the earliest future scheduled_at among pending/scheduled
// records (of the given queues when non-empty); ok is false when there is none.
func (b *Backend) NextDue(ctx context.Context, queueNames []string) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	parts := b.matchParts(queueNames, "")
	b.promote(parts, now)
	var next time.Time
	for _, pt := range parts {
		if e := pt.future.peek(); e != nil && (next.IsZero() || e.rec.ScheduledAt.Before(next)) {
			next = e.rec.ScheduledAt
		}
	}
	return next, !next.IsZero(), nil
}
