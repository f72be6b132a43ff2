package queues

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/queuestype"
)

// Worker claims due records from the backend and runs them as goroutines,
// with heartbeats, cancellation, stale recovery, expiry sweeps and a graceful
// shutdown ladder (SPEC §5). Create it with Service.NewWorker and drive it
// with Run, or with RunOnce in tests and custom loops.
type Worker struct {
	svc         *Service
	cfg         WorkerConfig
	execBackend string
	// exec is the external transport when this worker is a dispatcher (the
	// service's execution backend is external), else nil.
	exec execution.Transport
	env  attemptEnv
	hb   *heartbeater

	// baseCtx parents every attempt: ending Run's ctx starts a graceful stop,
	// it does not cancel running attempts. It is never cancelled itself (so
	// an attempt's ctx does not register with a shared parent); the shutdown
	// ladder cancels attempts one by one.
	baseCtx context.Context
	// runners keeps idle attempt goroutines for reuse (see goRun).
	runners runnerPool
	// bodies holds one token per running task body when Prefetch > 0, so
	// at most MaxConcurrency bodies run while more records are claimed.
	bodies chan struct{}
	// settleCtx ends when the shutdown ladder stops waiting for settle
	// writes being retried (abortSettles); unwritten lists the records
	// whose write was abandoned then (guarded by mu).
	settleCtx    context.Context
	abortSettles context.CancelFunc
	unwritten    []uuid.UUID

	mu       sync.Mutex
	inFlight map[queuestype.Fence]*attempt // attempts whose task body has not returned
	ended    bool                          // the shutdown ladder ended: new attempts start cancelled
	perQueue map[string]int
	pending  sync.WaitGroup // attempts not yet settled
	slots    sync.WaitGroup // attempts whose body has not returned
	finished chan struct{}  // an attempt freed its slot (buffer 1, coalescing)

	runMu     sync.Mutex
	running   bool
	stopCh    chan struct{}
	stopOnce  sync.Once
	forceCh   chan struct{}
	forceOnce sync.Once
	runDone   chan struct{}
	result    StopResult
	ready     chan struct{}
	readyOnce sync.Once
	stopped   atomic.Bool

	pollMu          sync.Mutex   // serializes RunOnce so capacity is never over-claimed
	lastCancelCheck atomic.Int64 // unix nanoseconds of the last durable cancellation check
	nextStale       time.Time
	nextExpiry      time.Time
	nextReconcile   time.Time
	// atCapacity is set when the last dispatch cycle found no free capacity
	// (the transport's own executions fill it); the wait is then bounded by
	// PollInterval because freed capacity sends no hint.
	atCapacity atomic.Bool
}

// StopResult reports how a worker stopped.
type StopResult struct {
	// Escalated is true when attempts had to be cancelled (drain timeout or force).
	Escalated bool
}

// NewWorker returns a worker on this service's backend and registry. Zero
// fields of cfg take the documented defaults (ID "worker-<pid>", BatchSize 10,
// MaxConcurrency 1, ...).
func (s *Service) NewWorker(cfg WorkerConfig) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Worker{
		svc: s, cfg: cfg, execBackend: s.cfg.ExecutionBackend,
		baseCtx:  context.Background(),
		inFlight: map[queuestype.Fence]*attempt{}, perQueue: map[string]int{},
		finished: make(chan struct{}, 1),
		stopCh:   make(chan struct{}), forceCh: make(chan struct{}),
		runDone: make(chan struct{}), ready: make(chan struct{}),
	}
	w.settleCtx, w.abortSettles = context.WithCancel(context.Background())
	w.env = attemptEnv{
		workerID: cfg.ID, finalCancel: cfg.FinalCancelTimeout,
		requeueOnShutdown: cfg.RequeueOnShutdown, maxInterruptions: cfg.MaxInterruptions,
		beforeSettle: func(a *attempt) { w.hb.unregister(a) },
		settle: settleHooks{
			abort: w.settleCtx,
			retrying: func(a *attempt) {
				a.retryingSettle.Store(true)
				w.hb.registerSettling(a)
			},
			ended: func(a *attempt, written bool) {
				w.hb.unregister(a)
				a.retryingSettle.Store(false)
				if !written {
					w.mu.Lock()
					w.unwritten = append(w.unwritten, a.rec.ID)
					w.mu.Unlock()
				}
			},
		},
	}
	w.hb = newHeartbeater(w)
	w.exec = s.executors[w.execBackend]
	if cfg.Prefetch > 0 && w.exec == nil {
		w.bodies = make(chan struct{}, cfg.MaxConcurrency)
	}
	return w, nil
}

