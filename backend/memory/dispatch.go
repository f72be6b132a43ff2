package memory

import (
	"context"
	"slices"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// write runs fn on the stored record under the mutex. fn returns whether its
// guard held and whether workers should be woken; a guard that does not hold
// yields an error matching queuestype.ErrFenceLost, a missing ID one that also
// matches queuestype.ErrTaskNotFound.
func (b *Backend) write(ctx context.Context, op string, id uuid.UUID, fn func(e *entry) (ok, wake bool)) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	e := b.records[id]
	if e == nil {
		b.mu.Unlock()
		return nil, driver.MissingForWrite(op, id)
	}
	ok, wake := fn(e)
	if !ok {
		b.mu.Unlock()
		return nil, driver.FenceLost(op, id)
	}
	out := e.clone()
	b.mu.Unlock()
	if wake {
		b.wake()
	}
	return out, nil
}

// isDueOpen reports whether r is pending/scheduled and due at the backend's now.
func (b *Backend) isDueOpen(r *queuestype.Record) bool {
	return isOpen(r.Status) && r.IsDue(b.now())
}

// ReserveDispatch sets execution_ref to p.Marker on a pending/scheduled record
// that is due, unexpired and holds no ref, fenced on the optional generation.
// A reservation-marked record is neither claimed nor expired until released
// or finalized.
func (b *Backend) ReserveDispatch(ctx context.Context, p driver.ReserveDispatchParams) (*queuestype.Record, error) {
	if err := driver.CheckReserve(p); err != nil {
		return nil, err
	}
	return b.write(ctx, "reserve dispatch", p.ID, func(e *entry) (bool, bool) {
		r := &e.rec
		now := b.now()
		if !isOpen(r.Status) || !r.IsDue(now) || r.IsExpired(now) || r.ExecutionRef != "" ||
			(p.ExpectedRetryCount != nil && *p.ExpectedRetryCount != r.RetryCount) {
			return false, false
		}
		r.ExecutionRef, r.DispatchUntil = p.Marker, p.Until.UTC()
		b.sync(e, now)
		return true, false
	})
}

// ReleaseDispatch clears execution_ref when it equals p.Marker. A non-empty
// p.ExecutionBackend re-routes the record to that backend and profile. Workers
// are woken when the record is claimable again.
func (b *Backend) ReleaseDispatch(ctx context.Context, p driver.ReleaseDispatchParams) (*queuestype.Record, error) {
	return b.write(ctx, "release dispatch", p.ID, func(e *entry) (bool, bool) {
		r := &e.rec
		if r.ExecutionRef == "" || r.ExecutionRef != p.Marker {
			return false, false
		}
		r.ExecutionRef, r.DispatchUntil = "", time.Time{}
		if p.ExecutionBackend != "" {
			r.ExecutionBackend = p.ExecutionBackend
			r.ExecutionProfile = p.ExecutionProfile
		}
		b.sync(e, b.now())
		return true, b.isDueOpen(r)
	})
}

// FinalizeDispatch replaces the reservation marker p.Marker with the
// provider's p.Ref while the record is still pending or scheduled.
func (b *Backend) FinalizeDispatch(ctx context.Context, p driver.FinalizeDispatchParams) (*queuestype.Record, error) {
	return b.write(ctx, "finalize dispatch", p.ID, func(e *entry) (bool, bool) {
		r := &e.rec
		if !isOpen(r.Status) || r.ExecutionRef == "" || r.ExecutionRef != p.Marker {
			return false, false
		}
		r.ExecutionRef, r.DispatchUntil = p.Ref, time.Time{}
		b.sync(e, b.now())
		return true, false
	})
}

// SetExecutionRef stores ref on a non-terminal record, whatever it held before.
func (b *Backend) SetExecutionRef(ctx context.Context, id uuid.UUID, ref string) (*queuestype.Record, error) {
	return b.write(ctx, "set execution ref", id, func(e *entry) (bool, bool) {
		if e.rec.IsTerminal() {
			return false, false
		}
		e.rec.ExecutionRef, e.rec.DispatchUntil = ref, time.Time{}
		b.sync(e, b.now())
		return true, false
	})
}

// ClearExecutionRef clears execution_ref on a pending/scheduled record of
// generation gen that holds ref, and wakes workers when it is due.
func (b *Backend) ClearExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref string) (*queuestype.Record, error) {
	return b.write(ctx, "clear execution ref", id, func(e *entry) (bool, bool) {
		r := &e.rec
		if !isOpen(r.Status) || r.RetryCount != gen || r.ExecutionRef != ref {
			return false, false
		}
		r.ExecutionRef, r.DispatchUntil = "", time.Time{}
		b.sync(e, b.now())
		return true, b.isDueOpen(r)
	})
}

// ReplaceExecutionRef swaps ref for newRef on a non-terminal record of
// generation gen that holds ref.
func (b *Backend) ReplaceExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref, newRef string) (*queuestype.Record, error) {
	return b.write(ctx, "replace execution ref", id, func(e *entry) (bool, bool) {
		r := &e.rec
		if r.IsTerminal() || r.RetryCount != gen || r.ExecutionRef != ref {
			return false, false
		}
		r.ExecutionRef, r.DispatchUntil = newRef, time.Time{}
		b.sync(e, b.now())
		return true, false
	})
}

// SetExecutionBackend re-routes a pending/scheduled record to backend and
// profile, clears its execution_ref, and wakes workers when it is due.
func (b *Backend) SetExecutionBackend(ctx context.Context, id uuid.UUID, backend, profile string) (*queuestype.Record, error) {
	return b.write(ctx, "set execution backend", id, func(e *entry) (bool, bool) {
		r := &e.rec
		if !isOpen(r.Status) {
			return false, false
		}
		r.ExecutionBackend = backend
		r.ExecutionProfile = profile
		r.ExecutionRef, r.DispatchUntil = "", time.Time{}
		b.sync(e, b.now())
		return true, b.isDueOpen(r)
	})
}

// ListRunningExternal lists up to limit non-terminal records holding an
// execution_ref, ordered by coalesce(started_at, created_at), then id.
// limit ≤ 0 returns nothing.
func (b *Backend) ListRunningExternal(ctx context.Context, limit int) ([]*queuestype.Record, error) {
	if empty, done, err := driver.NoItems[*queuestype.Record](ctx, limit); done {
		return empty, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	list := make([]*entry, 0, len(b.withRef))
	for _, e := range b.withRef {
		list = append(list, e)
	}
	slices.SortFunc(list, func(x, y *entry) int {
		tx, ty := coalesce(x.rec.StartedAt, x.rec.CreatedAt), coalesce(y.rec.StartedAt, y.rec.CreatedAt)
		if c := tx.Compare(ty); c != 0 {
			return c
		}
		return driver.CompareID(x.rec.ID, y.rec.ID)
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
