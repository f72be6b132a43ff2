package queues

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// heartbeater keeps the worker's running records alive with one bulk,
// generation-fenced write per tick, and detects lost claims (SPEC §5.5).
type heartbeater struct {
	w       *Worker
	mu      sync.Mutex
	entries map[uuid.UUID]*hbEntry
	once    sync.Once
	stop    chan struct{}
	done    chan struct{}
	started bool
}

type hbEntry struct {
	a      *attempt
	misses int
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
			h.tick()
			return
		case <-t.C:
			h.tick()
			t.Reset(h.interval())
		}
	}
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

func (h *heartbeater) tick() {
	h.mu.Lock()
	if len(h.entries) == 0 {
		h.mu.Unlock()
		return
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
	res, err := h.w.svc.backend.TouchHeartbeats(ctx, touches)
	if err != nil {
		// A backend failure is not a miss: the claim may be intact.
		h.w.svc.logger.Warn("Queue heartbeat failed", "worker_id", h.w.cfg.ID, "error", err)
		return
	}
	touched := make(map[uuid.UUID]bool, len(res.Touched))
	for _, id := range res.Touched {
		touched[id] = true
	}
	var lost []*attempt
	h.mu.Lock()
	for _, id := range res.Missed {
		e, ok := h.entries[id]
		if !ok || touched[id] {
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
		h.w.svc.claimLost(ctx, a, "heartbeat")
		if !h.w.cfg.KeepRunningOnClaimLoss {
			a.cancel(ErrClaimLost)
		}
	}
}