// Dispatcher reports whether the worker dispatches records to an external
// execution backend instead of running them (SPEC §5.2).
func (w *Worker) Dispatcher() bool { return w.exec != nil }

// ID returns the worker's identity.
func (w *Worker) ID() string { return w.cfg.ID }

// Config returns the worker's effective configuration (defaults filled in).
func (w *Worker) Config() WorkerConfig { return w.cfg }

// Ready is closed once Run has subscribed to hints and started its loop.
func (w *Worker) Ready() <-chan struct{} { return w.ready }

// InFlight returns how many attempts occupy a concurrency slot.
func (w *Worker) InFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inFlight)
}

// Run runs the worker loop until ctx ends or Stop is called, then drains
// through the shutdown ladder. It returns nil after a clean stop, an error
// matching ErrEscalated when attempts had to be cancelled, or the error that
// prevented it from starting. A worker runs at most once.
func (w *Worker) Run(ctx context.Context) error {
	w.runMu.Lock()
	if w.running || w.stopped.Load() {
		w.runMu.Unlock()
		return errors.New("queues: worker already run")
	}
	w.running = true
	w.runMu.Unlock()
	defer close(w.runDone)

	subCtx, cancelSubs := context.WithCancel(context.Background())
	defer cancelSubs()
	go func() {
		select {
		case <-ctx.Done():
			w.requestStop()
		case <-w.stopCh:
		case <-subCtx.Done():
		}
	}()
	w.hb.start()
	hints := w.subscribe(subCtx)
	w.readyOnce.Do(func() { close(w.ready) })
	w.svc.logger.Info("Queue worker started", "worker_id", w.cfg.ID, "queues", w.cfg.Queues,
		"max_concurrency", w.cfg.MaxConcurrency, "backend", w.svc.backend.Name())

	w.loop(subCtx, hints)

	res := w.drain(w.isForced())
	w.hb.close()
	cancelSubs()
	w.result = res
	w.svc.logger.Info("Queue worker stopped", "worker_id", w.cfg.ID, "escalated", res.Escalated)
	if res.Escalated {
		return fmt.Errorf("%w: worker %s cancelled running attempts", ErrEscalated, w.cfg.ID)
	}
	return nil
}

func (w *Worker) requestStop() { w.stopOnce.Do(func() { close(w.stopCh) }) }

func (w *Worker) isForced() bool {
	select {
	case <-w.forceCh:
		return true
	default:
		return false
	}
}

func (w *Worker) stopping() bool {
	select {
	case <-w.stopCh:
		return true
	default:
		return false
	}
}

// loop is the poll loop of SPEC §5.1.
func (w *Worker) loop(ctx context.Context, h *hintSubs) {
	wait := w.cfg.PollInterval
	for !w.stopping() {
		h.resubscribe(ctx)
		w.awaitBatchRoom()
		n, err := w.cycle(ctx)
		if err != nil {
			w.svc.noteStoreError()
			w.svc.logger.Error("Queue worker loop error", "worker_id", w.cfg.ID, "error", err)
			wait = w.cfg.PollInterval
			w.sleep(min(max(w.cfg.PollInterval, 10*time.Millisecond), time.Second))
			continue
		}
		if n > 0 {
			wait = w.cfg.PollInterval
			continue
		}
		wait = w.wait(ctx, h, wait)
	}
}

// claimCooldown bounds how long a nearly saturated worker lets slots
// accumulate before claiming again.
const claimCooldown = 2 * time.Millisecond

// claimCapacity is how many records this worker may hold claimed at once:
// MaxConcurrency running plus Prefetch waiting for a slot.
func (w *Worker) claimCapacity() int {
	if w.bodies == nil {
		return w.cfg.MaxConcurrency
	}
	return w.cfg.MaxConcurrency + w.cfg.Prefetch
}

