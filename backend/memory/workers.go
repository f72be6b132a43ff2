package memory

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
)

var (
	_ driver.WorkerRegistry = (*Backend)(nil)
	_ driver.BacklogCounter = (*Backend)(nil)
)

// workerEntry is one registered worker; its times come from the backend clock.
type workerEntry struct {
	info driver.WorkerInfo
}

// RegisterWorker inserts or replaces the entry for w.ID, live until the
// backend clock's now + ttl.
func (b *Backend) RegisterWorker(ctx context.Context, w driver.WorkerInfo, ttl time.Duration) error {
	if err := driver.CheckRegisterWorker(ctx, w, ttl); err != nil {
		return err
	}
	now := b.now()
	w.Queues = slices.Clone(w.Queues)
	w.StartedAt = w.StartedAt.UTC()
	w.SeenAt, w.ExpiresAt = now, now.Add(ttl)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.workers == nil {
		b.workers = map[string]workerEntry{}
	}
	b.workers[w.ID] = workerEntry{info: w}
	return nil
}

// RemoveWorker deletes the entry for id; a missing entry is not an error.
func (b *Backend) RemoveWorker(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.workers, id)
	return nil
}

// ListWorkers returns up to limit live entries ordered by ID, byte-wise
// (limit ≤ 0 → 1000), and deletes the expired ones it meets.
func (b *Backend) ListWorkers(ctx context.Context, limit int) ([]driver.WorkerInfo, error) {
	limit, err := driver.WorkerListLimit(ctx, limit)
	if err != nil {
		return nil, err
	}
	now := b.now()
	b.mu.Lock()
	out := make([]driver.WorkerInfo, 0, len(b.workers))
	for id, e := range b.workers {
		if !e.info.ExpiresAt.After(now) {
			delete(b.workers, id)
			continue
		}
		w := e.info
		w.Queues = slices.Clone(w.Queues)
		out = append(out, w)
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y driver.WorkerInfo) int { return strings.Compare(x.ID, y.ID) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// CountBacklog counts the claimable (due) and future records of every
// (queue, execution backend) partition from its heap sizes: no record scan.
// Records a dispatch reservation holds are in neither heap. A ready record
// whose deadline passed after it was placed is taken out of the ready heap
// first, as a claim would (the claim skips it): those without an execution
// ref are found in the expiry heaps (only the overdue part is visited),
// those with one among the records holding a ref.
func (b *Backend) CountBacklog(ctx context.Context) ([]driver.BacklogCount, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.promote(b.partList, now)
	var stale []*entry
	for _, p := range b.partList {
		stale = overdueReady(p.expiry.items, 0, now, stale)
	}
	for _, e := range b.withRef {
		if e.idx[kReady] >= 0 && e.rec.IsExpired(now) {
			stale = append(stale, e)
		}
	}
	for _, e := range stale {
		b.reindex(e, now)
	}
	var out []driver.BacklogCount
	for _, p := range b.partList {
		if n, m := p.ready.Len(), p.future.Len(); n+m > 0 {
			out = append(out, driver.BacklogCount{Queue: p.key.queue, ExecutionBackend: p.key.backend, Due: n, Later: m})
		}
	}
	return out, nil
}

// overdueReady appends to out the entries of the expiry heap items, from
// index i down, that are overdue at now and still in a ready heap. A heap
// node is not after its children, so a node not overdue ends its subtree.
func overdueReady(items []*entry, i int, now time.Time, out []*entry) []*entry {
	if i >= len(items) || items[i].rec.ExpiresAt.After(now) {
		return out
	}
	if items[i].idx[kReady] >= 0 {
		out = append(out, items[i])
	}
	out = overdueReady(items, 2*i+1, now, out)
	return overdueReady(items, 2*i+2, now, out)
}
