package queues

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// Worker is the claim loop: it claims due records from the backend and
// starts one attempt per record, keeps the records it holds heartbeated,
// runs its periodic duties (expiry sweep, stale recovery, external
// reconcile) as sweepers beside the loop, and stops through a graceful
// shutdown ladder. A worker of a service whose execution backend is
// external dispatches records to the transport instead of running them.
// Create it with Service.NewWorker and drive it with Run, or with RunOnce
// in tests and custom loops.
type Worker struct {
	svc *Service
	cfg WorkerConfig
	// backoff paces the claim loop and the sweepers after store errors.
	backoff backoffPolicy
	// disp is the claim side of a dispatching worker (the service's
	// execution backend is external), else nil.
	disp *dispatcher
	env  attemptEnv
	hb   *heartbeater
	// reg keeps the worker's entry in the store's registry of live
	// workers while Run runs; nil when the store keeps none.
	reg *registrar
	// runners keeps idle attempt goroutines for reuse (see goRun).
	runners runnerPool
	// bodies holds one token per running task body when Prefetch > 0, so
	// at most MaxConcurrency bodies run while more records are claimed.
	bodies chan struct{}
	// abortSettles stops the settle writes being retried when the shutdown
	// ladder can wait no longer; unwritten lists the records whose write
	// was abandoned then (guarded by mu).
	abortSettles context.CancelFunc
	unwritten    []uuid.UUID

	mu       sync.Mutex
	inFlight map[queuestype.Fence]*attempt // attempts whose task body has not returned
	ended    bool                          // the shutdown ladder ended: new attempts start cancelled
	perQueue map[string]int
	pending  sync.WaitGroup // attempts not yet settled
	slots    sync.WaitGroup // attempts whose body has not returned
	finished chan struct{}  // an attempt freed its slot (buffer 1, coalescing)

	started atomic.Bool // Run was called
	stopped atomic.Bool // the shutdown ladder began
	stop    latch       // a stop was requested: claiming and sweeping end
	force   latch       // a forced stop was requested
	ready   latch       // Run subscribed to hints and started its loop
	runDone chan struct{}
	result  StopResult

	pollMu          sync.Mutex   // serializes RunOnce so capacity is never over-claimed
	lastCancelCheck atomic.Int64 // unix nanoseconds of the last durable cancellation check
}

// latch is a one-way signal: fire closes it (once), done is closed after.
type latch struct {
	once sync.Once
	ch   chan struct{}
}

func (l *latch) fire()                 { l.once.Do(func() { close(l.ch) }) }
func (l *latch) done() <-chan struct{} { return l.ch }

func (l *latch) fired() bool {
	select {
	case <-l.ch:
		return true
	default:
		return false
	}
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
		svc: s, cfg: cfg, backoff: defaultBackoffPolicy(cfg.PollInterval),
		inFlight: map[queuestype.Fence]*attempt{}, perQueue: map[string]int{},
		finished: make(chan struct{}, 1),
		stop:     latch{ch: make(chan struct{})}, force: latch{ch: make(chan struct{})},
		ready: latch{ch: make(chan struct{})}, runDone: make(chan struct{}),
	}
	settleCtx, abortSettles := context.WithCancel(context.Background())
	w.abortSettles = abortSettles
	w.env = attemptEnv{
		workerID: cfg.ID, finalCancel: cfg.FinalCancelTimeout,
		requeueOnShutdown: cfg.RequeueOnShutdown, maxInterruptions: cfg.MaxInterruptions,
		beforeSettle: func(a *attempt) { w.hb.unregister(a) },
		settle: settleHooks{
			abort: settleCtx,
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
	w.disp = newDispatcher(s, cfg, w.stop.done())
	if cfg.Prefetch > 0 && w.disp == nil {
		w.bodies = make(chan struct{}, cfg.MaxConcurrency)
	}
	return w, nil
}

// Dispatcher reports whether the worker dispatches records to an external
// execution backend instead of running them.
func (w *Worker) Dispatcher() bool { return w.disp != nil }

// ID returns the worker's identity.
func (w *Worker) ID() string { return w.cfg.ID }

// Config returns the worker's effective configuration (defaults filled in).
func (w *Worker) Config() WorkerConfig { return w.cfg }

// Ready is closed once Run has subscribed to hints and started its loop.
func (w *Worker) Ready() <-chan struct{} { return w.ready.done() }

// InFlight returns how many attempts occupy a concurrency slot.
func (w *Worker) InFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inFlight)
}

// Run runs the worker loop until ctx ends or Stop is called, then drains
// through the shutdown ladder. It returns nil after a clean stop, an error
// matching ErrEscalated when attempts had to be cancelled, an error matching
// ErrStoreBroken (and wrapping the store's last error) when the store
// reported itself broken on every try for a while (see the README, "When
// the store fails"), or the error that prevented it from starting. A
// worker runs at most once.
func (w *Worker) Run(ctx context.Context) error {
	if w.stopped.Load() || !w.started.CompareAndSwap(false, true) {
		return errors.New("queues: worker already run")
	}
	defer close(w.runDone)

	subCtx, cancelSubs := context.WithCancel(context.Background())
	defer cancelSubs()
	go func() {
		select {
		case <-ctx.Done():
			w.stop.fire()
		case <-w.stop.done():
		case <-subCtx.Done():
		}
	}()
	w.hb.start()
	if w.reg = newRegistrar(w); w.reg != nil {
		w.reg.start()
	}
	hints := w.subscribe(subCtx)
	w.svc.runScheduleSync(ctx, w.cfg.ID)
	sweepers := w.startSweepers(subCtx)
	w.ready.fire()
	w.svc.logger.Info("Queue worker started", "worker_id", w.cfg.ID, "queues", w.cfg.Queues,
		"max_concurrency", w.cfg.MaxConcurrency, "backend", w.svc.backend.Name())

	loopErr := w.loop(subCtx, hints)

	res := w.drain(w.force.fired())
	w.hb.close()
	cancelSubs()
	sweepers.Wait()
	if w.reg != nil {
		w.reg.remove()
	}
	w.result = res
	if loopErr != nil {
		w.svc.logger.Info("Queue worker stopped", "worker_id", w.cfg.ID, "escalated", res.Escalated, "error", loopErr)
		return loopErr
	}
	w.svc.logger.Info("Queue worker stopped", "worker_id", w.cfg.ID, "escalated", res.Escalated)
	if res.Escalated {
		return fmt.Errorf("%w: worker %s cancelled running attempts", ErrEscalated, w.cfg.ID)
	}
	return nil
}