// awaitBatchRoom keeps a saturated worker from claiming one record per
// finished attempt: while attempts run and fewer than half a batch of slots
// are free, it waits up to claimCooldown for more attempts to finish, so each
// claim round trip carries a useful batch.
func (w *Worker) awaitBatchRoom() {
	want := max(1, min(w.cfg.BatchSize, w.claimCapacity())/2)
	deadline := time.Now().Add(claimCooldown)
	for {
		inFlight := w.InFlight()
		if inFlight == 0 || w.claimCapacity()-inFlight >= want {
			return
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return
		}
		t := time.NewTimer(remaining)
		select {
		case <-w.finished:
			t.Stop()
		case <-w.stopCh:
			t.Stop()
			return
		case <-t.C:
			return
		}
	}
}

// cycle runs the due periodic duties, then one poll. After a store error
// it first writes the heartbeats of the running records: a store that
// answers again gets them before any claim or sweep.
func (w *Worker) cycle(ctx context.Context) (int, error) {
	if err := w.hb.catchUp(); err != nil {
		return 0, fmt.Errorf("heartbeat: %w", err)
	}
	now := time.Now()
	if w.cfg.ExpiryCheckInterval > 0 && !now.Before(w.nextExpiry) {
		w.nextExpiry = now.Add(w.cfg.ExpiryCheckInterval)
		if w.acquireFleetLock(ctx, "expiry_sweep", w.cfg.ExpiryCheckInterval) {
			if _, err := w.svc.expireOverdue(ctx, w.cfg.BatchSize*10, w.cfg.ID); err != nil {
				return 0, fmt.Errorf("expiry sweep: %w", err)
			}
		}
	}
	if w.cfg.StaleAfter > 0 && !now.Before(w.nextStale) {
		w.nextStale = now.Add(w.cfg.StaleCheckInterval)
		// While this process could not reach the store, neither could the
		// workers whose heartbeats look old now: an outage is not a crash.
		// Recover nothing until the store has answered for one StaleAfter,
		// so live workers have heartbeated again.
		if quietFrom := w.svc.lastStoreError().Add(w.cfg.StaleAfter); now.Before(quietFrom) {
			w.nextStale = quietFrom
		} else if w.acquireFleetLock(ctx, "stale_recovery", w.cfg.StaleCheckInterval) {
			if _, err := w.svc.recoverStale(ctx, StaleOptions{StaleAfter: w.cfg.StaleAfter, Limit: w.cfg.BatchSize * 10}, w.cfg.ID); err != nil {
				return 0, fmt.Errorf("stale recovery: %w", err)
			}
		}
	}
	if w.exec != nil && !now.Before(w.nextReconcile) {
		w.nextReconcile = now.Add(w.cfg.ReconcileInterval)
		if w.acquireFleetLock(ctx, "external_reconcile", w.cfg.ReconcileInterval) {
			if _, err := w.svc.reconcileExternal(ctx, w.cfg.BatchSize, w.cfg.ID); err != nil {
				return 0, fmt.Errorf("external reconcile: %w", err)
			}
		}
	}
	return w.RunOnce(ctx)
}

// acquireFleetLock takes the named fleet lock with a fresh token so one
// worker of the fleet runs the sweep; it is never released and expires by TTL.
// Without a Locker the sweep runs unlocked (fences keep it correct).
func (w *Worker) acquireFleetLock(ctx context.Context, name string, interval time.Duration) bool {
	l, ok := w.svc.backend.(driver.Locker)
	if !ok {
		return true
	}
	var b [16]byte
	_, _ = crand.Read(b[:])
	got, err := l.AcquireLock(ctx, w.svc.cfg.Namespace+":"+name, hex.EncodeToString(b[:]), max(interval, time.Second))
	if err != nil {
		w.svc.noteStoreError()
		w.svc.logger.Warn("Queue fleet lock failed", "lock", name, "error", err)
		return false
	}
	return got
}

