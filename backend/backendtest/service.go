package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
)

// RunService runs the service-level cases of SPEC §20: behaviour that goes
// through a queues.Service and its worker (middleware, overrides, immediate
// execution, uniqueness, unknown tasks, timeouts, shutdown, cancellation of
// running attempts, stale recovery and claim loss), on the factory's backend.
func RunService(t *testing.T, f Factory) {
	t.Helper()
	checkFactory(t, f)
	groups := []group{
		{"Middleware", testSvcMiddleware},
		{"Overrides", testSvcOverrides},
		{"Uniqueness", testSvcUniqueness},
		{"Outcomes", testSvcOutcomes},
		{"Cancellation", testSvcCancellation},
		{"Shutdown", testSvcShutdown},
		{"Recovery", testSvcRecovery},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, f)
		})
	}
}

// svcEnv is one service on a fresh backend, with an event sink.
type svcEnv struct {
	t    *testing.T
	b    driver.Backend
	svc  *queues.Service
	reg  *queues.Registry
	sink *events.MemorySink
}

type svcOption func(*queues.Config)

// newSvc builds and starts a service on a fresh backend. register runs before
// the service is created so tasks can be registered.
func newSvc(t *testing.T, f Factory, register func(r *queues.Registry), opts ...svcOption) *svcEnv {
	t.Helper()
	return newSvcOn(t, f.New(t), register, opts...)
}

