package queues

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// heartbeater keeps the worker's running records alive with one bulk,
// generation-fenced write per tick, and detects lost claims.
type heartbeater struct {
	w       *Worker
	mu      sync.Mutex
	entries map[uuid.UUID]*hbEntry
	once    sync.Once
	stop    chan struct{}
	done    chan struct{}
	started bool

	// tickMu serializes ticks: the timer's, and the worker loop's catch-up
	// tick after a store error.
	tickMu sync.Mutex
	// failures counts consecutive ticks the store did not answer (tickMu).
	failures int
	// okAt is when a touch last succeeded, in Unix nanoseconds.
	okAt atomic.Int64
}

type hbEntry struct {
	a      *attempt
	misses int
	// settling marks an attempt whose settle write is being retried: its
	// record is kept alive, and a missed touch is not counted (the write
	// may have landed; the retry loop reads the record to find out).
	settling bool
}

func newHeartbeater(w *Worker) *heartbeater {
	return &heartbeater{w: w, entries: map[uuid.UUID]*hbEntry{}, stop: make(chan struct{}), done: make(chan struct{})}
}

func (h *heartbeater) start() { h.ensureStarted() }

func (h *heartbeater) ensureStarted() {
	h.once.Do(func() {
		h.mu.Lock()
		h.started = true
		h.mu.Unlock()
		go h.run()
	})
}

func (h *heartbeater) register(a *attempt) {
	h.mu.Lock()
	h.entries[a.rec.ID] = &hbEntry{a: a}
	h.mu.Unlock()
}

// registerSettling heartbeats a's record again while its settle write is retried.
func (h *heartbeater) registerSettling(a *attempt) {
	h.mu.Lock()
	h.entries[a.rec.ID] = &hbEntry{a: a, settling: true}
	h.mu.Unlock()
}

func (h *heartbeater) unregister(a *attempt) {
	h.mu.Lock()
	if e, ok := h.entries[a.rec.ID]; ok && e.a == a {
		delete(h.entries, a.rec.ID)
	}
	h.mu.Unlock()
}

func (h *heartbeater) interval() time.Duration {
	cfg := h.w.cfg
	return time.Duration(float64(cfg.HeartbeatInterval) * (1 + rand.Float64()*cfg.HeartbeatJitterFraction))
}

func (h *heartbeater) run() {
	defer close(h.done)
	t := time.NewTimer(h.interval())
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			_ = h.tick()
			return
		case <-t.C:
			next := h.interval()
			if err := h.tick(); err != nil {
				// The store did not answer: try again soon (backing off),
				// so heartbeats resume as soon as it is back.
				h.tickMu.Lock()
				next = min(next, backoffDelay(h.failures))
				h.tickMu.Unlock()
			}
			t.Reset(next)
		}
	}
}

// catchUp writes the heartbeats now when a store call failed since the last
// touch that succeeded: a worker coming back from an outage heartbeats its
// running records before it claims more. It returns the touch's error.
func (h *heartbeater) catchUp() error {
	if errAt := h.w.svc.storeErrAt.Load(); errAt == 0 || errAt < h.okAt.Load() {
		return nil
	}
	h.mu.Lock()
	n := len(h.entries)
	h.mu.Unlock()
	if n == 0 {
		return nil
	}
	return h.tick()
}

// close stops the ticker after one final tick and forgets every attempt.
func (h *heartbeater) close() {
	h.mu.Lock()
	started := h.started
	h.mu.Unlock()
	select {
	case <-h.stop:
		return
	default:
	}
	close(h.stop)
	if started {
		<-h.done
	}
	h.mu.Lock()
	h.entries = map[uuid.UUID]*hbEntry{}
	h.mu.Unlock()
}

// tick writes one bulk heartbeat. A store error is returned, not counted
// as a miss: the claim may be intact, and the next tick tries again.
func (h *heartbeater) tick() error {
	h.tickMu.Lock()
	defer h.tickMu.Unlock()
	h.mu.Lock()
	if len(h.entries) == 0 {
		h.mu.Unlock()
		return nil
	}
	touches := make([]driver.HeartbeatTouch, 0, len(h.entries))
	sentBeats := make(map[uuid.UUID]*string, len(h.entries))
	for id, e := range h.entries {
		gen := e.a.rec.RetryCount
		t := driver.HeartbeatTouch{ID: id, ExpectedRetryCount: &gen}
		if b := e.a.beat.Load(); b != nil {
			t.MetadataPatch = map[string]any{queuestype.MetaProgressDetail: *b}
			sentBeats[id] = b
		}
		touches = append(touches, t)
	}
	h.mu.Unlock()

	ctx := context.Background()
	tctx, cancel := context.WithTimeout(ctx, max(h.w.cfg.HeartbeatInterval, 5*time.Second))
	started := time.Now()
	res, err := h.w.svc.backend.TouchHeartbeats(tctx, touches)
	cancel()
	if err != nil {
		h.w.svc.noteStoreError(err)
		h.failures++
		if h.failures == 1 || h.failures%settleLogEvery == 0 {
			h.w.svc.logger.Warn("Queue heartbeat failed", "worker_id", h.w.cfg.ID, "failures", h.failures, "error", err)
		}
		return err
	}
	h.w.svc.noteStoreAnswered()
	if h.failures > 0 {
		h.w.svc.logger.Info("Queue heartbeat recovered", "worker_id", h.w.cfg.ID, "failures", h.failures)
		h.failures = 0
	}
	h.okAt.Store(started.UnixNano())
	touched := make(map[uuid.UUID]bool, len(res.Touched))
	for _, id := range res.Touched {
		touched[id] = true
	}
	var lost []*attempt
	h.mu.Lock()
	for _, id := range res.Missed {
		e, ok := h.entries[id]
		if !ok || touched[id] || e.settling {
			continue
		}
		e.misses++
		if e.misses >= h.w.cfg.HeartbeatMissThreshold {
			delete(h.entries, id)
			lost = append(lost, e.a)
		}
	}
	for id := range touched {
		if e, ok := h.entries[id]; ok {
			e.misses = 0
			if b := sentBeats[id]; b != nil {
				e.a.beat.CompareAndSwap(b, nil)
			}
		}
	}
	h.mu.Unlock()
	for _, a := range lost {
		a.claimLost(ctx, "heartbeat")
		if !h.w.cfg.KeepRunningOnClaimLoss {
			a.cancel(ErrClaimLost)
		}
	}
	return nil
}
