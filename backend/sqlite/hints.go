package sqlite

import (
	"context"
)

// wake sends one coalescing wakeup hint to every subscriber.
func (b *Backend) wake() {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	for ch := range b.wakeSubs {
		select {
		case ch <- struct{}{}:
		default: // a hint is already pending: coalesce
		}
	}
}

// hasWakeSubscribers reports whether anyone listens for wakeups.
func (b *Backend) hasWakeSubscribers() bool {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	return len(b.wakeSubs) > 0
}

// Wakeups returns a new hint channel (buffer 1, coalescing) that receives a
// value whenever a record becomes claimable now through this backend (an
// enqueue of a due record, one hint per call; a retry or stale requeue
// without delay; an interruption; ClearExecutionRef, SetExecutionBackend and
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
	ch := make(chan struct{}, 1)
	b.subMu.Lock()
	b.wakeSubs[ch] = struct{}{}
	b.subMu.Unlock()
	w.kickPoll()
	context.AfterFunc(ctx, func() {
		b.subMu.Lock()
		defer b.subMu.Unlock()
		if _, ok := b.wakeSubs[ch]; ok {
			delete(b.wakeSubs, ch)
			close(ch)
		}
	})
	return ch, nil
}

// NotifyWorkerControl sends a coalescing control hint to every WorkerControl
// subscription of workerID in this process. Control hints do not cross
// processes; workers elsewhere notice cancellations by their durable poll.
func (b *Backend) NotifyWorkerControl(ctx context.Context, workerID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	for ch := range b.ctlSubs[workerID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return nil
}

// WorkerControl returns a new control-hint channel (buffer 1, coalescing) for
// workerID. It is closed when ctx ends or the backend is closed.
func (b *Backend) WorkerControl(ctx context.Context, workerID string) (<-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := make(chan struct{}, 1)
	b.subMu.Lock()
	m := b.ctlSubs[workerID]
	if m == nil {
		m = make(map[chan struct{}]struct{})
		b.ctlSubs[workerID] = m
	}
	m[ch] = struct{}{}
	b.subMu.Unlock()
	context.AfterFunc(ctx, func() {
		b.subMu.Lock()
		defer b.subMu.Unlock()
		m := b.ctlSubs[workerID]
		if _, ok := m[ch]; ok {
			delete(m, ch)
			if len(m) == 0 {
				delete(b.ctlSubs, workerID)
			}
			close(ch)
		}
	})
	return ch, nil
}
