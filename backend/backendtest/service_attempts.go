package backendtest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
)

// attemptsOf returns the attempt numbers of id's events of typ, in order.
func (e *svcEnv) attemptsOf(id uuid.UUID, typ string) []int {
	var out []int
	for _, ev := range e.eventsOf(id, typ) {
		n := 0
		if ev.Attempt != nil {
			n = *ev.Attempt
		}
		out = append(out, n)
	}
	return out
}

func wantAttempts(t *testing.T, what string, got []int, want ...int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: attempts %v, want %v", what, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: attempts %v, want %v", what, got, want)
		}
	}
}

// testSvcAttempts checks the attempt number events carry: an event about
// an attempt that ended carries that attempt's number, also when the
// record moved on to a retry.
func testSvcAttempts(t *testing.T, f Factory) {
	// A failure that retries is reported as the attempt that failed; the
	// retry's events carry the next number.
	t.Run("FailedEventCarriesTheEndedAttempt", func(t *testing.T) {
		t.Parallel()
		var runs atomic.Int32
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "a.retry", func(ctx context.Context, _ noArgs) (none, error) {
				if n := runs.Add(1); n < 3 {
					return none{}, errors.New("not yet")
				}
				return none{}, nil
			}, queues.TaskOptions{Retries: 2})
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{})
		rec := env.waitStatus(res.ID, queues.StatusCompleted)
		if rec.RetryCount != 2 {
			t.Fatalf("retry_count %d, want 2", rec.RetryCount)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeCompleted) })
		wantAttempts(t, "task.started", env.attemptsOf(res.ID, events.TypeStarted), 1, 2, 3)
		wantAttempts(t, "task.failed", env.attemptsOf(res.ID, events.TypeFailed), 1, 2)
		wantAttempts(t, "task.completed", env.attemptsOf(res.ID, events.TypeCompleted), 3)
		for _, ev := range env.eventsOf(res.ID, events.TypeFailed) {
			if ev.Payload["will_retry"] != true {
				t.Fatalf("task.failed of attempt %d: payload %v", *ev.Attempt, ev.Payload)
			}
		}
	})

	// A terminal failure after a retry: the last attempt's number.
	t.Run("TerminalFailureCarriesTheLastAttempt", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "a.fail", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, errors.New("never")
			}, queues.TaskOptions{Retries: 1})
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{})
		env.waitStatus(res.ID, queues.StatusFailed)
		env.waitEvents(res.ID, func(ts []string) bool { return countType(ts, events.TypeFailed) == 2 })
		wantAttempts(t, "task.failed", env.attemptsOf(res.ID, events.TypeFailed), 1, 2)
		if last := env.eventsOf(res.ID, events.TypeFailed)[1]; last.Payload["will_retry"] != false {
			t.Fatalf("terminal task.failed payload %v", last.Payload)
		}
	})

	// A shutdown interruption is reported as the attempt it interrupted.
	t.Run("InterruptedEventCarriesTheEndedAttempt", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "a.interrupt", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				return none{}, context.Cause(ctx)
			})
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := env.svc.NewWorker(queues.WorkerConfig{RequeueOnShutdown: true, GracefulShutdownTimeout: 20 * time.Millisecond,
			PollInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := w.RunOnce(context.Background()); n != 1 || err != nil {
			t.Fatalf("RunOnce = %d, %v", n, err)
		}
		<-started
		if _, err := w.Stop(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		rec := env.waitStatus(res.ID, queues.StatusPending)
		if rec.RetryCount != 1 {
			t.Fatalf("retry_count %d, want 1", rec.RetryCount)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeInterrupted) })
		wantAttempts(t, "task.interrupted", env.attemptsOf(res.ID, events.TypeInterrupted), 1)
	})
}
