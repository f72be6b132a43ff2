package sqlite

import (
	"context"

	"github.com/queuesgo/queues/driver"
)

// wake sends one coalescing wakeup hint to every subscriber.
func (b *Backend) wake() { b.wakes.Notify("") }

// hasWakeSubscribers reports whether anyone listens for wakeups.
func (b *Backend) hasWakeSubscribers() bool { return b.wakes.Has("") }

var _ driver.Waker = (*Backend)(nil)

// Wakeups returns a new hint channel (buffer 1, coalescing) that receives a
// value whenever a record becomes claimable now through this backend (an
// enqueue of a due record, one hint per call; a retry or stale requeue
// without delay; an interruption; a Settle call that requeued a record
// without delay (one hint per call); ClearExecutionRef, SetExecutionBackend and
// ReleaseDispatch), and whenever another process committed to the file
// (PRAGMA data_version changed, polled every Options.PollInterval while
// someone subscribes). The channel is closed when ctx ends or the backend is
// closed.
func (b *Backend) Wakeups(ctx context.Context) (<-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	ch, err := b.wakes.Subscribe(ctx, "")
	if err != nil {
		return nil, err
	}
	w.kickPoll()
	return ch, nil
}

var _ driver.WorkerController = (*Backend)(nil)

// NotifyWorkerControl sends a coalescing control hint to every WorkerControl
// subscription of workerID in this process. Control hints do not cross
// processes; workers elsewhere notice cancellations by their durable poll.
func (b *Backend) NotifyWorkerControl(ctx context.Context, workerID string) error {
	return b.controls.Send(ctx, workerID)
}

// WorkerControl returns a new control-hint channel (buffer 1, coalescing) for
// workerID. It is closed when ctx ends or the backend is closed.
func (b *Backend) WorkerControl(ctx context.Context, workerID string) (<-chan struct{}, error) {
	return b.controls.Subscribe(ctx, workerID)
}