func newSvcOn(t *testing.T, b driver.Backend, register func(r *queues.Registry), opts ...svcOption) *svcEnv {
	t.Helper()
	reg := queues.NewRegistry()
	if register != nil {
		register(reg)
	}
	sink := events.NewMemorySink()
	cfg := queues.Config{Backend: b, Registry: reg, Events: &queues.EventsConfig{Sinks: []events.Sink{sink}},
		Logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := queues.New(cfg)
	if err != nil {
		t.Fatalf("queues.New: %v", err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return &svcEnv{t: t, b: b, svc: svc, reg: reg, sink: sink}
}

// worker starts a worker running in the background; it is stopped (forced) at cleanup.
func (e *svcEnv) worker(cfg queues.WorkerConfig) *queues.Worker {
	e.t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	if cfg.PollBackoffMax == 0 {
		cfg.PollBackoffMax = 50 * time.Millisecond
	}
	if cfg.FinalCancelTimeout == 0 {
		cfg.FinalCancelTimeout = time.Second
	}
	w, err := e.svc.NewWorker(cfg)
	if err != nil {
		e.t.Fatalf("NewWorker: %v", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(context.Background()) }()
	select {
	case <-w.Ready():
	case <-time.After(5 * time.Second):
		e.t.Fatal("worker did not become ready")
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = w.Stop(ctx, true)
		<-done
	})
	return w
}

// waitStatus waits until the record reaches one of the statuses.
func (e *svcEnv) waitStatus(id uuid.UUID, want ...queues.Status) *queues.Record {
	e.t.Helper()
	var last *queues.Record
	ok := svcEventually(10*time.Second, func() bool {
		rec, err := e.svc.GetTask(context.Background(), id)
		if err != nil {
			return false
		}
		last = rec
		for _, s := range want {
			if rec.Status == s {
				return true
			}
		}
		return false
	})
	if !ok {
		if last != nil {
			e.t.Fatalf("record %s: status %s (error %q), want one of %v", id, last.Status, last.Error, want)
		}
		e.t.Fatalf("record %s never readable", id)
	}
	return last
}

// waitEvents waits until the sink holds events whose types for task id
// satisfy pred, and returns those types.
func (e *svcEnv) waitEvents(id uuid.UUID, pred func(types []string) bool) []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var types []string
	err := e.sink.WaitFor(ctx, func(evs []events.Event) bool {
		types = eventTypes(evs, id)
		return pred(types)
	})
	if err != nil {
		e.t.Fatalf("events for %s: %v (have %v)", id, err, types)
	}
	return types
}

func eventTypes(evs []events.Event, id uuid.UUID) []string {
	var out []string
	for _, ev := range evs {
		if ev.TaskID == id.String() {
			out = append(out, ev.Type)
		}
	}
	return out
}

func (e *svcEnv) eventsOf(id uuid.UUID, typ string) []events.Event {
	var out []events.Event
	for _, ev := range e.sink.Events() {
		if ev.TaskID == id.String() && ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func hasType(types []string, typ string) bool {
	for _, x := range types {
		if x == typ {
			return true
		}
	}
	return false
}

func countType(types []string, typ string) int {
	n := 0
	for _, x := range types {
		if x == typ {
			n++
		}
	}
	return n
}

// eventually polls cond every 5ms until it holds or the deadline passes.
func svcEventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type noArgs struct{}
type none struct{}

// trace records middleware and body steps in order, safely.
type trace struct {
	mu    sync.Mutex
	steps []string
}

func (tr *trace) add(s string) { tr.mu.Lock(); tr.steps = append(tr.steps, s); tr.mu.Unlock() }
func (tr *trace) get() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.steps...)
}
func (tr *trace) count(s string) int {
	n := 0
	for _, x := range tr.get() {
		if x == s {
			n++
		}
	}
	return n
}

type ctxKey struct{}

// tracingMiddleware records acquire/cleanup and puts a value into ctx.
// A non-nil acquireErr fails the next acquisition once.
func tracingMiddleware(tr *trace, acquireErr, cleanupErr *atomic.Pointer[error]) queues.Middleware {
	return func(next queues.Handler) queues.Handler {
		return func(ctx context.Context, rec *queues.Record) (any, error) {
			tr.add("acquire")
			if acquireErr != nil {
				if err := acquireErr.Swap(nil); err != nil {
					return nil, *err
				}
			}
			defer tr.add("cleanup")
			v, err := next(context.WithValue(ctx, ctxKey{}, "session-1"), rec)
			if err == nil && cleanupErr != nil {
				if cerr := cleanupErr.Load(); cerr != nil {
					return nil, *cerr
				}
			}
			return v, err
		}
	}
}

func withMiddleware(mw ...queues.Middleware) svcOption {
	return func(c *queues.Config) { c.Middleware = mw }
}

func testSvcMiddleware(t *testing.T, f Factory) {
	// §20.41 Middleware values placed in ctx reach the task.
	t.Run("ValuesReachTask", func(t *testing.T) {
		t.Parallel()
		tr := &trace{}
		var seen atomic.Value
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "mw.value", func(ctx context.Context, _ noArgs) (none, error) {
				seen.Store(ctx.Value(ctxKey{}))
				return none{}, nil
			})
		}, withMiddleware(tracingMiddleware(tr, nil, nil)))
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{})
		env.waitStatus(res.ID, queues.StatusCompleted)
		if got := seen.Load(); got != "session-1" {
			t.Fatalf("task saw %v, want session-1", got)
		}
	})

	// §20.42 acquire → body → cleanup, on success and on failure.
	t.Run("OrderOnSuccessAndFailure", func(t *testing.T) {
		t.Parallel()
		tr := &trace{}
		var ok, bad *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			ok = queues.MustRegister(r, "mw.ok", func(ctx context.Context, _ noArgs) (none, error) {
				tr.add("body")
				return none{}, nil
			})
			bad = queues.MustRegister(r, "mw.bad", func(ctx context.Context, _ noArgs) (none, error) {
				tr.add("body")
				return none{}, errors.New("boom in body")
			})
		}, withMiddleware(tracingMiddleware(tr, nil, nil)))
		env.worker(queues.WorkerConfig{})
		r1, _ := ok.Enqueue(context.Background(), env.svc, noArgs{})
		env.waitStatus(r1.ID, queues.StatusCompleted)
		if got := strings.Join(tr.get(), ","); got != "acquire,body,cleanup" {
			t.Fatalf("success order %s", got)
		}
		r2, _ := bad.Enqueue(context.Background(), env.svc, noArgs{})
		rec := env.waitStatus(r2.ID, queues.StatusFailed)
		if !strings.Contains(rec.Error, "boom in body") {
			t.Fatalf("error %q", rec.Error)
		}
		if got := strings.Join(tr.get(), ","); got != "acquire,body,cleanup,acquire,body,cleanup" {
			t.Fatalf("failure order %s", got)
		}
	})

	// §20.43 An acquisition error fails the attempt through normal retry.
	t.Run("AcquireErrorRetries", func(t *testing.T) {
		t.Parallel()
		tr := &trace{}
		var acquireErr atomic.Pointer[error]
		acquireErr.Store(queues.Ptr(errors.New("pool exhausted")))
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "mw.acquire", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, nil
			}, queues.TaskOptions{Retries: 1})
		}, withMiddleware(tracingMiddleware(tr, &acquireErr, nil)))
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		w, err := env.svc.NewWorker(queues.WorkerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := w.RunOnce(context.Background()); err != nil || n != 1 {
			t.Fatalf("RunOnce = %d, %v", n, err)
		}
		_ = w.Wait(context.Background())
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.Status != queues.StatusPending || rec.RetryCount != 1 || rec.Error != "pool exhausted" {
			t.Fatalf("after acquire error: status %s retry %d error %q", rec.Status, rec.RetryCount, rec.Error)
		}
		if n, err := w.RunOnce(context.Background()); err != nil || n != 1 {
			t.Fatalf("second RunOnce = %d, %v", n, err)
		}
		_ = w.Wait(context.Background())
		env.waitStatus(res.ID, queues.StatusCompleted)
		types := env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeCompleted) })
		fi, ci := indexOf(types, events.TypeFailed), indexOf(types, events.TypeCompleted)
		if fi < 0 || ci < fi {
			t.Fatalf("task.failed must precede task.completed: %v", types)
		}
		_, _ = w.Stop(context.Background(), false)
	})

	// §20.44 Cleanup runs exactly once on timeout, durable cancel, claim loss and shutdown.
	t.Run("CleanupOnceOnEveryEnding", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			name   string
			end    func(env *svcEnv, w *queues.Worker, id uuid.UUID)
			status []queues.Status
		}{
			{"Timeout", func(env *svcEnv, w *queues.Worker, id uuid.UUID) {}, []queues.Status{queues.StatusFailed}},
			{"Cancel", func(env *svcEnv, w *queues.Worker, id uuid.UUID) {
				if ok, err := env.svc.Cancel(context.Background(), id, queues.CancelOptions{IncludeRunning: true}); !ok || err != nil {
					env.t.Errorf("cancel = %v, %v", ok, err)
				}
			}, []queues.Status{queues.StatusCancelled}},
			{"ClaimLoss", func(env *svcEnv, w *queues.Worker, id uuid.UUID) {
				if err := takeClaimAway(env.b); err != nil {
					env.t.Error(err)
				}
			}, []queues.Status{queues.StatusPending}},
			{"Shutdown", func(env *svcEnv, w *queues.Worker, id uuid.UUID) {
				_, _ = w.Stop(context.Background(), false)
			}, []queues.Status{queues.StatusPending}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				tr := &trace{}
				var task *queues.Task[noArgs, none]
				opts := queues.TaskOptions{Retries: 1}
				if c.name == "Timeout" {
					opts = queues.TaskOptions{Timeout: 50 * time.Millisecond}
				}
				started := make(chan struct{}, 1)
				env := newSvc(t, f, func(r *queues.Registry) {
					task = queues.MustRegister(r, "mw.cleanup", func(ctx context.Context, _ noArgs) (none, error) {
						started <- struct{}{}
						<-ctx.Done()
						return none{}, ctx.Err()
					}, opts)
				}, withMiddleware(tracingMiddleware(tr, nil, nil)))
				res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
				w, err := env.svc.NewWorker(queues.WorkerConfig{
					HeartbeatInterval: 20 * time.Millisecond, HeartbeatMissThreshold: 1,
					GracefulShutdownTimeout: 50 * time.Millisecond, RequeueOnShutdown: true,
					CancellationPollInterval: 20 * time.Millisecond, FinalCancelTimeout: time.Second,
				})
				if err != nil {
					t.Fatal(err)
				}
				if n, err := w.RunOnce(context.Background()); n != 1 || err != nil {
					t.Fatalf("RunOnce = %d, %v", n, err)
				}
				<-started
				c.end(env, w, res.ID)
				if c.name == "Cancel" {
					// The durable poll runs inside the worker's cycle.
					svcEventually(5*time.Second, func() bool {
						_, _ = w.RunOnce(context.Background())
						return tr.count("cleanup") == 1
					})
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := w.Wait(ctx); err != nil {
					t.Fatalf("attempt did not end: %v", err)
				}
				rec := env.waitStatus(res.ID, c.status...)
				if got := tr.count("cleanup"); got != 1 {
					t.Fatalf("cleanup ran %d times, want 1 (steps %v)", got, tr.get())
				}
				if c.name == "Timeout" && rec.Error != "task timed out after 50ms" {
					t.Fatalf("timeout error %q", rec.Error)
				}
				if c.name == "Shutdown" && (!rec.StartedAt.IsZero() || rec.WorkerID != "") {
					t.Fatalf("interrupted record keeps started_at %v worker %q", rec.StartedAt, rec.WorkerID)
				}
				_, _ = w.Stop(context.Background(), true)
			})
		}
	})

	// §20.45 A cleanup error after a successful body fails the attempt.
	t.Run("CleanupErrorFails", func(t *testing.T) {
		t.Parallel()
		tr := &trace{}
		var cleanupErr atomic.Pointer[error]
		cleanupErr.Store(queues.Ptr(errors.New("commit failed")))
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "mw.cleanup_err", func(ctx context.Context, _ noArgs) (none, error) {
				return none{}, nil
			})
		}, withMiddleware(tracingMiddleware(tr, nil, &cleanupErr)))
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		env.worker(queues.WorkerConfig{})
		rec := env.waitStatus(res.ID, queues.StatusFailed)
		if rec.Error != "commit failed" || rec.Result != nil {
			t.Fatalf("error %q result %s", rec.Error, rec.Result)
		}
	})
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func testSvcOverrides(t *testing.T, f Factory) {
	// §20.46 task.With overrides persist; a future run is scheduled, not run inline.
	t.Run("WithOverridesPersist", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ov.task", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
		})
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
		if rec.Metadata["description"] != "nightly" || rec.Metadata["log_level"] != "debug" || rec.Metadata["log_success"] != true {
			t.Fatalf("metadata %v", rec.Metadata)
		}
		if d := rec.ScheduledAt.Sub(before); d < 5*time.Minute-2*time.Second || d > 5*time.Minute+5*time.Second {
			t.Fatalf("scheduled_at %v is %v after enqueue", rec.ScheduledAt, d)
		}
	})

	// §20.47 Immediate execution returns a terminal record and retries inline.
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
		if rec.Queue != "mail" || rec.Priority != 3 || rec.MaxRetries != 2 || rec.Metadata["description"] != "task desc" ||
			rec.Metadata["requeue_on_stale"] != false || rec.Metadata["retry_backoff"] == nil || rec.ExpiresAt.IsZero() {
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
		if v, _ := rec.Metadata["timeout"].(float64); v != 1.5 {
			t.Fatalf("metadata.timeout = %v, want 1.5", rec.Metadata["timeout"])
		}
		if _, ok := rec.Metadata["requeue_on_stale"]; ok {
			t.Fatalf("RequeueOnStale=true must override the task default: %v", rec.Metadata)
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

type userArgs struct {
	User  string  `json:"user"`
	Page  int     `json:"page"`
	Score float64 `json:"score"`
}

type narrowArgs struct {
	User    string `json:"user"`
	TraceID string `json:"trace_id"`
}

func (a narrowArgs) IdentityArgs() any { return map[string]any{"user": a.User} }

func testSvcUniqueness(t *testing.T, f Factory) {
	// §20.52 Terminal uniqueness through the service.
	t.Run("TerminalKeyDedup", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "u.key", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
		})
		ctx := context.Background()
		a, _ := task.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{Key: "report:42"})
		b, _ := task.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{Key: "report:42"})
		if a.Deduplicated || !b.Deduplicated || a.ID != b.ID {
			t.Fatalf("a=%v/%v b=%v/%v", a.ID, a.Deduplicated, b.ID, b.Deduplicated)
		}
		env.worker(queues.WorkerConfig{})
		env.waitStatus(a.ID, queues.StatusCompleted)
		c, _ := task.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{Key: "report:42"})
		if c.Deduplicated || c.ID == a.ID {
			t.Fatalf("after completion a new record must be created: %v %v", c.ID, c.Deduplicated)
		}
	})

	// §20.53 Arguments mode: same JSON → same key; IdentityArgs narrows; NaN and size limits.
	t.Run("ArgumentsMode", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[userArgs, none]
		var narrow *queues.Task[narrowArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "u.args", func(ctx context.Context, _ userArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{UniqueBy: queues.UniqueByArguments})
			narrow = queues.MustRegister(r, "u.narrow", func(ctx context.Context, _ narrowArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{UniqueBy: queues.UniqueByArguments})
		}, func(c *queues.Config) { c.MaxArgumentIdentityBytes = 64 })
		ctx := context.Background()
		a, err := task.Enqueue(ctx, env.svc, userArgs{User: "ann", Page: 1})
		if err != nil {
			t.Fatal(err)
		}
		b, err := env.svc.EnqueueRaw(ctx, "u.args", json.RawMessage(`{"page":1,"score":0,"user":"ann"}`), queues.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !b.Deduplicated || b.ID != a.ID {
			t.Fatalf("same JSON must give the same key: %v %v", a.ID, b.ID)
		}
		rec := a.Record()
		if !strings.HasPrefix(rec.Key, "q:u:v1:arguments:") || len(rec.Key) != len("q:u:v1:arguments:")+64 ||
			rec.Metadata["unique_by"] != "arguments" || rec.Metadata["unique_version"] != "v1" {
			t.Fatalf("key %q metadata %v", rec.Key, rec.Metadata)
		}
		c, _ := task.Enqueue(ctx, env.svc, userArgs{User: "ann", Page: 2})
		if c.Deduplicated {
			t.Fatal("different arguments must not dedupe")
		}
		n1, _ := narrow.Enqueue(ctx, env.svc, narrowArgs{User: "bob", TraceID: "t1"})
		n2, _ := narrow.Enqueue(ctx, env.svc, narrowArgs{User: "bob", TraceID: "t2"})
		if !n2.Deduplicated || n1.ID != n2.ID {
			t.Fatal("IdentityArgs must narrow the identity to user")
		}
		if _, err := task.Enqueue(ctx, env.svc, userArgs{User: "ann", Score: math.NaN()}); !errors.Is(err, queues.ErrIdentity) && !errors.Is(err, queues.ErrInvalidArgs) {
			t.Fatalf("NaN: %v", err)
		}
		_, err = task.Enqueue(ctx, env.svc, userArgs{User: strings.Repeat("x", 100)})
		var tooLarge *queues.IdentityTooLargeError
		if !errors.Is(err, queues.ErrIdentityTooLarge) || !errors.As(err, &tooLarge) || tooLarge.Max != 64 {
			t.Fatalf("too large: %v", err)
		}
	})

	// Task mode and forever reservations through the service.
	t.Run("ForeverThroughService", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "u.forever", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{UniqueBy: queues.UniqueByTask, UniqueUntil: queues.UniqueUntilForever})
		})
		ctx := context.Background()
		a, err := task.Enqueue(ctx, env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.Record().Key, "q:u:v1:task:") || a.Record().Metadata["unique_until"] != "forever" {
			t.Fatalf("record %+v", a.Record())
		}
		env.worker(queues.WorkerConfig{})
		env.waitStatus(a.ID, queues.StatusCompleted)
		if n, err := env.b.CleanupTerminal(ctx, time.Now().Add(time.Hour), 100); err != nil || n != 1 {
			t.Fatalf("cleanup = %d, %v", n, err)
		}
		b, err := task.Enqueue(ctx, env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		if !b.Deduplicated || b.ID != a.ID || b.Record() != nil {
			t.Fatalf("forever owner handle expected, got %v dedup=%v", b.ID, b.Deduplicated)
		}
		res, _ := env.svc.GetIdentity(ctx, a.Record().Key)
		if res == nil || res.TaskID != a.ID || res.TaskName != "u.forever" {
			t.Fatalf("reservation %+v", res)
		}
		if ok, err := env.svc.ResetIdentity(ctx, a.Record().Key); !ok || err != nil {
			t.Fatalf("reset = %v, %v", ok, err)
		}
		c, _ := task.Enqueue(ctx, env.svc, noArgs{})
		if c.Deduplicated || c.ID == a.ID {
			t.Fatal("after reset a new record must be created")
		}
	})

	// §20.54 EnqueueMany: in-batch duplicates, active duplicates, input order.
	t.Run("EnqueueManyKeys", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[userArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "u.many", func(ctx context.Context, _ userArgs) (none, error) { return none{}, nil })
		})
		ctx := context.Background()
		pre, _ := task.Enqueue(ctx, env.svc, userArgs{User: "z"}, queues.EnqueueOptions{Key: "k-active"})
		res, err := env.svc.EnqueueMany(ctx, []queues.EnqueueRequest{
			task.Request(userArgs{User: "a"}, queues.EnqueueOptions{Key: "k1"}),
			task.Request(userArgs{User: "b"}),
			task.Request(userArgs{User: "c"}, queues.EnqueueOptions{Key: "k1"}),
			task.Request(userArgs{User: "d"}, queues.EnqueueOptions{Key: "k-active"}),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 4 || res[0].ID != res[2].ID || !res[2].Deduplicated || res[0].Deduplicated || res[3].ID != pre.ID || !res[3].Deduplicated {
			t.Fatalf("results %+v", res)
		}
		var args userArgs
		_ = json.Unmarshal(res[1].Record().Args, &args)
		if args.User != "b" {
			t.Fatalf("input order lost: %+v", args)
		}
		st, _ := env.svc.Statistics(ctx, "")
		if st.Pending != 3 {
			t.Fatalf("pending %d, want 3", st.Pending)
		}
	})
}

