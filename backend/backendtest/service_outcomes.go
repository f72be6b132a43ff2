package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
	qexec "github.com/queuesgo/queues/execution"
)

func testSvcOutcomes(t *testing.T, f Factory) {
	// A worker fails an unregistered task terminally and publishes task.failed.
	t.Run("UnknownTaskFailsTerminally", func(t *testing.T) {
		t.Parallel()
		env := newSvc(t, f, nil)
		outs, err := env.b.Enqueue(context.Background(), []driver.EnqueueParams{{TaskName: "ghost.task", Args: json.RawMessage(`{}`), MaxRetries: 5, ExecutionBackend: "local"}})
		if err != nil {
			t.Fatal(err)
		}
		id := outs[0].Record.ID
		env.worker(queues.WorkerConfig{})
		rec := env.waitStatus(id, queues.StatusFailed)
		if rec.Error != `unknown queue task: "ghost.task"` || rec.RetryCount != 0 {
			t.Fatalf("error %q retry %d", rec.Error, rec.RetryCount)
		}
		env.waitEvents(id, func(ts []string) bool { return hasType(ts, events.TypeFailed) })
	})

	// A task declared without a function is unknown to workers too.
	t.Run("DeclaredOnlyTaskIsUnknown", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister[noArgs, none](r, "declared.only", nil)
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{})
		rec := env.waitStatus(res.ID, queues.StatusFailed)
		if !strings.Contains(rec.Error, "declared.only") {
			t.Fatalf("error %q", rec.Error)
		}
	})

	// ConsumeOne: exit codes for success, failure, cancel, missing, unknown and fenced claims.
	t.Run("ConsumeOneExitCodes", func(t *testing.T) {
		t.Parallel()
		var ok, bad, self *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			ok = queues.MustRegister(r, "co.ok", func(ctx context.Context, _ noArgs) (none, error) {
				queues.Beat(ctx, "working")
				return none{}, nil
			})
			bad = queues.MustRegister(r, "co.bad", func(ctx context.Context, _ noArgs) (none, error) { return none{}, errors.New("nope") },
				queues.TaskOptions{Retries: 1})
			self = queues.MustRegister(r, "co.self", func(ctx context.Context, _ noArgs) (none, error) { return none{}, queues.Cancelled("") })
		})
		ctx := context.Background()
		r1, _ := ok.Enqueue(ctx, env.svc, noArgs{})
		if code, err := env.svc.ExecutionHost().ConsumeOne(ctx, r1.ID, qexec.ConsumeOptions{WorkerID: "job-1"}); code != qexec.ExitSuccess || err != nil {
			t.Fatalf("success: %d %v", code, err)
		}
		if rec, _ := env.svc.GetTask(ctx, r1.ID); rec.Status != queues.StatusCompleted || rec.WorkerID != "job-1" || !rec.HeartbeatAt.IsZero() {
			t.Fatalf("completed record %+v", rec)
		}
		if code, _ := env.svc.ExecutionHost().ConsumeOne(ctx, r1.ID, qexec.ConsumeOptions{}); code != qexec.ExitClaimLost {
			t.Fatalf("re-consuming a completed record: %d", code)
		}
		r2, _ := bad.Enqueue(ctx, env.svc, noArgs{})
		if code, _ := env.svc.ExecutionHost().ConsumeOne(ctx, r2.ID, qexec.ConsumeOptions{}); code != qexec.ExitFailure {
			t.Fatalf("failure: %d", code)
		}
		if rec, _ := env.svc.GetTask(ctx, r2.ID); rec.Status != queues.StatusPending || rec.RetryCount != 1 {
			t.Fatalf("a failed attempt with budget must be requeued: %+v", rec)
		}
		wrong := 7
		if code, _ := env.svc.ExecutionHost().ConsumeOne(ctx, r2.ID, qexec.ConsumeOptions{ExpectedRetryCount: &wrong}); code != qexec.ExitClaimLost {
			t.Fatalf("wrong generation: %d", code)
		}
		r3, _ := self.Enqueue(ctx, env.svc, noArgs{})
		if code, _ := env.svc.ExecutionHost().ConsumeOne(ctx, r3.ID, qexec.ConsumeOptions{}); code != qexec.ExitCancelled {
			t.Fatalf("cancelled: %d", code)
		}
		if code, _ := env.svc.ExecutionHost().ConsumeOne(ctx, uuid.New(), qexec.ConsumeOptions{}); code != qexec.ExitMissingRecord {
			t.Fatalf("missing: %d", code)
		}
		outs, err := env.b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "not.in.this.binary", Args: json.RawMessage(`{}`), MaxRetries: 3}})
		if err != nil {
			t.Fatal(err)
		}
		code, err := env.svc.ExecutionHost().ConsumeOne(ctx, outs[0].Record.ID, qexec.ConsumeOptions{})
		if code != qexec.ExitUnknownTask || !errors.Is(err, queues.ErrUnknownTask) {
			t.Fatalf("unknown: %d %v", code, err)
		}
		if rec, _ := env.svc.GetTask(ctx, outs[0].Record.ID); rec.Status != queues.StatusFailed || !strings.Contains(rec.Error, "not.in.this.binary") {
			t.Fatalf("unknown task record %+v", rec)
		}
		exp, _ := ok.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{ExpiresIn: 30 * time.Millisecond, RunAfter: time.Millisecond})
		svcEventually(5*time.Second, func() bool { return time.Now().After(exp.Record().ExpiresAt.Add(10 * time.Millisecond)) })
		if code, _ := env.svc.ExecutionHost().ConsumeOne(ctx, exp.ID, qexec.ConsumeOptions{}); code != qexec.ExitClaimLost {
			t.Fatalf("expired: %d", code)
		}
		if rec, _ := env.svc.GetTask(ctx, exp.ID); rec.Status != queues.StatusExpired {
			t.Fatalf("expired record %s", rec.Status)
		}
	})

	// A one-shot consumer whose claim is taken away exits with ExitClaimLost.
	t.Run("ConsumeOneHeartbeatLoss", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "co.lost", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				return none{}, context.Cause(ctx)
			}, queues.TaskOptions{Retries: 2})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		go func() {
			<-started
			if err := takeClaimAway(env.b); err != nil {
				t.Error(err)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, err := env.svc.ExecutionHost().ConsumeOne(ctx, res.ID, qexec.ConsumeOptions{HeartbeatInterval: 20 * time.Millisecond})
		if code != qexec.ExitClaimLost || !errors.Is(err, queues.ErrClaimLost) {
			t.Fatalf("code %d err %v", code, err)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeClaimLost) })
		if rec, _ := env.svc.GetTask(context.Background(), res.ID); rec.Status != queues.StatusPending || rec.RetryCount != 1 {
			t.Fatalf("the requeued record must be left alone: %+v", rec)
		}
	})

	// A timed-out attempt stores the timeout text and retries per budget.
	t.Run("TimeoutRetriesPerBudget", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "o.timeout", func(ctx context.Context, _ noArgs) (none, error) {
				calls.Add(1)
				<-ctx.Done()
				return none{}, ctx.Err()
			}, queues.TaskOptions{Retries: 1, Timeout: 30 * time.Millisecond})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		env.worker(queues.WorkerConfig{})
		rec := env.waitStatus(res.ID, queues.StatusFailed)
		if rec.Error != "task timed out after 30ms" || rec.RetryCount != 1 || calls.Load() != 2 {
			t.Fatalf("error %q retry %d calls %d", rec.Error, rec.RetryCount, calls.Load())
		}
	})

	// Retries with backoff, non-retryable errors, panics, decode failures, empty errors.
	t.Run("ErrorClassification", func(t *testing.T) {
		t.Parallel()
		var flaky atomic.Int32
		var tFlaky, tFatal, tPanic, tEmpty *queues.Task[noArgs, none]
		var tTyped *queues.Task[struct{ N int }, int]
		env := newSvc(t, f, func(r *queues.Registry) {
			tFlaky = queues.MustRegister(r, "o.flaky", func(ctx context.Context, _ noArgs) (none, error) {
				if flaky.Add(1) < 3 {
					return none{}, errors.New("transient")
				}
				return none{}, nil
			}, queues.TaskOptions{Retries: 3, RetryBackoff: queues.FixedBackoff(20 * time.Millisecond)})
			tFatal = queues.MustRegister(r, "o.fatal", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, queues.NonRetryable(errors.New("bad input"))
			}, queues.TaskOptions{Retries: 3})
			tPanic = queues.MustRegister(r, "o.panic", func(ctx context.Context, _ noArgs) (none, error) {
				panic("kaboom")
			})
			tEmpty = queues.MustRegister(r, "o.empty", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, errors.New("")
			})
			tTyped = queues.MustRegister(r, "o.typed", func(ctx context.Context, a struct{ N int }) (int, error) {
				return a.N * 2, nil
			}, queues.TaskOptions{Retries: 3})
		})
		ctx := context.Background()
		rf, _ := tFlaky.Enqueue(ctx, env.svc, noArgs{})
		rx, _ := tFatal.Enqueue(ctx, env.svc, noArgs{})
		rp, _ := tPanic.Enqueue(ctx, env.svc, noArgs{})
		re, _ := tEmpty.Enqueue(ctx, env.svc, noArgs{})
		rt, _ := tTyped.Enqueue(ctx, env.svc, struct{ N int }{21})
		// Bypass enqueue validation to store arguments that do not decode.
		outs, err := env.b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "o.typed", Args: json.RawMessage(`{"N":"x"}`), MaxRetries: 3, ExecutionBackend: "local"}})
		if err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{MaxConcurrency: 4})
		if rec := env.waitStatus(rf.ID, queues.StatusCompleted); rec.RetryCount != 2 || rec.Error != "" {
			t.Fatalf("flaky: retry %d error %q", rec.RetryCount, rec.Error)
		}
		if rec := env.waitStatus(rx.ID, queues.StatusFailed); rec.RetryCount != 0 || rec.Error != "bad input" {
			t.Fatalf("non-retryable: retry %d error %q", rec.RetryCount, rec.Error)
		}
		if rec := env.waitStatus(rp.ID, queues.StatusFailed); rec.Error != "panic: kaboom" {
			t.Fatalf("panic: %q", rec.Error)
		}
		if rec := env.waitStatus(re.ID, queues.StatusFailed); rec.Error != "task failed (empty error message)" {
			t.Fatalf("empty error: %q", rec.Error)
		}
		if rec := env.waitStatus(outs[0].Record.ID, queues.StatusFailed); rec.RetryCount != 0 || !strings.HasPrefix(rec.Error, "decode arguments: ") {
			t.Fatalf("decode failure: retry %d error %q", rec.RetryCount, rec.Error)
		}
		env.waitStatus(rt.ID, queues.StatusCompleted)
		if _, err := rt.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if v, err := rt.Value(); err != nil || v != 42 {
			t.Fatalf("typed result %d, %v", v, err)
		}
		failed := env.eventsOf(rf.ID, events.TypeFailed)
		if len(failed) != 2 || failed[0].Payload["will_retry"] != true || failed[0].Payload["retry_delay"] == nil {
			t.Fatalf("task.failed events %+v", failed)
		}
		if _, err := (&queues.TaskResult[none]{}).Value(); err == nil {
			t.Fatal("Value on an empty handle must fail")
		}
		rx2, _ := tFatal.Enqueue(ctx, env.svc, noArgs{})
		rec, err := rx2.Wait(ctx)
		if err != nil || rec.Status != queues.StatusFailed {
			t.Fatalf("Wait = %v, %v", rec, err)
		}
		var te *queues.TaskError
		if _, err := rx2.Value(); !errors.As(err, &te) || te.Status != queues.StatusFailed || te.Message != "bad input" {
			t.Fatalf("Value on failed: %v", err)
		}
	})

	// Lifecycle events carry the worker ID, attempt and per-attempt sequence.
	t.Run("LifecycleEvents", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "o.events", func(ctx context.Context, _ noArgs) (none, error) {
				if err := queues.Progress(ctx, queues.ProgressUpdate{Current: 1, Total: 4, Message: "quarter"}); err != nil {
					return none{}, err
				}
				if err := queues.Log(ctx, "", "hello", map[string]any{"k": "v"}); err != nil {
					return none{}, err
				}
				return none{}, queues.Emit(ctx, "crawl.page", "found", nil)
			})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		env.worker(queues.WorkerConfig{ID: "events-worker"})
		types := env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeCompleted) })
		want := "task.started,task.progress,task.log,crawl.page,task.completed"
		if strings.Join(types, ",") != want {
			t.Fatalf("events %v, want %s", types, want)
		}
		for i, ev := range env.sink.Events() {
			if ev.TaskID != res.ID.String() {
				continue
			}
			if ev.WorkerID != "events-worker" || ev.Attempt == nil || *ev.Attempt != 1 || ev.Sequence == nil || len(ev.ID) != 32 {
				t.Fatalf("event %d %+v", i, ev)
			}
		}
		seqs := []int{}
		for _, ev := range env.sink.Events() {
			if ev.TaskID == res.ID.String() {
				seqs = append(seqs, *ev.Sequence)
			}
		}
		for i, s := range seqs {
			if s != i+1 {
				t.Fatalf("sequences %v, want 1..n", seqs)
			}
		}
		p := env.eventsOf(res.ID, events.TypeProgress)[0]
		if p.ProgressPercent == nil || *p.ProgressPercent != 25 || p.Message != "quarter" {
			t.Fatalf("progress %+v", p)
		}
		if err := queues.Progress(context.Background(), queues.ProgressUpdate{}); !errors.Is(err, queues.ErrNoTaskContext) {
			t.Fatalf("outside an attempt: %v", err)
		}
	})
}