// RunOnce runs one poll cycle (SPEC §5.2): the running-cancellation check,
// then claims up to the free capacity and starts each claimed record. It
// returns how many records it started; it does not wait for them (see Wait).
//
// A dispatcher (the service's execution backend is external) instead lists
// up to the free capacity of due records of that backend and dispatches each
// one that holds no execution ref and is not expired; it returns how many
// were dispatched. A failed dispatch is logged (the transport publishes its
// own warnings) and does not fail the cycle.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	if w.stopped.Load() {
		return 0, errors.New("queues: worker stopped")
	}
	w.pollMu.Lock()
	defer w.pollMu.Unlock()
	if w.exec != nil {
		return w.dispatchOnce(ctx)
	}
	w.reconcileCancellations(ctx, false)
	w.mu.Lock()
	available := min(w.cfg.BatchSize, w.claimCapacity()-len(w.inFlight))
	var limits map[string]int
	if len(w.cfg.QueueConcurrency) > 0 {
		limits = make(map[string]int, len(w.cfg.QueueConcurrency))
		for q, c := range w.cfg.QueueConcurrency {
			limits[q] = max(0, c-w.perQueue[q])
		}
	}
	w.mu.Unlock()
	if available <= 0 {
		return 0, nil
	}
	res, err := w.svc.backend.ClaimMany(ctx, driver.ClaimParams{
		Limit: available, Queues: w.cfg.Queues, ExecutionBackend: w.execBackend,
		QueueLimits: limits, WorkerID: w.cfg.ID, ExpireOverdue: true,
	})
	if err != nil {
		return 0, fmt.Errorf("claim: %w", err)
	}
	w.svc.publishExpired(ctx, res.Expired, w.cfg.ID)
	for _, rec := range res.Claimed {
		w.launch(rec)
	}
	return len(res.Claimed), nil
}

// dispatchOnce is the poll cycle of a dispatcher (SPEC §5.2).
func (w *Worker) dispatchOnce(ctx context.Context) (int, error) {
	available := w.dispatchCapacity()
	if available <= 0 {
		w.atCapacity.Store(true)
		return 0, nil
	}
	w.atCapacity.Store(false)
	recs, err := w.listDispatchable(ctx, available)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rec := range recs {
		if ctx.Err() != nil || w.stopping() {
			break
		}
		out, err := w.exec.Dispatch(ctx, w.svc.host, rec)
		switch {
		case out.Status == execution.DispatchStatusDispatched:
			n++
			w.svc.logger.Debug("Queue task dispatched", "worker_id", w.cfg.ID, "task_id", rec.ID, "task_name", rec.TaskName,
				"execution_backend", w.execBackend, "execution_ref", out.Ref)
		case err != nil:
			w.svc.logger.Warn("Queue task dispatch failed", "worker_id", w.cfg.ID, "task_id", rec.ID, "task_name", rec.TaskName,
				"execution_backend", w.execBackend, "dispatch_status", string(out.Status), "error", err)
		}
		if out.Status == execution.DispatchStatusSkipped && w.dispatchCapacity() <= 0 {
			w.atCapacity.Store(true)
			break
		}
	}
	return n, nil
}

// maxDispatchScan bounds how many pending records one dispatch cycle reads
// to find records without an execution ref.
const maxDispatchScan = 1000

// listDispatchable lists up to limit due records of the worker's execution
// backend that hold no execution ref and are not expired, in claim order.
// ListPending also returns records already dispatched (holding a finalized
// ref, waiting for their execution to claim them), so the window grows
// until it holds limit dispatchable records, the store has no more, or
// maxDispatchScan records were read.
func (w *Worker) listDispatchable(ctx context.Context, limit int) ([]*Record, error) {
	window := limit
	if f, ok := w.exec.(execution.InFlighter); ok {
		window += f.InFlight() // launched executions that have not claimed yet
	}
	window = min(window, max(maxDispatchScan, limit))
	for {
		recs, err := w.svc.backend.ListPending(ctx, driver.ListPendingParams{Limit: window, Queues: w.cfg.Queues, ExecutionBackend: w.execBackend})
		if err != nil {
			return nil, fmt.Errorf("list pending: %w", err)
		}
		now := time.Now()
		out := make([]*Record, 0, limit)
		for _, rec := range recs {
			if rec.ExecutionRef == "" && !rec.IsExpired(now) {
				out = append(out, rec)
				if len(out) == limit {
					return out, nil
				}
			}
		}
		if len(recs) < window || window >= maxDispatchScan {
			return out, nil
		}
		window = min(window*4, maxDispatchScan)
	}
}

