package queues_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
)

// Stale recovery runs on its own ticker: a record a hung worker holds is
// recovered while this worker's claim loop is parked at capacity, waiting
// an hour for a hint or a free slot.
func TestSweepersRunWhileTheClaimLoopWaits(t *testing.T) {
	ctx := context.Background()
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	reg := queues.NewRegistry()
	blocker := queues.MustRegister(reg, "sw.block", func(ctx context.Context, _ empty) (empty, error) {
		started <- struct{}{}
		return untilReleased(ctx, release)
	})
	hung := queues.MustRegister(reg, "sw.hung", func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil },
		queues.TaskOptions{Retries: 1})
	svc := quietService(t, reg)

	// Another worker claims the record, then never heartbeats it.
	res, err := hung.Enqueue(ctx, svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	claim, err := svc.Backend().ClaimMany(ctx, driver.ClaimParams{Limit: 1, WorkerID: "hung"})
	if err != nil || len(claim.Claimed) != 1 || claim.Claimed[0].ID != res.ID {
		t.Fatalf("hung claim: %+v %v", claim, err)
	}
	busy, err := blocker.Enqueue(ctx, svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	w := runWorker(t, svc, queues.WorkerConfig{ID: "busy", MaxConcurrency: 1,
		// The claim loop sleeps an hour between polls once it is at capacity.
		PollInterval: time.Hour, PollBackoffMax: -1, CancellationPollInterval: time.Hour,
		HeartbeatInterval: 50 * time.Millisecond, StaleAfter: 300 * time.Millisecond, StaleCheckInterval: 50 * time.Millisecond})
	<-started
	waitFor(t, 10*time.Second, "stale recovery of the hung worker's record", func() bool {
		rec, err := svc.GetTask(ctx, res.ID)
		return err == nil && rec.RetryCount == 1 && rec.Status != queues.StatusRunning
	})
	if n := w.InFlight(); n != 1 {
		t.Fatalf("in flight %d, want the blocker alone", n)
	}
	if rec, err := svc.GetTask(ctx, busy.ID); err != nil || rec.Status != queues.StatusRunning || rec.WorkerID != "busy" {
		t.Fatalf("blocker %+v %v", rec, err)
	}
	close(release)
	waitFor(t, 10*time.Second, "the blocker to complete", func() bool {
		rec, err := svc.GetTask(ctx, busy.ID)
		return err == nil && rec.Status == queues.StatusCompleted
	})
}

// failingExpiry is a store whose expiry sweep always fails. It offers no
// optional capability (no fleet lock, no hints), so every sweep calls it.
type failingExpiry struct {
	driver.Backend
	calls atomic.Int32
}

func (f *failingExpiry) ExpireOverdue(ctx context.Context, limit int) ([]*queues.Record, error) {
	f.calls.Add(1)
	return nil, errors.New("expiry unavailable")
}

// countMessages counts the log records carrying one message.
type countMessages struct {
	msg string
	n   *atomic.Int32
}

func (h countMessages) Enabled(context.Context, slog.Level) bool { return true }
func (h countMessages) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countMessages) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countMessages) WithGroup(string) slog.Handler      { return h }

// A sweep that keeps failing does not stop claiming, and its failures are
// logged with backoff, not once per sweep.
func TestSweepErrorsDoNotStopClaiming(t *testing.T) {
	ctx := context.Background()
	store := &failingExpiry{Backend: memory.New(memory.Options{})}
	var logged atomic.Int32
	var runs atomic.Int32
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "sw.work", func(ctx context.Context, _ empty) (empty, error) {
		runs.Add(1)
		return empty{}, nil
	})
	svc := quietService(t, reg, func(c *queues.Config) {
		c.Backend = store
		c.Logger = slog.New(countMessages{msg: "Queue sweep failed", n: &logged})
	})
	runWorker(t, svc, queues.WorkerConfig{PollInterval: 5 * time.Millisecond, PollBackoffMax: 20 * time.Millisecond,
		ExpiryCheckInterval: 5 * time.Millisecond, StaleAfter: -1})
	waitFor(t, 10*time.Second, "two failed expiry sweeps", func() bool { return store.calls.Load() >= 2 })
	const n = 5
	for range n {
		if _, err := task.Enqueue(ctx, svc, empty{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the tasks to run", func() bool { return runs.Load() == n })
	waitFor(t, 10*time.Second, "a fourth failed expiry sweep", func() bool { return store.calls.Load() >= 4 })
	// The sweeps back off past their 5 ms interval, so each of these
	// failures lengthened the delay and may be said; which ones are is
	// TestStoreBackoffSteps's subject.
	if l, c := logged.Load(), store.calls.Load(); l < 1 || l > c {
		t.Fatalf("%d sweep failures logged for %d failed sweeps; want the first, then one per longer delay", l, c)
	}
}

// failingClaims is a store whose claims fail the way an unreachable server's do.
type failingClaims struct {
	driver.Backend
	calls atomic.Int32
}

func (f *failingClaims) ClaimMany(ctx context.Context, p driver.ClaimParams) (driver.ClaimResult, error) {
	f.calls.Add(1)
	return driver.ClaimResult{}, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
}

// A claim loop whose store keeps failing backs off: it does not try (and
// log) every poll interval, but waits longer after each failure (the log
// lines are TestWorkerWaitsOutTransientClaimErrors's subject).
func TestClaimLoopBacksOffWhileTheStoreFails(t *testing.T) {
	store := &failingClaims{Backend: memory.New(memory.Options{})}
	var logged atomic.Int32
	svc := quietService(t, queues.NewRegistry(), func(c *queues.Config) {
		c.Backend = store
		c.Logger = slog.New(countMessages{msg: "Queue worker loop error", n: &logged})
	})
	runWorker(t, svc, queues.WorkerConfig{PollInterval: 5 * time.Millisecond, StaleAfter: -1, ExpiryCheckInterval: -1})
	waitFor(t, 10*time.Second, "four failed claims", func() bool { return store.calls.Load() >= 4 })
	start := time.Now()
	before := store.calls.Load()
	waitFor(t, 20*time.Second, "three more failed claims", func() bool { return store.calls.Load() >= before+3 })
	// At the 5 ms poll interval three more tries would take 15 ms; with the
	// backoff (10 ms doubling, each pause at least half its step) the
	// pauses after the fourth, fifth and sixth failures take 280 ms at least.
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("three failed claims after the fourth took %v; the loop does not back off", took)
	}
	if l, c := logged.Load(), store.calls.Load(); l < 1 || l > c {
		t.Fatalf("%d loop errors logged for %d failed claims; want the first, then one per longer delay", l, c)
	}
}
