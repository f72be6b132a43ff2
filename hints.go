package queues

import (
	"context"
	"time"

	"github.com/queuesgo/queues/driver"
)

// hintSubs holds the worker's wakeup and control hint channels. Hints are
// lossy: a broken listener is resubscribed with backoff and costs latency only.
type hintSubs struct {
	w         *Worker
	wake      <-chan struct{}
	control   <-chan struct{}
	broken    bool
	nextRetry time.Time
	backoff   time.Duration
}

func (w *Worker) subscribe(ctx context.Context) *hintSubs {
	h := &hintSubs{w: w, backoff: 100 * time.Millisecond}
	h.connect(ctx)
	return h
}

func (h *hintSubs) connect(ctx context.Context) {
	ok := true
	if wk, isWaker := h.w.svc.backend.(driver.Waker); isWaker && h.wake == nil {
		ch, err := wk.Wakeups(ctx)
		if err != nil {
			h.w.svc.logger.Warn("Queue wakeup subscription failed", "worker_id", h.w.cfg.ID, "error", err)
			ok = false
		} else {
			h.wake = ch
		}
	}
	if wc, isCtl := h.w.svc.backend.(driver.WorkerController); isCtl && h.control == nil {
		ch, err := wc.WorkerControl(ctx, h.w.cfg.ID)
		if err != nil {
			h.w.svc.logger.Warn("Queue control subscription failed", "worker_id", h.w.cfg.ID, "error", err)
			ok = false
		} else {
			h.control = ch
		}
	}
	if ok {
		h.broken = false
		h.backoff = 100 * time.Millisecond
		return
	}
	h.broken = true
	h.nextRetry = time.Now().Add(h.backoff)
	h.backoff = min(h.backoff*2, 30*time.Second)
}

// resubscribe reconnects broken listeners once their backoff has passed.
func (h *hintSubs) resubscribe(ctx context.Context) {
	if !h.broken || time.Now().Before(h.nextRetry) || ctx.Err() != nil {
		return
	}
	h.w.svc.logger.Info("Queue hint listener reconnecting", "worker_id", h.w.cfg.ID)
	h.connect(ctx)
}
