package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
)

func testSvcOverrides(t *testing.T, f Factory) {
	// task.With overrides persist; a future run is scheduled, not run inline.
	t.Run("WithOverridesPersist", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ov.task", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
		}, func(c *queues.Config) { c.ExternalExecutionBackends = []string{"cloudrun"} })
		before := time.Now()
		res, err := task.With(queues.EnqueueOptions{ExecutionBackend: "cloudrun", ExecutionProfile: "large",
			Description: "nightly", LogLevel: "debug", LogSuccess: queues.Ptr(true), RunAfter: 5 * time.Minute}).
			Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.ExecutionBackend != "cloudrun" || rec.ExecutionProfile != "large" || rec.Status != queues.StatusScheduled {
			t.Fatalf("record %+v", rec)
		}
		if rec.Policy.Description != "nightly" || rec.Policy.LogLevel != "debug" || !rec.Policy.LogSuccess {
			t.Fatalf("policy %+v", rec.Policy)
		}
		if len(rec.Metadata) != 0 {
			t.Fatalf("policy leaked into metadata: %v", rec.Metadata)
		}
		if d := rec.ScheduledAt.Sub(before); d < 5*time.Minute-2*time.Second || d > 5*time.Minute+5*time.Second {
			t.Fatalf("scheduled_at %v is %v after enqueue", rec.ScheduledAt, d)
		}
	})

	// Immediate execution returns a terminal record and retries inline.
	t.Run("ImmediateRetriesInline", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		var task *queues.Task[noArgs, string]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ov.immediate", func(ctx context.Context, _ noArgs) (string, error) {
				if calls.Add(1) == 1 {
					return "", errors.New("first try fails")
				}
				return "done", nil
			}, queues.TaskOptions{Retries: 1})
		}, func(c *queues.Config) { c.ExecutionBackend = queues.ExecutionImmediate })
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		rec := res.Record()
		if rec.Status != queues.StatusCompleted || rec.RetryCount != 1 {
			t.Fatalf("immediate: status %s retry %d", rec.Status, rec.RetryCount)
		}
		if v, err := res.Value(); err != nil || v != "done" {
			t.Fatalf("Value = %q, %v", v, err)
		}
		types := eventTypes(env.sink.Events(), res.ID)
		want := []string{events.TypeStarted, events.TypeFailed, events.TypeStarted, events.TypeCompleted}
		if strings.Join(types, ",") != strings.Join(want, ",") {
			t.Fatalf("events %v, want %v", types, want)
		}
	})

	// Immediate execution: a retry delay is reported, not waited; the caller's
	// ctx ending fails the record terminally and returns the ctx error.
	t.Run("ImmediateDelayAndInterrupt", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		started := make(chan struct{}, 1)
		var flaky, hang *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			flaky = queues.MustRegister(r, "ov.immediate_delay", func(ctx context.Context, _ noArgs) (none, error) {
				if calls.Add(1) == 1 {
					return none{}, errors.New("once")
				}
				return none{}, nil
			}, queues.TaskOptions{Retries: 1, RetryBackoff: queues.FixedBackoff(time.Hour)})
			hang = queues.MustRegister(r, "ov.immediate_hang", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				return none{}, context.Cause(ctx)
			}, queues.TaskOptions{Retries: 3})
		}, func(c *queues.Config) { c.ExecutionBackend = queues.ExecutionImmediate })
		start := time.Now()
		res, err := flaky.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil || res.Record().Status != queues.StatusCompleted || time.Since(start) > 30*time.Second {
			t.Fatalf("delayed retry: %v %+v", err, res)
		}
		failed := env.eventsOf(res.ID, events.TypeFailed)
		if len(failed) != 1 || failed[0].Payload["retry_delay"] != float64(3600) {
			t.Fatalf("task.failed must report the computed delay: %+v", failed)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-started; cancel() }()
		res2, err := hang.Enqueue(ctx, env.svc, noArgs{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Enqueue returned %v, want context.Canceled", err)
		}
		if res2 != nil {
			t.Fatalf("an interrupted enqueue returned a handle: %+v", res2)
		}
		st, _ := env.b.Statistics(context.Background(), "")
		if st.Failed != 1 {
			t.Fatalf("statistics %+v, want one failed record", st)
		}
		if in, ok := env.b.(driver.Inspector); ok {
			page, _ := in.ListTasks(context.Background(), queues.TaskFilter{Status: queues.StatusFailed})
			if len(page.Items) != 1 || page.Items[0].Error != "inline execution interrupted: context canceled" || page.Items[0].RetryCount != 0 {
				t.Fatalf("interrupted record %+v", page.Items)
			}
		}
	})

	// Immediate execution cannot run a future record.
	t.Run("ImmediateRejectsFuture", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ov.immediate_future", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
		}, func(c *queues.Config) { c.ExecutionBackend = queues.ExecutionImmediate })
		_, err := task.Enqueue(context.Background(), env.svc, noArgs{}, queues.EnqueueOptions{RunAfter: time.Hour})
		if !errors.Is(err, queues.ErrConfig) {
			t.Fatalf("got %v, want ErrConfig", err)
		}
		st, _ := env.svc.Statistics(context.Background(), "")
		if st.Total != 0 {
			t.Fatalf("a rejected enqueue wrote %d records", st.Total)
		}
	})

	// Enqueue options: option > task for queue, priority, retries; timeout and metadata persisted.
	t.Run("OptionPrecedence", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ov.prec", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{Queue: "mail", Priority: 3, Retries: 2, Description: "task desc", ExpiresIn: time.Hour,
					RetryBackoff: queues.ExponentialBackoff(time.Second, time.Minute), NoStaleRequeue: true})
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		rec := res.Record()
		if rec.Queue != "mail" || rec.Priority != 3 || rec.MaxRetries != 2 || rec.Policy.Description != "task desc" ||
			!rec.Policy.NoStaleRequeue || rec.Policy.RetryBackoff != queues.ExponentialBackoff(time.Second, time.Minute) || rec.ExpiresAt.IsZero() {
			t.Fatalf("task defaults not applied: %+v", rec)
		}
		res, err = task.Enqueue(context.Background(), env.svc, noArgs{}, queues.EnqueueOptions{Queue: "urgent",
			Priority: queues.Ptr(-5), Retries: queues.Ptr(0), Timeout: 1500 * time.Millisecond,
			Metadata: map[string]any{"tenant": "t1"}, RequeueOnStale: queues.Ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		rec, _ = env.svc.GetTask(context.Background(), res.ID)
		if rec.Queue != "urgent" || rec.Priority != -5 || rec.MaxRetries != 0 || rec.Metadata["tenant"] != "t1" {
			t.Fatalf("options not applied: %+v", rec)
		}
		if rec.Policy.Timeout != 1500*time.Millisecond {
			t.Fatalf("policy timeout = %v, want 1.5s", rec.Policy.Timeout)
		}
		if rec.Policy.NoStaleRequeue {
			t.Fatalf("RequeueOnStale=true must override the task default: %+v", rec.Policy)
		}
		if len(rec.Metadata) != 1 {
			t.Fatalf("metadata %v, want only the caller's tenant", rec.Metadata)
		}
	})

	// Enqueue-time validation is typed and writes nothing.
	t.Run("EnqueueValidation", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[struct{ N int }, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ov.valid", func(ctx context.Context, _ struct{ N int }) (none, error) { return none{}, nil })
		})
		ctx := context.Background()
		if _, err := env.svc.EnqueueRaw(ctx, "no.such.task", json.RawMessage(`{}`), queues.EnqueueOptions{}); !errors.Is(err, queues.ErrUnknownTask) ||
			err.Error() != `unknown queue task: "no.such.task"` {
			t.Fatalf("unknown task: %v", err)
		}
		if _, err := env.svc.EnqueueRaw(ctx, "ov.valid", json.RawMessage(`{"N":"not a number"}`), queues.EnqueueOptions{}); !errors.Is(err, queues.ErrInvalidArgs) {
			t.Fatalf("bad args: %v", err)
		}
		if _, err := env.svc.EnqueueRaw(ctx, "ov.valid", json.RawMessage(`{"N":`), queues.EnqueueOptions{}); !errors.Is(err, queues.ErrInvalidArgs) {
			t.Fatalf("broken JSON: %v", err)
		}
		bad := []queues.EnqueueOptions{
			{ExpiresAt: time.Now().Add(time.Hour), ExpiresIn: time.Hour},
			{RunAfter: -time.Second},
			{Priority: queues.Ptr(5000)},
			{Metadata: map[string]any{"_secret": 1}},
		}
		for i, o := range bad {
			if _, err := task.Enqueue(ctx, env.svc, struct{ N int }{1}, o); !errors.Is(err, queues.ErrConfig) {
				t.Errorf("bad option %d: %v", i, err)
			}
		}
		_, err := env.svc.EnqueueMany(ctx, []queues.EnqueueRequest{
			task.Request(struct{ N int }{1}),
			{Task: "ov.valid", Args: map[string]any{"N": "x"}},
		})
		var be *queues.BatchError
		if !errors.As(err, &be) || be.Index != 1 || !errors.Is(err, queues.ErrInvalidArgs) {
			t.Fatalf("batch: %v", err)
		}
		_, err = env.svc.EnqueueMany(ctx, []queues.EnqueueRequest{{Task: "ov.valid", Args: map[string]any{"N": math.Inf(1)}}})
		if !errors.Is(err, queues.ErrInvalidArgs) {
			t.Fatalf("unencodable args: %v", err)
		}
		st, _ := env.svc.Statistics(ctx, "")
		if st.Total != 0 {
			t.Fatalf("rejected enqueues wrote %d records", st.Total)
		}
	})

	// An already-expired enqueue is expired at once with task.expired.
	t.Run("ExpiredAtEnqueue", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ov.expired", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{}, queues.EnqueueOptions{ExpiresAt: time.Now().Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Record().Status != queues.StatusExpired {
			t.Fatalf("status %s, want expired", res.Record().Status)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeExpired) })
	})
}