// dispatchCapacity is how many records a dispatcher may dispatch now:
// BatchSize, bounded by MaxConcurrency minus the transport's in-flight
// executions (InFlighter) and by the transport's own limit (CapacityLimiter).
func (w *Worker) dispatchCapacity() int {
	inFlight := w.InFlight()
	if f, ok := w.exec.(execution.InFlighter); ok {
		inFlight += f.InFlight()
	}
	available := min(w.cfg.BatchSize, w.cfg.MaxConcurrency-inFlight)
	if l, ok := w.exec.(execution.CapacityLimiter); ok {
		transport := 0
		if f, ok := w.exec.(execution.InFlighter); ok {
			transport = f.InFlight()
		}
		available = min(available, l.MaxInFlight()-transport)
	}
	return available
}

func (w *Worker) launch(rec *Record) {
	a := w.svc.newAttempt(w.baseCtx, rec, w.cfg.ID)
	w.mu.Lock()
	w.inFlight[a.fence()] = a
	w.perQueue[rec.Queue]++
	if w.ended {
		a.cancel(context.Canceled) // launched after the shutdown ladder ended
	}
	w.mu.Unlock()
	w.hb.ensureStarted()
	w.hb.register(a)
	w.pending.Add(1)
	w.slots.Add(1)
	a.settledCh = make(chan struct{})
	a.settled = sync.OnceFunc(func() {
		close(a.settledCh)
		w.pending.Done()
	})
	w.goRun(func() {
		if w.bodies != nil {
			// A prefetched record waits for a body slot; if its ctx ends
			// first (cancelled, shutdown), run settles it unrun.
			select {
			case w.bodies <- struct{}{}:
				// The slot is freed as soon as the body returns: the settle
				// write then overlaps the next body, and the record still
				// counts against MaxConcurrency+Prefetch until it is settled.
				a.bodyReturned = sync.OnceFunc(func() { <-w.bodies })
			case <-a.ctx.Done():
				a.unstarted = true
			}
		}
		a.run(w.env)
		if a.bodyReturned != nil {
			<-a.bodyDone // an abandoned body keeps its slot until it returns
			a.bodyReturned()
		}
		a.settled() // run's early returns (unknown task, ended before start)
		<-a.bodyDone
		w.mu.Lock()
		delete(w.inFlight, a.fence())
		w.perQueue[rec.Queue]--
		if w.perQueue[rec.Queue] <= 0 {
			delete(w.perQueue, rec.Queue)
		}
		w.mu.Unlock()
		w.slots.Done()
		select {
		case w.finished <- struct{}{}:
		default:
		}
	})
}

// runnerIdle is how long an idle attempt goroutine is kept for reuse.
const runnerIdle = 5 * time.Second

// runnerPool keeps idle attempt goroutines for reuse. Reuse keeps the
// stacks they grew (settle writes run deep inside the database driver),
// which a fresh goroutine per attempt would grow again. Idle runners form a
// LIFO stack, each waiting on a channel of its own, so handing over work
// never contends on one shared channel; runners idle longer than
// runnerIdle are let go as new work arrives.
type runnerPool struct {
	mu     sync.Mutex
	idle   []*runner // most recently idle last
	closed bool      // the worker stopped: runners exit after their work
}

type runner struct {
	work      chan func() // buffer 1; nil func means exit
	idleSince time.Time
}

// goRun runs fn on an idle attempt goroutine, or on a new one. Idle
// runners are let go by the shutdown ladder (Stop, or Run's end); a worker
// driven only by RunOnce and never stopped keeps up to MaxConcurrency of
// them parked.
func (w *Worker) goRun(fn func()) {
	p := &w.runners
	p.mu.Lock()
	var r *runner
	if n := len(p.idle); n > 0 {
		r = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
	}
	var stale *runner
	if len(p.idle) > 0 && time.Since(p.idle[0].idleSince) > runnerIdle {
		stale = p.idle[0]
		p.idle = append(p.idle[:0], p.idle[1:]...)
	}
	p.mu.Unlock()
	if stale != nil {
		stale.work <- nil
	}
	if r != nil {
		r.work <- fn
		return
	}
	r = &runner{work: make(chan func(), 1)}
	go w.runLoop(r, fn)
}

func (w *Worker) runLoop(r *runner, fn func()) {
	p := &w.runners
	for fn != nil {
		fn()
		r.idleSince = time.Now()
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.idle = append(p.idle, r)
		p.mu.Unlock()
		fn = <-r.work
	}
}