// loop is the claim loop: claim up to the free capacity, start the
// attempts, and wait (adaptively, cut short by hints and freed slots) when
// nothing was due, until a stop is requested. It returns an error matching
// ErrStoreBroken when the store reported itself broken too many times in
// a row, after requesting the stop.
func (w *Worker) loop(ctx context.Context, h *hintSubs) error {
	wait := w.cfg.PollInterval
	bo := storeBackoff{policy: w.backoff}
	for !w.stop.fired() {
		h.resubscribe(ctx)
		w.awaitBatchRoom()
		n, err := w.cycle(ctx)
		if err != nil {
			// A store that does not answer is tried again with capped,
			// jittered backoff, and said once per step of the delay.
			class := driver.Classify(w.svc.backend, err)
			w.svc.noteStoreError(err)
			step := bo.fail(time.Now(), class)
			if step.giveUp {
				// Run returns this error: its caller reports it (the
				// "Queue worker stopped" line carries it too).
				w.stop.fire()
				return fmt.Errorf("%w: %w (worker %s gave up after %d permanent errors in a row)",
					ErrStoreBroken, err, w.cfg.ID, bo.permanent)
			}
			if step.log {
				w.svc.logger.Log(ctx, errorLevel(class), "Queue worker loop error", "worker_id", w.cfg.ID,
					"failures", bo.failures, "error_class", class.String(), "retry_in", step.pause, "error", err)
			}
			wait = w.cfg.PollInterval
			w.sleep(step.pause)
			continue
		}
		w.svc.noteStoreAnswered()
		if failed := bo.succeed(); failed > 0 {
			w.svc.logger.Info("Queue worker loop recovered", "worker_id", w.cfg.ID, "failures", failed)
		}
		if n > 0 {
			wait = w.cfg.PollInterval
			continue
		}
		wait = w.wait(ctx, h, wait)
	}
	return nil
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
		case <-w.stop.done():
			t.Stop()
			return
		case <-t.C:
			return
		}
	}
}

// cycle is one poll of the claim loop. After a store error it first
// writes the heartbeats of the running records: a store that answers again
// gets them before any claim. The periodic duties are sweepers of their own
// (sweeper.go), not steps of the cycle.
func (w *Worker) cycle(ctx context.Context) (int, error) {
	if err := w.hb.catchUp(); err != nil {
		return 0, fmt.Errorf("heartbeat: %w", err)
	}
	return w.RunOnce(ctx)
}

// RunOnce runs one poll cycle: the running-cancellation check,
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
	if w.disp != nil {
		return w.disp.dispatchOnce(ctx)
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
		Limit: available, Queues: w.cfg.Queues, ExecutionBackend: w.svc.cfg.ExecutionBackend,
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

// launch starts the attempt of a claimed record on a runner goroutine.
// Attempts do not derive from Run's ctx: ending it starts a graceful stop,
// it does not cancel running attempts (the shutdown ladder cancels them one
// by one), and a never-cancelled parent keeps each attempt's ctx from
// registering with a shared one.
func (w *Worker) launch(rec *Record) {
	a := w.svc.newAttempt(context.Background(), rec, w.cfg.ID)
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
				if a.ctx.Err() != nil {
					// The slot and the cancellation were both ready and
					// select picked the slot: the record still must not run.
					<-w.bodies
					a.unstarted = true
					break
				}
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
// cancelled elsewhere, at most every CancellationPollInterval
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
		w.svc.noteStoreError(err)
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
	case <-w.stop.done():
	}
}

// wait blocks until a hint, a freed slot, a stop or the adaptive timeout
// and returns the next stored wait.
func (w *Worker) wait(ctx context.Context, h *hintSubs, current time.Duration) time.Duration {
	d, adaptive := w.sampleWait(ctx, current)
	cancelCheck := false
	if w.disp != nil && w.disp.atCapacity.Load() && w.cfg.PollInterval < d {
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
	due := w.svc.dueChanged()
	for {
		select {
		case <-w.stop.done():
			return current
		case <-due:
			// This process enqueued a record due in the future (a
			// schedule's next occurrence), which stores announce to
			// nobody: sample the next due time again.
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
		w.force.fire()
	}
	w.stop.fire()
	if w.started.Load() {
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

// drain is the shutdown ladder: wait GracefulShutdownTimeout for the
// attempts to settle (unless forced), then cancel the rest with cause
// ErrShutdown, give them FinalCancelTimeout (and time for the write) to
// settle, and abandon the settle writes still being retried.
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
		case <-w.force.done():
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