func testSvcOutcomes(t *testing.T, f Factory) {
	// §20.61 A worker fails an unregistered task terminally and publishes task.failed.
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

	// §20.60 ConsumeOne: exit codes for success, failure, cancel, missing, unknown and fenced claims.
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
		if code, err := env.svc.ConsumeOne(ctx, r1.ID, queues.ConsumeOptions{WorkerID: "job-1"}); code != queues.ExitSuccess || err != nil {
			t.Fatalf("success: %d %v", code, err)
		}
		if rec, _ := env.svc.GetTask(ctx, r1.ID); rec.Status != queues.StatusCompleted || rec.WorkerID != "job-1" || !rec.HeartbeatAt.IsZero() {
			t.Fatalf("completed record %+v", rec)
		}
		if code, _ := env.svc.ConsumeOne(ctx, r1.ID, queues.ConsumeOptions{}); code != queues.ExitClaimLost {
			t.Fatalf("re-consuming a completed record: %d", code)
		}
		r2, _ := bad.Enqueue(ctx, env.svc, noArgs{})
		if code, _ := env.svc.ConsumeOne(ctx, r2.ID, queues.ConsumeOptions{}); code != queues.ExitFailure {
			t.Fatalf("failure: %d", code)
		}
		if rec, _ := env.svc.GetTask(ctx, r2.ID); rec.Status != queues.StatusPending || rec.RetryCount != 1 {
			t.Fatalf("a failed attempt with budget must be requeued: %+v", rec)
		}
		wrong := 7
		if code, _ := env.svc.ConsumeOne(ctx, r2.ID, queues.ConsumeOptions{ExpectedRetryCount: &wrong}); code != queues.ExitClaimLost {
			t.Fatalf("wrong generation: %d", code)
		}
		r3, _ := self.Enqueue(ctx, env.svc, noArgs{})
		if code, _ := env.svc.ConsumeOne(ctx, r3.ID, queues.ConsumeOptions{}); code != queues.ExitCancelled {
			t.Fatalf("cancelled: %d", code)
		}
		if code, _ := env.svc.ConsumeOne(ctx, uuid.New(), queues.ConsumeOptions{}); code != queues.ExitMissingRecord {
			t.Fatalf("missing: %d", code)
		}
		outs, err := env.b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "not.in.this.binary", Args: json.RawMessage(`{}`), MaxRetries: 3}})
		if err != nil {
			t.Fatal(err)
		}
		code, err := env.svc.ConsumeOne(ctx, outs[0].Record.ID, queues.ConsumeOptions{})
		if code != queues.ExitUnknownTask || !errors.Is(err, queues.ErrUnknownTask) {
			t.Fatalf("unknown: %d %v", code, err)
		}
		if rec, _ := env.svc.GetTask(ctx, outs[0].Record.ID); rec.Status != queues.StatusFailed || !strings.Contains(rec.Error, "not.in.this.binary") {
			t.Fatalf("unknown task record %+v", rec)
		}
		exp, _ := ok.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{ExpiresIn: 30 * time.Millisecond, RunAfter: time.Millisecond})
		svcEventually(5*time.Second, func() bool { return time.Now().After(exp.Record().ExpiresAt.Add(10 * time.Millisecond)) })
		if code, _ := env.svc.ConsumeOne(ctx, exp.ID, queues.ConsumeOptions{}); code != queues.ExitClaimLost {
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
		code, err := env.svc.ConsumeOne(ctx, res.ID, queues.ConsumeOptions{HeartbeatInterval: 20 * time.Millisecond})
		if code != queues.ExitClaimLost || !errors.Is(err, queues.ErrClaimLost) {
			t.Fatalf("code %d err %v", code, err)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeClaimLost) })
		if rec, _ := env.svc.GetTask(context.Background(), res.ID); rec.Status != queues.StatusPending || rec.RetryCount != 1 {
			t.Fatalf("the requeued record must be left alone: %+v", rec)
		}
	})

	// §20.62 A timed-out attempt stores the timeout text and retries per budget.
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