// releaseRunners lets every idle attempt goroutine exit.
func (w *Worker) releaseRunners() {
	p := &w.runners
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, r := range idle {
		r.work <- nil
	}
}

// Wait blocks until every started attempt has finished, or ctx ends.
func (w *Worker) Wait(ctx context.Context) error {
	return waitGroup(ctx, &w.slots)
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reconcileCancellations cancels attempts whose records were durably
// cancelled elsewhere (SPEC §5.11), at most every CancellationPollInterval
// unless forced by a control hint.
func (w *Worker) reconcileCancellations(ctx context.Context, force bool) {
	if !force && time.Since(time.Unix(0, w.lastCancelCheck.Load())) < w.cfg.CancellationPollInterval {
		return
	}
	w.mu.Lock()
	byID := make(map[queuestype.Fence]*attempt, len(w.inFlight))
	for f, a := range w.inFlight {
		if a.ctx.Err() == nil {
			byID[f] = a
		}
	}
	w.mu.Unlock()
	if len(byID) == 0 {
		return
	}
	w.lastCancelCheck.Store(time.Now().UnixNano())
	ids := make([]queuestype.Fence, 0, len(byID))
	for f := range byID {
		ids = append(ids, f)
	}
	recs, err := w.svc.backend.GetTasks(ctx, fenceIDs(ids))
	if err != nil {
		w.svc.noteStoreError()
		w.svc.logger.Warn("Queue cancellation check failed", "worker_id", w.cfg.ID, "error", err)
		return
	}
	for _, rec := range recs {
		if rec.Status != StatusCancelled {
			continue
		}
		if a := byID[queuestype.Fence{ID: rec.ID, RetryCount: rec.RetryCount}]; a != nil {
			a.cancel(ErrCancelled)
			w.svc.logger.Info("Queue running attempt cancelled", "task_id", rec.ID, "task_name", rec.TaskName, "worker_id", w.cfg.ID)
		}
	}
}

// sleep pauses for d or until a stop is requested.
func (w *Worker) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.stopCh:
	}
}

// wait blocks until a hint, a freed slot, a stop or the adaptive timeout
// (SPEC §5.4) and returns the next stored wait.
func (w *Worker) wait(ctx context.Context, h *hintSubs, current time.Duration) time.Duration {
	d, adaptive := w.sampleWait(ctx, current)
	cancelCheck := false
	if w.atCapacity.Load() && w.cfg.PollInterval < d {
		// A dispatcher at capacity: freed transport capacity sends no hint.
		d, cancelCheck = w.cfg.PollInterval, true
	}
	if w.InFlight() > 0 {
		if until := w.cfg.CancellationPollInterval - time.Since(time.Unix(0, w.lastCancelCheck.Load())); until < d {
			d, cancelCheck = max(until, time.Millisecond), true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-w.stopCh:
			return current
		case _, ok := <-h.wake:
			if !ok {
				h.wake = nil
				h.broken = true
				return w.cfg.PollInterval
			}
			return w.cfg.PollInterval
		case _, ok := <-h.control:
			if !ok {
				h.control = nil
				h.broken = true
				continue
			}
			w.reconcileCancellations(ctx, true)
		case <-w.finished:
			return current
		case <-t.C:
			if cancelCheck || !adaptive {
				return current
			}
			return min(max(time.Duration(float64(current)*w.cfg.PollBackoffMultiplier), w.cfg.PollInterval), w.cfg.PollBackoffMax)
		}
	}
}

// sampleWait jitters the stored wait and clamps it to the next due record.
// adaptive is false when backoff is off (fixed interval).
func (w *Worker) sampleWait(ctx context.Context, current time.Duration) (time.Duration, bool) {
	if w.cfg.PollBackoffMax < 0 {
		return w.cfg.PollInterval, false
	}
	d := current
	if j := w.cfg.PollJitter; j > 0 {
		d = time.Duration(float64(current) + float64(current)*j*(rand.Float64()*2-1))
	}
	d = min(max(d, w.cfg.PollInterval), w.cfg.PollBackoffMax)
	if dt, ok := w.svc.backend.(driver.DueTimer); ok {
		if next, found, err := dt.NextDue(ctx, w.cfg.Queues); err == nil && found {
			if until := time.Until(next); until < d {
				d = max(until, time.Millisecond)
			}
		}
	}
	return d, true
}

