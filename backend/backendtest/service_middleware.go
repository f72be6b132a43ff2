package backendtest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
)

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
	// Middleware values placed in ctx reach the task.
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

	// acquire → body → cleanup, on success and on failure.
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

	// An acquisition error fails the attempt through normal retry.
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

	// Cleanup runs exactly once on timeout, durable cancel, claim loss and shutdown.
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

	// A cleanup error after a successful body fails the attempt.
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
