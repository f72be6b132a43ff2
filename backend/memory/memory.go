// Package memory is the in-process queue backend: task records, identity
// reservations, locks and hints live in maps under one mutex inside the
// current process.
//
// It is meant for tests and for single-process programs that do not need
// durability: records are lost when the process exits and are invisible to
// other processes (Capabilities.ProcessLocal is true), so external execution
// backends and `run-task` consumers cannot use it.
//
// Every write is a compare-and-set under the mutex, allowed only from the
// statuses the method names (a claim from pending or scheduled, a settle
// from running, and so on): a guard that does not hold changes nothing and
// returns an error matching queuestype.ErrFenceLost. Records returned by any
// method are deep copies; callers may keep and modify them.
//
// The store holds no task policy. The outcome of a claimed record (completed,
// retried, failed, cancelled, interrupted by a shutdown) is written by Settle
// as a transition the caller already decided, retry delay and priority
// included; stale recovery is ListStale, which only lists candidates,
// followed by Settle with a StaleAfter fence. The record's retry budget,
// backoff and stale-requeue policy are stored and returned, never read.
//
// Claims do not scan the store: due records are kept in heaps in claim order,
// partitioned per (execution backend, queue), and records scheduled for later
// wait in per-partition heaps ordered by due time until a claim, ListPending
// or NextDue promotes them. Statistics are maintained as counters.
package memory

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/internal/hub"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// Options configure a memory backend. The zero value is ready to use.
type Options struct {
	// Now is the backend clock; nil means time.Now. Every stored time is
	// converted to UTC.
	Now func() time.Time
}

// Backend is the in-process queue backend. Create it with New; it is safe for
// concurrent use. It implements driver.Backend and the optional interfaces
// driver.Waker, driver.WorkerController, driver.DueTimer,
// driver.CompletionWaiter, driver.Locker, driver.Inspector,
// driver.WorkerRegistry, driver.BacklogCounter and driver.SchedulePauser.
type Backend struct {
	nowFn func() time.Time

	mu           sync.Mutex
	records      map[uuid.UUID]*entry
	byKey        map[string]*entry               // record holding each identity key
	byTag        map[string]map[uuid.UUID]*entry // records carrying each tag, for ListTasks
	reservations map[string]queuestype.Reservation
	parts        map[partKey]*partition
	partList     []*partition // every partition, for iteration without map order
	terminal     [4]entryHeap // terminal records by completed_at, id; one heap per status (terminalSlot)
	running      map[uuid.UUID]*entry
	withRef      map[uuid.UUID]*entry // non-terminal records holding an execution_ref
	stats        map[string]*queuestype.Statistics
	locks        map[string]lock
	scratch      []*partition
	workers      map[string]workerEntry          // the registry of live workers (workers.go)
	pauses       map[string]driver.SchedulePause // paused schedules by name (schedules.go)

	wakes    hub.Hub // wakeup hints, key ""
	controls hub.Hub // worker-control hints, keyed by worker ID

	closed atomic.Bool // Close was called and Open was not called since (Ping reports it)
}

type lock struct {
	token   string
	expires time.Time
}

// Compile-time check of the contract; each optional interface is checked
// next to its methods.
var _ driver.Backend = (*Backend)(nil)

// New returns an empty memory backend.
func New(opts Options) *Backend {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Backend{
		nowFn:        now,
		records:      make(map[uuid.UUID]*entry),
		byKey:        make(map[string]*entry),
		byTag:        make(map[string]map[uuid.UUID]*entry),
		reservations: make(map[string]queuestype.Reservation),
		parts:        make(map[partKey]*partition),
		terminal:     [4]entryHeap{{kind: kTerminal}, {kind: kTerminal}, {kind: kTerminal}, {kind: kTerminal}},
		running:      make(map[uuid.UUID]*entry),
		withRef:      make(map[uuid.UUID]*entry),
		stats:        make(map[string]*queuestype.Statistics),
		locks:        make(map[string]lock),
	}
}

// Name returns "memory".
func (b *Backend) Name() string { return "memory" }

// Open does nothing; a memory backend is ready when created. It is idempotent.
func (b *Backend) Open(ctx context.Context) error {
	b.closed.Store(false)
	return nil
}

// Close closes every wakeup and worker-control subscription. Records are kept,
// so the backend may be opened and used again.
func (b *Backend) Close(ctx context.Context) error {
	b.closed.Store(true)
	b.wakes.Close()
	b.controls.Close()
	return nil
}

// Capabilities reports in-process wakeups, control hints and completion
// events, maintenance locks, and that records are local to this process.
func (b *Backend) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		WakeupTransport:  "memory",
		ControlTransport: "memory",
		CompletionEvents: true,
		Maintenance:      true,
		ProcessLocal:     true,
	}
}