func testSvcCancellation(t *testing.T, f Factory) {
	// §20.25 Through the service only the winner gets true and one task.cancelled.
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

	// §20.26 CancelMatching through the service: one event per record, hints to running owners.
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

	// §20.66 A cross-instance Cancel(IncludeRunning) reaches a saturated worker through the control hint.
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

	// §20.67 With hints off, a 100ms durable poll still cancels the running attempt.
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

func testSvcShutdown(t *testing.T, f Factory) {
	// §20.64 RequeueOnShutdown with a 50ms drain: escalation, pending, task.interrupted.
	t.Run("RequeueOnShutdown", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "s.requeue", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				return none{}, ctx.Err()
			}, queues.TaskOptions{Priority: 7})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		w, _ := env.svc.NewWorker(queues.WorkerConfig{RequeueOnShutdown: true, GracefulShutdownTimeout: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond})
		errc := make(chan error, 1)
		go func() { errc <- w.Run(context.Background()) }()
		<-started
		claimed, _ := env.svc.GetTask(context.Background(), res.ID)
		sr, err := w.Stop(context.Background(), false)
		if err != nil || !sr.Escalated {
			t.Fatalf("stop = %+v, %v", sr, err)
		}
		if err := <-errc; !errors.Is(err, queues.ErrEscalated) {
			t.Fatalf("Run returned %v, want ErrEscalated", err)
		}
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.Status != queues.StatusPending || !rec.StartedAt.IsZero() || !rec.HeartbeatAt.IsZero() || rec.WorkerID != "" ||
			rec.RetryCount != 1 || rec.Priority != 7 || rec.QueuedAt.Before(claimed.QueuedAt) || rec.Metadata["interruptions"] == nil {
			t.Fatalf("after interrupt %+v", rec)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeInterrupted) })
	})

	// Without requeue, a shutdown clears the heartbeat so stale recovery takes the record at once.
	t.Run("ShutdownNullsHeartbeat", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "s.null", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				return none{}, ctx.Err()
			})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		w, _ := env.svc.NewWorker(queues.WorkerConfig{GracefulShutdownTimeout: 20 * time.Millisecond})
		if n, _ := w.RunOnce(context.Background()); n != 1 {
			t.Fatal("nothing claimed")
		}
		<-started
		sr, _ := w.Stop(context.Background(), false)
		if !sr.Escalated {
			t.Fatal("stop must escalate")
		}
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.Status != queues.StatusRunning || !rec.HeartbeatAt.IsZero() {
			t.Fatalf("status %s heartbeat %v", rec.Status, rec.HeartbeatAt)
		}
	})

	// The interruption budget: a record interrupted MaxInterruptions times fails its next shutdown.
	t.Run("InterruptionBudget", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{}, 4)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "s.budget", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				return none{}, ctx.Err()
			})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		for i := 0; i < 2; i++ {
			w, _ := env.svc.NewWorker(queues.WorkerConfig{RequeueOnShutdown: true, MaxInterruptions: 1, GracefulShutdownTimeout: 10 * time.Millisecond})
			if n, err := w.RunOnce(context.Background()); n != 1 || err != nil {
				t.Fatalf("round %d: RunOnce = %d, %v", i, n, err)
			}
			<-started
			_, _ = w.Stop(context.Background(), true)
		}
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.Status != queues.StatusFailed || rec.Error != "Interrupted during shutdown" {
			t.Fatalf("status %s error %q", rec.Status, rec.Error)
		}
	})

	// An attempt that ignores cancellation is abandoned after FinalCancelTimeout and its slot held.
	t.Run("IgnoredCancellation", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "s.stubborn", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-release
				return none{}, nil
			})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		w, _ := env.svc.NewWorker(queues.WorkerConfig{FinalCancelTimeout: 50 * time.Millisecond, RequeueOnShutdown: true})
		if n, _ := w.RunOnce(context.Background()); n != 1 {
			t.Fatal("nothing claimed")
		}
		<-started
		sr, _ := w.Stop(context.Background(), true)
		if !sr.Escalated || w.InFlight() != 1 {
			t.Fatalf("stop %+v inflight %d", sr, w.InFlight())
		}
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.Status != queues.StatusRunning || !rec.HeartbeatAt.IsZero() {
			t.Fatalf("abandoned record: status %s heartbeat %v", rec.Status, rec.HeartbeatAt)
		}
		close(release)
		if err := w.Wait(context.Background()); err != nil || w.InFlight() != 0 {
			t.Fatal("slot not released")
		}
		if rec, _ := env.svc.GetTask(context.Background(), res.ID); rec.Status != queues.StatusRunning {
			t.Fatalf("a late return must not settle the abandoned attempt: %s", rec.Status)
		}
	})
}

