package backendtest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
)

func testSvcCancellation(t *testing.T, f Factory) {
	// Through the service only the winner gets true and one task.cancelled.
	t.Run("OnlyWinnerCancels", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "c.win", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ok, err := env.svc.Cancel(context.Background(), res.ID, queues.CancelOptions{Reason: "user asked"}); ok && err == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d winners, want 1", wins.Load())
		}
		types := env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeCancelled) })
		if countType(types, events.TypeCancelled) != 1 {
			t.Fatalf("events %v", types)
		}
		if ev := env.eventsOf(res.ID, events.TypeCancelled)[0]; ev.Message != "user asked" {
			t.Fatalf("message %q", ev.Message)
		}
	})

	// CancelMatching through the service: one event per record, hints to running owners.
	t.Run("CancelMatchingPublishes", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		var task *queues.Task[userArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "c.bulk", func(ctx context.Context, _ userArgs) (none, error) {
				select {
				case <-ctx.Done():
					return none{}, ctx.Err()
				case <-release:
					return none{}, nil
				}
			})
		})
		defer close(release)
		ctx := context.Background()
		running, _ := task.Enqueue(ctx, env.svc, userArgs{User: "ann"})
		w := env.worker(queues.WorkerConfig{ID: "bulk-worker", CancellationPollInterval: 30 * time.Second})
		env.waitStatus(running.ID, queues.StatusRunning)
		p1, _ := task.Enqueue(ctx, env.svc, userArgs{User: "ann", Page: 2})
		other, _ := task.Enqueue(ctx, env.svc, userArgs{User: "bob"})
		_ = w
		sum, err := env.svc.CancelMatching(ctx, queues.CancelFilter{TaskName: "c.bulk", Args: map[string]any{"user": "ann"}, IncludeRunning: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Cancelled) != 2 {
			t.Fatalf("cancelled %v", sum.Cancelled)
		}
		env.waitEvents(p1.ID, func(ts []string) bool { return countType(ts, events.TypeCancelled) == 1 })
		env.waitEvents(running.ID, func(ts []string) bool { return countType(ts, events.TypeCancelled) == 1 })
		if rec, _ := env.svc.GetTask(ctx, other.ID); rec.Status != queues.StatusPending && rec.Status != queues.StatusRunning {
			t.Fatalf("non-matching record %s", rec.Status)
		}
		if _, ok := env.b.(driver.WorkerController); ok {
			// The control hint reaches the worker long before its 30s durable poll.
			if !svcEventually(5*time.Second, func() bool { return w.InFlight() == 0 || onlyOther(w) }) {
				t.Fatal("running attempt was not cancelled through the control hint")
			}
		}
	})

	// A cross-instance Cancel(IncludeRunning) reaches a saturated worker through the control hint.
	t.Run("ControlHintReachesWorker", func(t *testing.T) {
		t.Parallel()
		b := f.New(t)
		if _, ok := b.(driver.WorkerController); !ok {
			t.Skip("backend has no WorkerController")
		}
		cause := make(chan error, 1)
		var task *queues.Task[noArgs, none]
		register := func(r *queues.Registry) {
			task = queues.MustRegister(r, "c.hint", func(ctx context.Context, _ noArgs) (none, error) {
				<-ctx.Done()
				cause <- context.Cause(ctx)
				return none{}, ctx.Err()
			})
		}
		workerSide := newSvcOn(t, b, register)
		canceller := newSvcOn(t, b, register)
		res, _ := task.Enqueue(context.Background(), canceller.svc, noArgs{})
		workerSide.worker(queues.WorkerConfig{ID: "saturated", MaxConcurrency: 1, CancellationPollInterval: 30 * time.Second,
			PollInterval: 30 * time.Second, PollBackoffMax: 30 * time.Second})
		workerSide.waitStatus(res.ID, queues.StatusRunning)
		start := time.Now()
		if ok, err := canceller.svc.Cancel(context.Background(), res.ID, queues.CancelOptions{IncludeRunning: true}); !ok || err != nil {
			t.Fatalf("cancel = %v, %v", ok, err)
		}
		select {
		case c := <-cause:
			if !errors.Is(c, queues.ErrCancelled) {
				t.Fatalf("cause %v, want ErrCancelled", c)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("cancellation took %v", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("attempt never saw the cancellation")
		}
		if rec := workerSide.waitStatus(res.ID, queues.StatusCancelled); rec.Status != queues.StatusCancelled {
			t.Fatal("record not cancelled")
		}
	})

	// With hints off, a 100ms durable poll still cancels the running attempt.
	t.Run("DurablePollCancels", func(t *testing.T) {
		t.Parallel()
		cause := make(chan error, 1)
		var task *queues.Task[noArgs, none]
		env := newSvcOn(t, plain{f.New(t)}, func(r *queues.Registry) {
			task = queues.MustRegister(r, "c.poll", func(ctx context.Context, _ noArgs) (none, error) {
				<-ctx.Done()
				cause <- context.Cause(ctx)
				return none{}, ctx.Err()
			})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		env.worker(queues.WorkerConfig{CancellationPollInterval: 100 * time.Millisecond, PollInterval: 5 * time.Second, PollBackoffMax: 5 * time.Second})
		env.waitStatus(res.ID, queues.StatusRunning)
		if ok, _ := env.svc.Cancel(context.Background(), res.ID, queues.CancelOptions{IncludeRunning: true}); !ok {
			t.Fatal("cancel lost")
		}
		select {
		case c := <-cause:
			if !errors.Is(c, queues.ErrCancelled) {
				t.Fatalf("cause %v", c)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("durable poll never cancelled the attempt")
		}
	})

	// A task that returns Cancelled(reason) cancels its record durably, no retry.
	t.Run("CooperativeCancel", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "c.self", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, queues.Cancelled("nothing to do")
			}, queues.TaskOptions{Retries: 3})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		env.worker(queues.WorkerConfig{})
		rec := env.waitStatus(res.ID, queues.StatusCancelled)
		if rec.RetryCount != 0 {
			t.Fatalf("retry_count %d", rec.RetryCount)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeCancelled) })
		if ev := env.eventsOf(res.ID, events.TypeCancelled)[0]; ev.Message != "nothing to do" {
			t.Fatalf("message %q", ev.Message)
		}
	})
}

func onlyOther(w *queues.Worker) bool { return w.InFlight() <= 1 }

// plain hides every optional interface of a backend (no hints, no locks).
type plain struct{ driver.Backend }