// now reads the backend clock in UTC (which also drops the monotonic reading).
func (b *Backend) now() time.Time { return b.nowFn().UTC() }

func isOpen(s queuestype.Status) bool {
	return s == queuestype.StatusPending || s == queuestype.StatusScheduled
}

// partFor returns (creating it if needed) the partition of backend and queue.
func (b *Backend) partFor(backend, queue string) *partition {
	k := partKey{backend: backend, queue: queue}
	p := b.parts[k]
	if p == nil {
		p = newPartition(k)
		b.parts[k] = p
		b.partList = append(b.partList, p)
	}
	return p
}

// sync brings every index, counter and membership set in line with e.rec
// after a change, and wakes completion waiters when the record became terminal.
// Call it after every mutation of a stored record, with the mutex held.
func (b *Backend) sync(e *entry, now time.Time) {
	r := &e.rec
	if e.cQueue != r.Queue || e.cStatus != r.Status {
		if e.cStatus != "" {
			b.stats[e.cQueue].Add(e.cStatus, -1)
		}
		st := b.stats[r.Queue]
		if st == nil {
			st = &queuestype.Statistics{}
			b.stats[r.Queue] = st
		}
		st.Add(r.Status, 1)
		e.cQueue, e.cStatus = r.Queue, r.Status
	}
	if run := r.Status == queuestype.StatusRunning; run != e.inRun {
		if run {
			b.running[r.ID] = e
		} else {
			delete(b.running, r.ID)
		}
		e.inRun = run
	}
	if ref := r.ExecutionRef != "" && !r.Status.IsTerminal(); ref != e.inRefSet {
		if ref {
			b.withRef[r.ID] = e
		} else {
			delete(b.withRef, r.ID)
		}
		e.inRefSet = ref
	}
	b.reindex(e, now)
	if r.Status.IsTerminal() && e.idx[kTerminal] < 0 {
		b.terminal[terminalSlot(r.Status)].push(e)
		for _, ch := range e.waiters {
			close(ch)
		}
		e.waiters = nil
	}
}

// reindex places e in the partition heaps its state calls for:
//   - ready: pending/scheduled, not reservation-marked, due, not expired;
//   - future: pending/scheduled, not reservation-marked, due later;
//   - expiry: pending/scheduled, no execution_ref, with a deadline.
//
// A due record whose deadline passed stays out of ready (only the expiry
// sweep or ClaimByID on a finalized ref can move it).
func (b *Backend) reindex(e *entry, now time.Time) {
	r := &e.rec
	var want [kTerminal]bool
	if isOpen(r.Status) {
		if r.DispatchUntil.IsZero() {
			switch {
			case r.ScheduledAt.After(now):
				want[kFuture] = true
			case !r.IsExpired(now):
				want[kReady] = true
			}
		}
		want[kExpiry] = r.ExecutionRef == "" && !r.ExpiresAt.IsZero()
	}
	var part *partition
	if want[kReady] || want[kFuture] || want[kExpiry] {
		part = e.part
		if part == nil || part.key.backend != r.ExecutionBackend || part.key.queue != r.Queue {
			part = b.partFor(r.ExecutionBackend, r.Queue)
		}
	}
	for k := kReady; k < kTerminal; k++ {
		in := e.idx[k] >= 0
		if in && (!want[k] || part != e.part) {
			e.part.heap(k).remove(e)
			in = false
		}
		if want[k] && !in {
			part.heap(k).push(e)
		} else if want[k] {
			// An ordering field may have changed; restore heap order.
			h := part.heap(k)
			if i := e.idx[k]; !h.down(i) {
				h.up(i)
			}
		}
	}
	if part != nil {
		e.part = part
	} else if e.idx[kReady] < 0 && e.idx[kFuture] < 0 && e.idx[kExpiry] < 0 {
		e.part = nil
	}
}

// promote moves every record of the given partitions whose scheduled_at has
// arrived from the future heap into the ready heap (or out of the way when
// its deadline already passed).
func (b *Backend) promote(parts []*partition, now time.Time) {
	for _, p := range parts {
		for {
			e := p.future.peek()
			if e == nil || e.rec.ScheduledAt.After(now) {
				break
			}
			b.reindex(e, now)
		}
	}
}

// matchParts returns the partitions for a queue filter (empty = all) and an
// execution-backend filter ("" = any), reusing a scratch slice.
func (b *Backend) matchParts(queueNames []string, backend string) []*partition {
	out := b.scratch[:0]
	for _, p := range b.partList {
		if backend != "" && p.key.backend != backend {
			continue
		}
		if len(queueNames) > 0 && !contains(queueNames, p.key.queue) {
			continue
		}
		out = append(out, p)
	}
	b.scratch = out
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// clone returns a caller-owned copy of e's record.
func (e *entry) clone() *queuestype.Record { return e.rec.Clone() }