func testSvcRecovery(t *testing.T, f Factory) {
	// Stale recovery across two workers: a worker that stops heartbeating loses its record to another.
	t.Run("StaleAcrossWorkers", func(t *testing.T) {
		t.Parallel()
		b := f.New(t)
		releaseA := make(chan struct{})
		var aCalls, bCalls atomic.Int32
		var task *queues.Task[noArgs, none]
		regA := func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.stale", func(ctx context.Context, _ noArgs) (none, error) {
				aCalls.Add(1)
				<-releaseA
				return none{}, nil
			}, queues.TaskOptions{Retries: 1})
		}
		regB := func(r *queues.Registry) {
			queues.MustRegister(r, "r.stale", func(ctx context.Context, _ noArgs) (none, error) {
				bCalls.Add(1)
				return none{}, nil
			}, queues.TaskOptions{Retries: 1})
		}
		envA := newSvcOn(t, b, regA)
		envB := newSvcOn(t, b, regB)
		res, _ := task.Enqueue(context.Background(), envA.svc, noArgs{})
		// Worker A claims, then "hangs": its heartbeat interval is far away.
		wA, _ := envA.svc.NewWorker(queues.WorkerConfig{ID: "hung-a", HeartbeatInterval: time.Hour, KeepRunningOnClaimLoss: true})
		if n, _ := wA.RunOnce(context.Background()); n != 1 {
			t.Fatal("A claimed nothing")
		}
		envB.worker(queues.WorkerConfig{ID: "rescuer-b", StaleAfter: 150 * time.Millisecond, StaleCheckInterval: 50 * time.Millisecond})
		rec := envB.waitStatus(res.ID, queues.StatusCompleted)
		if rec.WorkerID != "rescuer-b" || rec.RetryCount != 1 || bCalls.Load() != 1 {
			t.Fatalf("rescued record %+v calls %d", rec, bCalls.Load())
		}
		// A wakes up: its fenced complete must not apply.
		close(releaseA)
		_ = wA.Wait(context.Background())
		envA.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeClaimLost) })
		if ev := envA.eventsOf(res.ID, events.TypeClaimLost)[0]; ev.Payload["phase"] != "complete" {
			t.Fatalf("claim_lost phase %v", ev.Payload["phase"])
		}
		if rec, _ := envA.svc.GetTask(context.Background(), res.ID); rec.WorkerID != "rescuer-b" || rec.Status != queues.StatusCompleted {
			t.Fatalf("stale attempt overwrote the record: %+v", rec)
		}
		_, _ = wA.Stop(context.Background(), true)
	})

	// Heartbeat misses cancel the attempt with ErrClaimLost and publish task.claim_lost.
	t.Run("HeartbeatClaimLoss", func(t *testing.T) {
		t.Parallel()
		cause := make(chan error, 1)
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.lost", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				cause <- context.Cause(ctx)
				return none{}, ctx.Err()
			}, queues.TaskOptions{Retries: 2})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		w := env.worker(queues.WorkerConfig{HeartbeatInterval: 20 * time.Millisecond, HeartbeatMissThreshold: 2, Queues: []string{"default"}})
		<-started
		// Another process requeues the record (as stale recovery would).
		if err := takeClaimAway(env.b); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-cause:
			if !errors.Is(c, queues.ErrClaimLost) {
				t.Fatalf("cause %v", c)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("claim loss never detected")
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeClaimLost) })
		_ = w
	})

	// The worker's periodic expiry sweep expires records it would never claim, with task.expired.
	t.Run("ExpirySweep", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.expire", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{Queue: "elsewhere"})
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{}, queues.EnqueueOptions{ExpiresIn: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{Queues: []string{"default"}, ExpiryCheckInterval: 20 * time.Millisecond})
		rec := env.waitStatus(res.ID, queues.StatusExpired)
		if rec.CompletedAt.IsZero() || !rec.StartedAt.IsZero() {
			t.Fatalf("expired record %+v", rec)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeExpired) })
		ev := env.eventsOf(res.ID, events.TypeExpired)[0]
		if ev.Message != "Task expired before execution" || ev.Payload["expires_at"] == nil {
			t.Fatalf("task.expired %+v", ev)
		}
	})

	// Beat details reach metadata.progress_detail through the heartbeat.
	t.Run("BeatPersists", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.beat", func(ctx context.Context, _ noArgs) (none, error) {
				queues.Beat(ctx, "row 5")
				<-release
				return none{}, nil
			})
		})
		defer close(release)
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		env.worker(queues.WorkerConfig{HeartbeatInterval: 20 * time.Millisecond})
		if !svcEventually(10*time.Second, func() bool {
			rec, _ := env.svc.GetTask(context.Background(), res.ID)
			return rec != nil && rec.Metadata["progress_detail"] == "row 5"
		}) {
			t.Fatal("progress_detail never written")
		}
	})

	// Service.RecoverStale publishes task.stale_failed, the summary, and runs the hook.
	t.Run("RecoverStaleEventsAndHook", func(t *testing.T) {
		t.Parallel()
		hooked := make(chan uuid.UUID, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.hook", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{OnStaleFailure: func(ctx context.Context, rec *queues.Record) { hooked <- rec.ID }})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		if cr, err := env.b.ClaimMany(context.Background(), driver.ClaimParams{Limit: 1, WorkerID: "gone"}); err != nil || len(cr.Claimed) != 1 {
			t.Fatalf("claim: %v", err)
		}
		if err := env.b.NullHeartbeats(context.Background(), []queuestype.Fence{{ID: res.ID}}); err != nil {
			t.Fatal(err)
		}
		sr, err := env.svc.RecoverStale(context.Background(), queues.StaleOptions{StaleAfter: time.Hour})
		if err != nil || sr.Failed != 1 || len(sr.FailedTaskIDs) != 1 || sr.FailedTaskIDs[0] != res.ID {
			t.Fatalf("recover = %+v, %v", sr, err)
		}
		select {
		case id := <-hooked:
			if id != res.ID {
				t.Fatalf("hook for %v", id)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("hook not called")
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeStaleFailed) })
		found := false
		for _, ev := range env.sink.Events() {
			if ev.Type == events.TypeStaleRecovery && ev.Payload["failed"] == float64(1) {
				found = true
			}
		}
		if !found {
			t.Fatal("no worker.stale_recovery summary")
		}
		if _, err := env.svc.RecoverStale(context.Background(), queues.StaleOptions{}); !errors.Is(err, queues.ErrConfig) {
			t.Fatalf("zero StaleAfter: %v", err)
		}
	})
}

// takeClaimAway requeues the running records as another process's stale
// recovery would. A heartbeat written between RecoverStale's read and its
// fenced write rightly makes a record fresh again and skips it, so it
// retries until a record is requeued (for up to 10 s).
func takeClaimAway(b driver.Backend) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := b.RecoverStale(context.Background(), driver.StaleParams{StaleAfter: -1, Limit: 10})
		if err == nil && r.Requeued > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("RecoverStale never took the claim away (last error: %v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
