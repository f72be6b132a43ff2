package queueshttp_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
)

// healthBody is the answer of GET /api/scheduler-health.
type healthBody struct {
	Healthy         bool       `json:"healthy"`
	Canary          string     `json:"canary"`
	LastCompletedAt *time.Time `json:"last_completed_at"`
	Minutes         int        `json:"minutes"`
	Since           time.Time  `json:"since"`
}

func (f *fixture) schedulerHealth(query string, status int) healthBody {
	f.t.Helper()
	r := f.do("GET", "/q/api/scheduler-health"+query, "")
	if r.status != status {
		f.t.Fatalf("scheduler-health%s: status %d, want %d; body %s", query, r.status, status, r.raw)
	}
	var h healthBody
	if err := json.Unmarshal(r.raw, &h); err != nil {
		f.t.Fatalf("scheduler-health%s: %v: %s", query, err, r.raw)
	}
	if h.Canary != queues.SchedulerCanaryTask {
		f.t.Fatalf("scheduler-health%s: canary %q; body %s", query, h.Canary, r.raw)
	}
	return h
}

// TestSchedulerHealthRoute: without a completion the route answers 503
// healthy=false with a null last_completed_at; a canary completion ten
// minutes ago (by the store's clock) is stale for the default five-minute
// window and healthy for fifteen minutes; bad windows answer 400.
func TestSchedulerHealthRoute(t *testing.T) {
	var behind atomic.Int64 // how far the store's clock is behind the process's
	m := memory.New(memory.Options{Now: func() time.Time { return time.Now().Add(-time.Duration(behind.Load())) }})
	f := newFixture(t, fixtureConfig{backend: m, inApp: true, register: func(r *queues.Registry) {
		queues.MustRegister(r, queues.SchedulerCanaryTask, func(context.Context, struct{}) (struct{}, error) {
			return struct{}{}, nil
		})
	}})

	start := time.Now()
	h := f.schedulerHealth("", 503)
	if h.Healthy || h.LastCompletedAt != nil || h.Minutes != 5 || h.Since.Sub(start.Add(-5*time.Minute)).Abs() > 5*time.Second {
		t.Fatalf("no completion: %+v", h)
	}

	behind.Store(int64(10 * time.Minute))
	res, err := f.svc.EnqueueRaw(t.Context(), queues.SchedulerCanaryTask, nil, queues.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rec, err := res.Wait(ctx)
	if err != nil || rec.Status != queues.StatusCompleted {
		t.Fatalf("the canary did not complete: %+v, %v", rec, err)
	}
	behind.Store(0)

	if h := f.schedulerHealth("", 503); h.Healthy || h.LastCompletedAt != nil {
		t.Fatalf("a completion ten minutes ago, five-minute window: %+v", h)
	}
	h = f.schedulerHealth("?minutes=15", 200)
	if !h.Healthy || h.Minutes != 15 || h.LastCompletedAt == nil || !h.LastCompletedAt.Equal(rec.CompletedAt) {
		t.Fatalf("fifteen-minute window: %+v; want healthy, last completed at %v", h, rec.CompletedAt)
	}
	for _, bad := range []string{"0", "-1", "abc", "1.5", "527041", "99999999999999999999"} {
		f.expectError("GET", "/q/api/scheduler-health?minutes="+bad, "", 400, "invalid_minutes")
	}
}

// TestSchedulerHealthNotRegistered: a service whose registry lacks the
// canary answers 404 not_registered.
func TestSchedulerHealthNotRegistered(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	f.expectError("GET", "/q/api/scheduler-health", "", 404, "not_registered")
}