// Stop stops the worker: a graceful stop (force false) stops claiming and
// waits up to GracefulShutdownTimeout for attempts, then cancels the rest with
// cause ErrShutdown; a forced stop cancels at once. It returns when the worker
// has stopped or ctx ends. It also drains attempts started with RunOnce.
func (w *Worker) Stop(ctx context.Context, force bool) (StopResult, error) {
	if force {
		w.forceOnce.Do(func() { close(w.forceCh) })
	}
	w.requestStop()
	w.runMu.Lock()
	running := w.running
	w.runMu.Unlock()
	if running {
		select {
		case <-w.runDone:
			return w.result, nil
		case <-ctx.Done():
			return StopResult{}, ctx.Err()
		}
	}
	if w.stopped.Load() {
		return w.result, nil
	}
	res := w.drain(force)
	w.hb.close()
	w.result = res
	return res, nil
}

// drain is the shutdown ladder (SPEC §5.12).
func (w *Worker) drain(force bool) StopResult {
	w.stopped.Store(true)
	defer w.releaseRunners()
	defer w.cancelInFlight()
	if !force {
		done := make(chan struct{})
		go func() { w.pending.Wait(); close(done) }()
		t := time.NewTimer(w.cfg.GracefulShutdownTimeout)
		select {
		case <-done:
			t.Stop()
			return StopResult{}
		case <-t.C:
		case <-w.forceCh:
			t.Stop()
		}
	}
	w.mu.Lock()
	var remaining []*attempt
	for _, a := range w.inFlight {
		remaining = append(remaining, a)
	}
	w.mu.Unlock()
	if len(remaining) == 0 {
		return StopResult{}
	}
	// Attempts already retrying their settle write had the drain timeout
	// to land it: they are not waited for again.
	var cancelled []*attempt
	for _, a := range remaining {
		if !a.retryingSettle.Load() {
			cancelled = append(cancelled, a)
		}
		a.cancel(ErrShutdown)
	}
	// Each attempt settles within FinalCancelTimeout of its cancellation (an
	// attempt that ignores it is abandoned then); allow time for the write.
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.FinalCancelTimeout+5*time.Second)
	defer cancel()
	for _, a := range cancelled {
		select {
		case <-a.settledCh:
		case <-ctx.Done():
		}
	}
	w.abandonSettles()
	var survivors []string
	for _, a := range remaining {
		select {
		case <-a.bodyDone:
		default:
			survivors = append(survivors, a.rec.ID.String())
		}
	}
	if len(survivors) > 0 {
		w.svc.logger.Error("Queue worker stopped with attempts still running", "worker_id", w.cfg.ID, "task_ids", survivors)
	}
	return StopResult{Escalated: true}
}

// abandonSettles stops the settle writes still being retried when the
// shutdown ladder can wait no longer, and logs how many records it could
// not write (they stay running until stale recovery takes them).
func (w *Worker) abandonSettles() {
	w.abortSettles()
	// The retry loops return at once; a try in flight ends with its context.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = waitGroup(ctx, &w.pending)
	w.mu.Lock()
	ids := w.unwritten
	w.unwritten = nil
	w.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	const shown = 20
	list := make([]string, 0, min(len(ids), shown))
	for _, id := range ids[:min(len(ids), shown)] {
		list = append(list, id.String())
	}
	w.svc.logger.Error("Queue worker stopped with settle writes it could not write; stale recovery will take the records",
		"worker_id", w.cfg.ID, "unwritten", len(ids), "task_ids", list)
}

// cancelInFlight cancels whatever attempt is still in flight when the
// shutdown ladder ends (context.Canceled), as ending a shared parent would.
func (w *Worker) cancelInFlight() {
	w.mu.Lock()
	w.ended = true
	remaining := make([]*attempt, 0, len(w.inFlight))
	for _, a := range w.inFlight {
		remaining = append(remaining, a)
	}
	w.mu.Unlock()
	for _, a := range remaining {
		a.cancel(context.Canceled)
	}
}

func fenceIDs(fs []queuestype.Fence) []uuid.UUID {
	ids := make([]uuid.UUID, len(fs))
	for i, f := range fs {
		ids[i] = f.ID
	}
	return ids
}
