package backendtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
)

// testSvcHandlerOutcomes covers the outcomes a handler returns (Snooze,
// RetryAfter, the task's RetryDelay) and the error history, through a
// worker on the store under test.
func testSvcHandlerOutcomes(t *testing.T, f Factory) {
	// Snoozes spend no retry budget and are kept out of the error history.
	t.Run("SnoozeKeepsRetryBudget", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		var calls atomic.Int32
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "outcome.snooze", func(ctx context.Context, _ noArgs) (none, error) {
				switch calls.Add(1) {
				case 1, 2, 3:
					return none{}, queues.Snooze(0)
				case 4:
					return none{}, errors.New("real failure")
				}
				return none{}, nil
			}, queues.TaskOptions{Retries: 1, MaxSnoozes: 3})
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{})
		rec := env.waitStatus(res.ID, queues.StatusCompleted)
		if rec.RetryCount != 4 || rec.SnoozeCount != 3 || rec.AttemptsConsumed() != 1 {
			t.Fatalf("retry_count %d snooze_count %d consumed %d; want 4, 3, 1", rec.RetryCount, rec.SnoozeCount, rec.AttemptsConsumed())
		}
		if len(rec.Errors) != 1 || rec.Errors[0].Attempt != 4 || rec.Errors[0].Error != "real failure" {
			t.Fatalf("error history %+v; want only attempt 4", rec.Errors)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return countType(ts, events.TypeSnoozed) == 3 })
		for _, ev := range env.eventsOf(res.ID, events.TypeSnoozed) {
			if ev.Payload["snoozed"] != true {
				t.Fatalf("task.snoozed payload %v", ev.Payload)
			}
		}
	})

	// Past MaxSnoozes a snooze is an ordinary failure: it spends budget and
	// joins the history.
	t.Run("SnoozeCapFailsTheAttempt", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "outcome.snooze.cap", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, queues.Snooze(0)
			}, queues.TaskOptions{MaxSnoozes: 2})
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{})
		rec := env.waitStatus(res.ID, queues.StatusFailed)
		if rec.SnoozeCount != 2 || rec.RetryCount != 2 || !strings.Contains(rec.Error, "snoozed too many times") {
			t.Fatalf("snooze_count %d retry_count %d error %q", rec.SnoozeCount, rec.RetryCount, rec.Error)
		}
		if len(rec.Errors) != 1 || rec.Errors[0].Attempt != 3 || rec.Errors[0].Error != rec.Error {
			t.Fatalf("error history %+v", rec.Errors)
		}
	})

	// A delayed snooze and RetryAfter are due at the store's now + d; the
	// task's RetryDelay decides the delay per error.
	t.Run("DelaysByTheStoreClock", func(t *testing.T) {
		t.Parallel()
		const (
			snoozeFor  = time.Hour
			retryAfter = 2 * time.Hour
			perError   = 3 * time.Hour
		)
		errRemote := errors.New("remote said later")
		var snooze, after, delay *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			snooze = queues.MustRegister(r, "outcome.delay.snooze", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, queues.Snooze(snoozeFor)
			})
			after = queues.MustRegister(r, "outcome.delay.after", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, queues.RetryAfter(retryAfter, errors.New("429"))
			}, queues.TaskOptions{Retries: 1, RetryBackoff: queues.FixedBackoff(time.Millisecond)})
			delay = queues.MustRegister(r, "outcome.delay.func", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, errRemote
			}, queues.TaskOptions{Retries: 1, RetryDelay: func(attempt int, err error) time.Duration {
				if attempt == 1 && errors.Is(err, errRemote) {
					return perError
				}
				return 0
			}})
		})
		ctx := context.Background()
		before := time.Now()
		rs, err1 := snooze.Enqueue(ctx, env.svc, noArgs{})
		ra, err2 := after.Enqueue(ctx, env.svc, noArgs{})
		rd, err3 := delay.Enqueue(ctx, env.svc, noArgs{})
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{})
		for _, c := range []struct {
			id   fmt.Stringer
			rec  *queues.Record
			want time.Duration
		}{
			{rs.ID, env.waitStatus(rs.ID, queues.StatusScheduled), snoozeFor},
			{ra.ID, env.waitStatus(ra.ID, queues.StatusScheduled), retryAfter},
			{rd.ID, env.waitStatus(rd.ID, queues.StatusScheduled), perError},
		} {
			wantBetween(t, c.rec.TaskName+" scheduled_at", c.rec.ScheduledAt, before.Add(c.want), time.Now().Add(c.want))
		}
		env.waitEvents(ra.ID, func(ts []string) bool { return hasType(ts, events.TypeFailed) })
		if evs := env.eventsOf(ra.ID, events.TypeFailed); len(evs) != 1 || evs[0].Payload["retry_after"] != true {
			t.Fatalf("task.failed of a RetryAfter: %+v", evs)
		}
	})

	// Every failed attempt joins the history, oldest first, the last
	// ErrorHistoryEntries kept; a panic keeps its stack as the trace.
	t.Run("ErrorHistoryOrderAndCap", func(t *testing.T) {
		t.Parallel()
		const retries = 24
		var fail, boom *queues.Task[noArgs, none]
		var n atomic.Int32
		env := newSvc(t, f, func(r *queues.Registry) {
			fail = queues.MustRegister(r, "outcome.history", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, fmt.Errorf("failure %d", n.Add(1))
			}, queues.TaskOptions{Retries: retries})
			boom = queues.MustRegister(r, "outcome.history.panic", func(ctx context.Context, _ noArgs) (none, error) {
				panic("kaboom")
			})
		})
		ctx := context.Background()
		rf, err1 := fail.Enqueue(ctx, env.svc, noArgs{})
		rb, err2 := boom.Enqueue(ctx, env.svc, noArgs{})
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		w := env.worker(queues.WorkerConfig{})
		rec := env.waitStatus(rf.ID, queues.StatusFailed)
		const kept = 20 // queuestype.ErrorHistoryEntries
		if len(rec.Errors) != kept {
			t.Fatalf("%d history entries, want %d", len(rec.Errors), kept)
		}
		first := retries + 1 - kept + 1
		for i, e := range rec.Errors {
			if e.Attempt != first+i || e.Error != fmt.Sprintf("failure %d", first+i) || e.WorkerID != w.ID() || e.At.IsZero() {
				t.Fatalf("history[%d] = %+v; want attempt %d by %s", i, e, first+i, w.ID())
			}
			if i > 0 && e.At.Before(rec.Errors[i-1].At) {
				t.Fatalf("history out of time order at %d", i)
			}
		}
		if last := rec.Errors[kept-1]; last.Error != rec.Error {
			t.Fatalf("last history entry %q, last error %q", last.Error, rec.Error)
		}
		pr := env.waitStatus(rb.ID, queues.StatusFailed)
		if len(pr.Errors) != 1 || !strings.Contains(pr.Errors[0].Trace, "goroutine") || pr.Errors[0].Error != "panic: kaboom" {
			t.Fatalf("panic history %+v", pr.Errors)
		}
	})
}
