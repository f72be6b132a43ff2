package memory

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
)

var _ driver.CompletionWaiter = (*Backend)(nil)

// WaitForCompletion blocks until the record is terminal (or deleted), and
// returns nil; it returns at once when the record is already terminal or
// missing. It returns ctx.Err() when ctx ends first.
func (b *Backend) WaitForCompletion(ctx context.Context, id uuid.UUID) error {
	b.mu.Lock()
	e := b.records[id]
	if e == nil || e.rec.IsTerminal() {
		b.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	e.waiters = append(e.waiters, ch)
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		if i := slices.Index(e.waiters, ch); i >= 0 {
			e.waiters = slices.Delete(e.waiters, i, i+1)
		}
		b.mu.Unlock()
		return ctx.Err()
	}
}

var _ driver.Locker = (*Backend)(nil)

// AcquireLock takes the named lock for token until now+ttl. It succeeds when
// the lock is free, expired, or already held by token (which refreshes the
// expiry). ttl must be positive.
func (b *Backend) AcquireLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	if err := driver.CheckLockArgs(ctx, ttl, token); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if l, ok := b.locks[name]; ok && l.token != token && l.expires.After(now) {
		return false, nil
	}
	b.locks[name] = lock{token: token, expires: now.Add(ttl)}
	return true, nil
}

// ReleaseLock releases the named lock if token holds it (and it has not
// expired into someone else's hands); it reports whether it did.
func (b *Backend) ReleaseLock(ctx context.Context, name, token string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.locks[name]
	if !ok || l.token != token {
		return false, nil
	}
	delete(b.locks, name)
	return true, nil
}

// wake sends one coalescing wakeup hint to every subscriber.
func (b *Backend) wake() { b.wakes.Notify("") }

var _ driver.Waker = (*Backend)(nil)

// Wakeups returns a new hint channel (buffer 1, coalescing) that receives a
// value whenever a record becomes claimable now: an enqueue of a due record
// (one hint per call), a Settle call that requeued a record due now (a
// retry or stale requeue without delay, or a shutdown interruption; one
// hint per call), ClearExecutionRef, SetExecutionBackend and ReleaseDispatch.
// The channel is closed when ctx ends or the backend is closed.
func (b *Backend) Wakeups(ctx context.Context) (<-chan struct{}, error) {
	return b.wakes.Subscribe(ctx, "")
}

var _ driver.WorkerController = (*Backend)(nil)

// NotifyWorkerControl sends a coalescing control hint to every
// WorkerControl subscription of workerID.
func (b *Backend) NotifyWorkerControl(ctx context.Context, workerID string) error {
	return b.controls.Send(ctx, workerID)
}

// WorkerControl returns a new control-hint channel (buffer 1, coalescing) for
// workerID. It is closed when ctx ends or the backend is closed.
func (b *Backend) WorkerControl(ctx context.Context, workerID string) (<-chan struct{}, error) {
	return b.controls.Subscribe(ctx, workerID)
}
